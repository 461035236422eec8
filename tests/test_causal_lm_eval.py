"""metrics/causal_lm_eval: the evaluate module that scores the final model."""

import math

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
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model)).eval()
    ids = tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1]
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum").item()
    scores = metric.compute(predictions=TEXTS[:1], model_id=str(tiny_model), device="cpu")
    assert scores["tokens"] == len(ids) - 1
    assert scores["loss"] == pytest.approx(nll / (len(ids) - 1), rel=1e-5)
