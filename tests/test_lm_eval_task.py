"""metrics/lm_eval_tasks: the standard harness (lm-eval's own command) on our prepared splits agrees with us."""

import importlib.util
import json
import os
import subprocess
import sys

import datasets
import evaluate
import pytest
from transformers import AutoTokenizer

from gpt2ja.settings import REPO_ROOT

TASKS = REPO_ROOT / "metrics" / "lm_eval_tasks"


@pytest.mark.slow  # uses the session's trained tiny model
def test_lm_eval_scores_the_test_split_as_our_metric_does(tiny_model, excerpt_data, tmp_path):
    eos = AutoTokenizer.from_pretrained(str(tiny_model)).eos_token_id
    command = [sys.executable, "-m", "lm_eval", "run", "--model", "hf",
               "--model_args", f"pretrained={tiny_model},prefix_token_id={eos}", "--tasks", "jawiki",
               "--include_path", str(TASKS), "--metadata", json.dumps({"data_dir": str(excerpt_data)}),
               "--device", "cpu", "--batch_size", "8", "--output_path", str(tmp_path / "lm_eval")]
    offline = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    run = subprocess.run(command, env=offline, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    [results_file] = (tmp_path / "lm_eval").rglob("results_*.json")
    theirs = json.loads(results_file.read_text())["results"]["jawiki"]

    texts = list(datasets.load_from_disk(str(excerpt_data))["test"]["text"])
    ours = evaluate.load(str(REPO_ROOT / "metrics" / "causal_lm_eval")).compute(
        predictions=texts, model_id=str(tiny_model), device="cpu")
    # the same windows (ours default to lm-eval's), so the same figure but for float rounding
    assert theirs["bits_per_character,none"] == pytest.approx(ours["bits_per_character"], rel=1e-5)
    # bits per byte is the same total NLL over the UTF-8 bytes
    utf8_bytes = sum(len(t.encode("utf-8")) for t in texts)
    assert theirs["bits_per_byte,none"] == pytest.approx(
        ours["bits_per_character"] * ours["characters"] / utf8_bytes, rel=1e-5)
    assert "word_perplexity,none" not in theirs


def test_the_task_without_splits_says_how_to_pass_them():
    spec = importlib.util.spec_from_file_location("jawiki", TASKS / "jawiki.py")
    jawiki = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(jawiki)
    with pytest.raises(ValueError, match=r"needs the prepared splits: pass --metadata"):
        jawiki.prepared_splits()
