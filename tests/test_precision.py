"""gpt2ja.precision: a GPU recipe on a CPU runs with --use_cpu true (tf32 and bf16 off, said and recorded), and
without it is refused in one sentence, by rank 0 alone."""

import json
import logging

import pytest
from transformers.utils import is_torch_bf16_gpu_available, is_torch_tf32_available

import train
from gpt2ja.errors import UserError
from processes import Launch

NO_GPU = pytest.mark.skipif(is_torch_tf32_available() or is_torch_bf16_gpu_available(),
                            reason="this machine can do tf32 or bf16: nothing to refuse")
TINY = ["--n_positions", "64", "--n_embd", "32", "--n_layer", "1", "--n_head", "2", "--global_batch_size", "4",
        "--per_device_train_batch_size", "2", "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2",
        "--logging_steps", "1", "--max_eval_blocks", "2", "--out_of_domain_text", "", "--dataloader_num_workers", "0"]


@pytest.mark.parametrize("recipe, asks", [("configs/fast.yaml", ("tf32", "bf16")),
                                          ("configs/continue.yaml", ("tf32", "bf16")),
                                          ("configs/reference.yaml", ("bf16",)), ("configs/tiny.yaml", ())])
def test_with_use_cpu_a_gpu_recipe_parses_with_tf32_and_bf16_off_each_said_once(recipe, asks, caplog):
    caplog.set_level(logging.INFO, "gpt2ja.precision")
    _, _, given = train.parse_arguments([recipe, "--use_cpu", "true"])
    assert given.tf32 is False and given.bf16 is False and given.mixed_precision == "no"
    said = [record.getMessage() for record in caplog.records]
    for name in ("tf32", "bf16"):
        assert sum(f"--{name} turned off" in line for line in said) == (name in asks), said


def test_with_use_cpu_an_accelerate_configs_bf16_is_turned_off(monkeypatch, caplog):
    caplog.set_level(logging.INFO, "gpt2ja.precision")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what accelerate_config.yaml's launch sets
    _, _, given = train.parse_arguments(["configs/fast.yaml", "--use_cpu", "true"])
    assert given.mixed_precision == "no"
    assert "accelerate's mixed_precision bf16 turned off" in caplog.text


@NO_GPU
@pytest.mark.parametrize("recipe, lacking", [("configs/fast.yaml", "--tf32 and --bf16"),
                                             ("configs/continue.yaml", "--tf32 and --bf16"),
                                             ("configs/tiny.yaml --use_cpu false --bf16 true", "--bf16,")])
def test_without_use_cpu_a_machine_without_tf32_or_bf16_is_refused_naming_use_cpu(recipe, lacking):
    with pytest.raises(UserError) as refused:
        train.parse_arguments(recipe.split())
    message = str(refused.value)
    assert f"The recipe asks for {lacking}" in message and "pass --use_cpu true" in message
    assert message.count(".") == 1 and "\n" not in message


@NO_GPU
def test_a_rank_other_than_0_ends_without_repeating_the_refusal(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(SystemExit) as ended:
        train.parse_arguments(["configs/fast.yaml"])
    assert ended.value.code == 1 and capsys.readouterr() == ("", "")


@pytest.mark.slow
def test_the_fast_recipe_trains_on_the_cpu_with_use_cpu_and_records_it(excerpt_data, excerpt_tokenizer, tmp_path):
    model = train.main(["configs/fast.yaml", "--use_cpu", "true", "--data_dir", str(excerpt_data),
                        "--tokenizer_dir", str(excerpt_tokenizer), "--output_dir", str(tmp_path / "run"),
                        "--vocab_size", "8000", *TINY])
    recipe = json.loads((model / "run_info.json").read_text())["recipe"]
    assert (recipe["tf32"], recipe["bf16"], recipe["mixed_precision"], recipe["use_cpu"]) == (False, False, "no", True)
    assert (model / "model.safetensors").is_file()


@pytest.mark.slow
@NO_GPU
def test_two_processes_on_the_cpu_train_the_fast_recipe_with_use_cpu_and_without_it_rank_0_says_why(
        excerpt_data, excerpt_tokenizer, tmp_path):
    argv = ["train.py", "configs/fast.yaml", "--data_dir", str(excerpt_data), "--tokenizer_dir",
            str(excerpt_tokenizer), "--vocab_size", "8000", *TINY]
    # as a user types it: accelerate_config.yaml's mixed_precision bf16 (Launch's own default is no)
    flags = ["--num_processes", "2", "--mixed_precision", "bf16"]
    trained = Launch(flags, [*argv, "--output_dir", str(tmp_path / "run"), "--use_cpu", "true"], tmp_path / "ok.log")
    assert trained.wait() == 0, trained.output()
    assert "Traceback" not in trained.output()
    recipe = json.loads((tmp_path / "run" / "model" / "run_info.json").read_text())["recipe"]
    assert (recipe["tf32"], recipe["bf16"], recipe["mixed_precision"]) == (False, False, "no")
    refused = Launch(flags, [*argv, "--output_dir", str(tmp_path / "other")], tmp_path / "refused.log")
    assert refused.wait() != 0
    assert refused.output().count("pass --use_cpu true") == 1, refused.output()
    assert not (tmp_path / "other").exists()
