"""Every recipe in configs/ trains and resumes on the CPU with its own flags: a recipe that no longer parses
or runs (a renamed TrainingArguments field, a scheduler argument, the fused optimizer, torch.compile, dataloader
workers) fails here rather than on a rented GPU. --use_cpu true turns what needs a GPU off (TF32, bf16)."""

import json
import logging
import signal
from pathlib import Path

import pytest
import yaml

import train
from benchmarks.drills import SignalAtStep

REPO = Path(train.__file__).parent
RECIPES = sorted((REPO / "configs").glob("*.yaml"))
# The model shrunk, the steps few; the rest of each recipe stays as it is, with --use_cpu true as on any CPU.
SHRUNK = ["--n_layer", "1", "--n_embd", "32", "--n_head", "2", "--n_positions", "32", "--max_steps", "4",
          "--save_steps", "2", "--eval_steps", "2", "--logging_steps", "1", "--max_eval_blocks", "4",
          "--global_batch_size", "4", "--per_device_train_batch_size", "2", "--use_cpu", "true",
          "--out_of_domain_text", ""]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_recipe_trains_and_resumes_on_the_cpu(recipe, excerpt_data, excerpt_tokenizer, tmp_path, caplog):
    settings = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    argv = [str(recipe), "--data_dir", str(excerpt_data), "--tokenizer_dir", str(excerpt_tokenizer),
            "--output_dir", str(tmp_path), "--vocab_size", "8000", *SHRUNK]
    caplog.set_level(logging.INFO)
    with pytest.raises(SystemExit) as stopped:
        train.main(argv, callbacks=[SignalAtStep(2)])
    assert stopped.value.code == 128 + signal.SIGTERM
    assert (tmp_path / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file()

    train.main(argv)
    assert "Resuming from" in caplog.text and str(tmp_path / "checkpoints" / "checkpoint-2") in caplog.text
    info = json.loads((tmp_path / "model" / "run_info.json").read_text())
    for key in ("optim", "lr_scheduler_type", "torch_compile", "weight_decay", "adam_beta2"):
        assert info["recipe"][key] == settings.get(key, info["recipe"][key]), key
    assert (info["recipe"]["bf16"], info["recipe"]["tf32"]) == (False, False)  # off on the CPU, and recorded
    assert info["recipe"]["gradient_accumulation_steps"] == 2
    state = json.loads((tmp_path / "model" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3, 4]
    assert all(entry["loss"] == entry["loss"] for entry in state["log_history"] if "loss" in entry)  # not NaN
