"""metrics/causal_lm_eval: the evaluate module that scores the final model."""

import math

import datasets
import evaluate
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from gpt2ja.settings import REPO_ROOT

pytestmark = pytest.mark.slow  # uses the session's trained tiny model

TEXTS = ["日本語は日本の言語である。", "東京は日本の首都であり、最大の都市である。\n人口は多い。"]


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(str(REPO_ROOT / "metrics" / "causal_lm_eval"))


def test_figures_are_one_total_nll_seen_three_ways(metric, tiny_model):
    scores = metric.compute(predictions=TEXTS, model_id=str(tiny_model), device="cpu")
    assert scores["characters"] == sum(len(t) for t in TEXTS)
    assert scores["perplexity"] == pytest.approx(math.exp(scores["loss"]))
    total_nll = scores["loss"] * scores["tokens"]
    assert scores["bits_per_character"] == pytest.approx(total_nll / math.log(2) / scores["characters"])


def test_a_short_text_is_scored_as_the_model_predicts_it(metric, tiny_model):
    """Every token, the first after </s> alone, as an article follows an article boundary in training."""
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model)).eval()
    ids = [tokenizer.eos_token_id] + tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1]
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum").item()
    scores = metric.compute(predictions=TEXTS[:1], model_id=str(tiny_model), device="cpu")
    assert scores["tokens"] == len(ids) - 1
    assert scores["loss"] == pytest.approx(nll / (len(ids) - 1), rel=1e-5)


@pytest.fixture(scope="module")
def test_texts(excerpt_data):
    return list(datasets.load_from_disk(str(excerpt_data))["test"]["text"])


def test_a_long_text_scores_every_token_once_with_the_windows_context(metric, tiny_model, test_texts):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in test_texts)
    assert tokens > 10 * 128  # texts longer than the model's 128-token context
    by_stride = {stride: metric.compute(predictions=test_texts, model_id=str(tiny_model), device="cpu",
                                        stride=stride) for stride in (None, 64)}
    assert all(scores["tokens"] == tokens for scores in by_stride.values())
    # more context for the first tokens of each window changes the loss little (up or down, by the model)
    assert by_stride[64]["loss"] != by_stride[None]["loss"]
    assert by_stride[64]["loss"] == pytest.approx(by_stride[None]["loss"], rel=0.01)


def test_the_order_of_the_texts_changes_no_figure(metric, tiny_model, test_texts):
    forward = metric.compute(predictions=test_texts, model_id=str(tiny_model), device="cpu")
    backward = metric.compute(predictions=test_texts[::-1], model_id=str(tiny_model), device="cpu", batch_size=3)
    assert forward == backward


def test_bits_per_character_hardly_depend_on_the_window(metric, tiny_model, test_texts):
    scores = {size: metric.compute(predictions=test_texts, model_id=str(tiny_model), device="cpu",
                                   block_size=size)["bits_per_character"] for size in (64, 128)}
    assert scores[64] == pytest.approx(scores[128], rel=0.01)


@pytest.mark.parametrize("predictions, options, message", [
    ([], {}, "There is no text to score"),
    ([""], {}, "1 of the texts are empty"),
    (["", ""], {}, "2 of the texts are empty"),
    (TEXTS, {"block_size": 0}, "block_size must be from 1 to the model's context"),
    (TEXTS, {"block_size": 129}, r"block_size must be from 1 to the model's context \(128\)"),
    (TEXTS, {"stride": 129}, r"stride must be from 1 to block_size \(128\)"),
    (TEXTS, {"block_size": 64, "stride": 0}, r"stride must be from 1 to block_size \(64\)"),
    (TEXTS, {"batch_size": 0}, "batch_size must be 1 or more"),
])
def test_bad_input_is_one_sentence_not_a_number(metric, tiny_model, predictions, options, message):
    with pytest.raises(ValueError, match=message):
        metric.compute(predictions=predictions, model_id=str(tiny_model), device="cpu", **options)


def test_a_folder_that_is_no_causal_lm_is_one_sentence(metric, tiny_model, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="is not a causal language model"):
        metric.compute(predictions=TEXTS, model_id=str(tmp_path), device="cpu")
