"""benchmarks/gpu_check.py in its CPU mode: the GPU check is known to run before a GPU meets it."""

import json

import pytest

from processes import run


@pytest.mark.slow
def test_the_gpu_check_runs_every_part_in_cpu_mode(excerpt_data, excerpt_tokenizer, tmp_path):
    run_dir = tmp_path / "run"  # a run folder as make demo leaves it, with no token cache yet
    run_dir.mkdir()
    (run_dir / "data").symlink_to(excerpt_data)
    (run_dir / "tokenizer").symlink_to(excerpt_tokenizer)
    report_path = tmp_path / "gpu_check.json"
    done = run(["-m", "benchmarks.gpu_check", "--cpu", "--run_dir", str(run_dir), "--out", str(report_path)],
               timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert [row["recipe"] for row in report["speed"]] == ["reference.yaml", "fast.yaml"]
    assert all(row["tokens_per_s"] > 0 and row["steps_timed"] > 0 for row in report["speed"])
    first, second = report["training"]["processes"]
    assert (first["exit"], first["last_checkpoint"]) == (143, "checkpoint-6")
    assert (second["began"], second["exit"], second["last_checkpoint"]) == ("resuming from checkpoint-6", 0,
                                                                            "checkpoint-12")
    assert [step for step, _ in report["training"]["train_loss"]] == list(range(1, 13))  # every step, across the kill
    assert report["generation"]["text"].startswith("日本の首都は")
    assert all(report["checks"].values()) and len(report["checks"]) == 5
    assert "PASS  rerun resumed there and finished" in done.stdout
