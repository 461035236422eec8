"""lm-eval's Japanese tasks on fixture rows (metrics/lm_eval_tasks/ja_leaderboard_mc.yaml and lm-eval's own
configs), and gpt2ja.eval_results: their result files -> the card's model-index entries and tables."""

import json

import pytest
import torch
from huggingface_hub import ModelCardData
from huggingface_hub.repocard_data import model_index_to_eval_results
from transformers import AutoModelForCausalLM, AutoTokenizer

from gpt2ja.errors import UserError
from gpt2ja.eval_results import BENCHMARKS, Downstream

REPO_ID = "tester/gpt2-small-ja-test"
FIXTURE_TASKS = ("jcommonsenseqa_fixture", "jnli_fixture", "xwinograd_fixture")


def logged_samples(results_file, task):
    [path] = results_file.parent.glob(f"samples_{task}_*.jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def continuation_loglikelihood(model, tokenizer, context, continuation, prefix_token_id):
    """Our own log-likelihood of a choice, and whether its sequence was cut: the tokens of context +
    continuation past the context's own tokens (an empty context is the end-of-text token), the sequence
    cut on the left to the model's context (plus the last token, which is only predicted)."""
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    context_ids = encode(context) if context else [prefix_token_id]
    choice_ids = encode(context + continuation)[len(context_ids):] if context else encode(continuation)
    sequence = (context_ids + choice_ids)[-(model.config.n_positions + 1):]
    with torch.no_grad():
        logits = model(torch.tensor([sequence[:-1]])).logits[0].double()
    log_probs = torch.log_softmax(logits, dim=-1)[-len(choice_ids):]
    cut = len(context_ids + choice_ids) > len(sequence)
    return float(log_probs.gather(1, torch.tensor(choice_ids)[:, None]).sum()), cut


@pytest.mark.slow  # lm-eval on the session's trained tiny model
def test_lm_eval_accuracy_is_the_argmax_of_our_own_loglikelihoods(japanese_results, tiny_model):
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    results = json.loads(japanese_results.read_text())["results"]
    truncated = 0
    for task in FIXTURE_TASKS:
        samples = logged_samples(japanese_results, task)
        right = 0
        for sample in samples:
            requests = sorted(sample["arguments"].items(), key=lambda item: int(item[0].rsplit("_", 1)[1]))
            ours = []
            for _, request in requests:
                loglikelihood, cut = continuation_loglikelihood(model, tokenizer, request["arg_0"], request["arg_1"],
                                                                tokenizer.eos_token_id)
                ours.append(loglikelihood)
                truncated += cut
            theirs = [float(response[0]) for response in sample["filtered_resps"]]  # logged as text
            assert ours == pytest.approx(theirs, abs=1e-4), (task, sample["doc_id"])  # float32 against float64
            argmax_right = max(range(len(ours)), key=ours.__getitem__) == int(sample["target"])
            assert argmax_right == bool(sample["acc"]), (task, sample["doc_id"])
            right += argmax_right
        assert len(samples) == results[task]["sample_len"] and len(samples) >= 8
        assert results[task]["acc,none"] == pytest.approx(right / len(samples), abs=1e-12), task
        # the repository's group reads the same rows under lm-eval's own name, prompt and few-shot count
        real = f"ja_leaderboard_{task.removesuffix('_fixture')}"
        assert results[real]["acc,none"] == results[task]["acc,none"]
    # 3-shot prompts do not fit the tiny model's 128 tokens: lm-eval cuts them on the left, as we did
    assert truncated > 0


@pytest.mark.slow
def test_our_results_become_model_index_entries_the_hub_reads_back(japanese_results, tiny_model):
    downstream = Downstream.read([str(japanese_results)], None, tiny_model, REPO_ID)
    data = ModelCardData(model_name="m", eval_results=downstream.eval_results()).to_dict()
    _, entries = model_index_to_eval_results(data["model-index"])
    results = json.loads(japanese_results.read_text())
    # the fixture tasks are left aside: only lm-eval's own task names reach the card
    assert sorted(entry.metric_args["task"] for entry in entries) == sorted(
        ["ja_leaderboard_jcommonsenseqa", "ja_leaderboard_jnli", "ja_leaderboard_xwinograd"])
    for entry in entries:
        task = entry.metric_args["task"]
        assert (entry.dataset_type, entry.dataset_config, entry.dataset_split) == BENCHMARKS[task][2:5]
        assert entry.metric_type == "accuracy"
        assert entry.metric_value == round(results["results"][task]["acc,none"], 4)
        assert entry.metric_args["num_fewshot"] == results["n-shot"][task] == (0 if "xwinograd" in task else 3)
        assert entry.metric_args["lm_eval_version"] == results["lm_eval_version"]
    table = downstream.markdown(REPO_ID)
    assert "| model | JCommonsenseQA (3-shot) | JNLI (3-shot) | XWinograd (ja) (0-shot) |" in table
    assert f"**{REPO_ID}** (this model)" in table and "| uniform guess | 0.2000 | 0.3333 | 0.5000 |" in table


@pytest.mark.slow
def test_a_file_of_another_model_is_refused_as_ours(other_model_results, tiny_model):
    with pytest.raises(UserError, match=r"is of .*other-model, not of the model being published"):
        Downstream.read([str(other_model_results)], None, tiny_model, REPO_ID)


@pytest.mark.slow
def test_another_model_compares_only_on_the_same_task_version_and_shots(japanese_results, other_model_results,
                                                                       tiny_model, tmp_path):
    downstream = Downstream.read([str(japanese_results)], [str(other_model_results)], tiny_model, REPO_ID)
    table = downstream.markdown(REPO_ID)
    assert "other-model` (a local folder)" in table and "prefix_token_id=2" in table
    # the other model's scores are in the table, never in our model-index
    assert len(downstream.eval_results()) == 3
    other = json.loads(other_model_results.read_text())
    for key, task, value in (("n-shot", "ja_leaderboard_jnli", 1), ("versions", "ja_leaderboard_xwinograd", 2.0)):
        changed = json.loads(json.dumps(other))  # the other model's file, as a run of another setting writes it
        changed[key][task] = value
        path = tmp_path / f"{key}.json"
        path.write_text(json.dumps(changed))
        with pytest.raises(UserError, match=rf"scores {task} .* where ours has version 1.0, \d-shot"):
            Downstream.read([str(japanese_results)], [str(path)], tiny_model, REPO_ID)


def test_a_comparison_without_ours_a_file_of_no_known_task_or_of_part_of_a_task_are_refused(tmp_path):
    with pytest.raises(UserError, match="--compare_results needs --eval_results"):
        Downstream.read(None, ["x.json"], tmp_path, REPO_ID)
    jawiki_only = tmp_path / "results.json"
    jawiki_only.write_text(json.dumps({"config": {"model_args": f"pretrained={tmp_path},prefix_token_id=3"},
                                       "results": {"jawiki": {"bits_per_character,none": 5.3}}}))
    with pytest.raises(UserError, match=r"holds none of the tasks the card shows .* --tasks ja_leaderboard_mc"):
        Downstream.read([str(jawiki_only)], None, tmp_path, REPO_ID)
    limited = tmp_path / "limited.json"
    limited.write_text(json.dumps({"config": {"model_args": f"pretrained={tmp_path}", "limit": 10},
                                   "results": {"ja_leaderboard_jnli": {"acc,none": 0.5}}}))
    with pytest.raises(UserError, match=r"scored only part of each task \(--limit 10\)"):
        Downstream.read([str(limited)], None, tmp_path, REPO_ID)
    with pytest.raises(UserError, match="is not an lm-eval result file"):
        Downstream.read([str(tmp_path / "missing.json")], None, tmp_path, REPO_ID)
