"""benchmarks/gpu_check.py in its CPU mode: the GPU check is known to run before a GPU meets it."""

import json

import pytest

from benchmarks import gpu_compare
from benchmarks.train_bench import recipe_args
from gpt2ja.settings import REPO_ROOT
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


def run_folder(tmp_path, excerpt_data, excerpt_tokenizer):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "data").symlink_to(excerpt_data)
    (run_dir / "tokenizer").symlink_to(excerpt_tokenizer)
    return run_dir


def compare(tmp_path, run_dir, budget_s):
    done = run(["-m", "benchmarks.gpu_check", "--compare", "--cpu", "--run_dir", str(run_dir), "--results_dir",
                str(tmp_path / "results"), "--budget_s", str(budget_s)], timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = (tmp_path / "results" / "gpu_compare_cpu.md").read_text(encoding="utf-8")
    assert table in done.stdout
    return json.loads((tmp_path / "results" / "gpu_compare_cpu.json").read_text(encoding="utf-8")), table


@pytest.mark.slow
def test_the_speed_comparison_times_every_row_in_alternation_on_the_cpu(excerpt_data, excerpt_tokenizer, tmp_path):
    # a budget no CPU here runs out of: every row the CPU mode takes (the default budget is what the CPU gets)
    report, table = compare(tmp_path, run_folder(tmp_path, excerpt_data, excerpt_tokenizer), 900)
    rows = {row["name"]: row for row in report["rows"]}
    assert list(rows)[:5] == ["fast.yaml (before)", "reference.yaml (before)",  # then at most three, in priority order
                              "micro-batch 8", "device-side NaN check", "cuDNN SDPA"]
    for row in report["rows"][:5]:
        assert "error" not in row, row
        assert (row["timed_steps"], row["turns"]) == ((200, 10) if row["recipe"] == "reference" else (20, 10))
        assert row["range_s"][0] <= row["median_step_s"] <= row["range_s"][1]
        assert row["tokens_per_s"] == pytest.approx(row["tokens_per_step"] / row["median_step_s"], rel=1e-3)
    assert rows["fast.yaml (before)"]["vs_before"] == rows["reference.yaml (before)"]["vs_before"] == 1.0
    assert [name for name, row in rows.items() if not row["host_reads_loss"]] == ["device-side NaN check"]
    assert rows["micro-batch 8"]["tokens_per_step"] == rows["fast.yaml (before)"]["tokens_per_step"]
    profiled = {name: row["profile"] for name, row in rows.items() if row.get("profile")}
    assert {"fast.yaml (before)", "reference.yaml (before)", report["winner"]} <= set(profiled)
    assert all(split["matmuls"] > 0 and split["step_s"] > 0 for split in profiled.values())
    assert report["skipped"] == []
    check = report["loss_check"]
    if report["winner"] == "fast.yaml (before)":
        assert check == {"skipped": "no fast candidate beat fast.yaml (before)"}
    else:
        assert check["within_1pct"] and check["steps"] == 40 and f"{check['difference_pct']}% apart" in table
    assert "| fast.yaml (before) | 512 | 20 |" in table


@pytest.mark.slow
def test_the_speed_comparison_says_what_a_spent_budget_left_out(excerpt_data, excerpt_tokenizer, tmp_path):
    report, table = compare(tmp_path, run_folder(tmp_path, excerpt_data, excerpt_tokenizer), 1)
    assert [row["name"] for row in report["rows"]] == ["fast.yaml (before)", "reference.yaml (before)"]
    assert [skip["name"] for skip in report["skipped"]] == ["micro-batch 8", "device-side NaN check", "cuDNN SDPA"]
    assert "Skipped cuDNN SDPA: needs ~" in table and report["loss_check"]["skipped"]


@pytest.mark.parametrize("name, recipe, flags", gpu_compare.CANDIDATES, ids=[c[0].format(64) for c in gpu_compare.CANDIDATES])
def test_every_candidate_of_the_comparison_is_a_setting_train_py_takes(name, recipe, flags, tmp_path):
    # parsed as on the GPU (nothing here runs it): a misspelt flag would cost the GPU's few minutes
    model_args, args = recipe_args(str(REPO_ROOT / "configs" / f"{recipe}.yaml"), 10, tmp_path,
                                   [*(["--global_batch_size", str(gpu_compare.COMPARE["gpu"]["fast_batch"])]
                                      if recipe == "fast" else []),
                                    "--bf16", "false", "--tf32", "false", "--use_cpu", "true", *flags["gpu"]])
    given = dict(zip(flags["gpu"][::2], flags["gpu"][1::2]))
    if "--per_device_train_batch_size" in given:
        assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (64, 2)
    if "--accelerator_config" in given:
        assert args.accelerator_config.non_blocking is True
    if "--torch_compile_mode" in given:
        assert args.torch_compile and args.torch_compile_mode == given["--torch_compile_mode"]
    if "--sdpa_backends" in given:
        assert args.sdpa_backends == "cudnn,flash,efficient,math"
    assert args.optim == given.get("--optim", {"fast": "adamw_torch_fused", "reference": "adamw_torch"}[recipe])
