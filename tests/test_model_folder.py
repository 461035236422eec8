"""gpt2ja.model_folder: what a model folder holds, the checks of a finished one and of a base, its fingerprint."""

import shutil

import pytest
from transformers import GPT2Config, GPT2LMHeadModel

from gpt2ja.errors import UserError
from gpt2ja.model_folder import ModelFolder, check_base_folder, weight_files, weights_fingerprint
from gpt2ja.rerun import file_fingerprint


def test_the_weights_are_the_file_from_pretrained_loads_and_their_fingerprint_its_content(tmp_path):
    GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=8, n_embd=8, n_layer=1, n_head=2)).save_pretrained(
        str(tmp_path / "a"))
    assert weight_files(tmp_path / "a") == [tmp_path / "a" / "model.safetensors"]
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    (tmp_path / "b" / "notes.txt").write_text("not weights")
    assert weights_fingerprint(tmp_path / "a") == weights_fingerprint(tmp_path / "b") == file_fingerprint(
        tmp_path / "a" / "model.safetensors")
    (tmp_path / "c").mkdir()
    with pytest.raises(UserError, match="holds no config.json: it is not a transformers model"):
        check_base_folder(tmp_path / "c", "c")


@pytest.mark.slow
@pytest.mark.parametrize("break_it, message", [
    (lambda d: (d / "spiece.model").unlink(), "lacks spiece.model"),
    (lambda d: (d / "run_info.json").unlink(), "lacks run_info.json"),
    (lambda d: (d / "run_info.json").write_text('{"identity": {}}'), "written by an older version of train.py"),
    (lambda d: (d / "config.json").write_text((d / "config.json").read_text().replace(
        '"vocab_size": 8000', '"vocab_size": 32000')), "vocabulary of 32000 but the tokenizer holds 8000"),
    (lambda d: (d / "tokenizer_config.json").write_text((d / "tokenizer_config.json").read_text().replace(
        '"BertGenerationTokenizer"', '"T5Tokenizer"')), "not BertGenerationTokenizer"),
])
def test_a_model_folder_that_is_not_a_finished_run_is_refused(tiny_model, tmp_path, break_it, message):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    break_it(folder)
    with pytest.raises(UserError, match=message):
        ModelFolder.check(folder)
