"""gpt2ja.tokenizer_folder: the tokenizer folder, its record, and what fits in a model's context."""

import subprocess
import sys

import pytest

from gpt2ja.errors import UserError
from gpt2ja.tokenizer_folder import load_tokenizer, room_after


def test_load_tokenizer_names_the_missing_folder_and_takes_overrides(excerpt_tokenizer, tmp_path):
    with pytest.raises(UserError, match="holds no tokenizer.*run tokenizer.py"):
        load_tokenizer(tmp_path)
    assert load_tokenizer(excerpt_tokenizer, model_max_length=128).model_max_length == 128


def test_new_tokens_are_what_the_context_leaves_after_the_prompt(excerpt_tokenizer):
    tokenizer = load_tokenizer(excerpt_tokenizer)
    used = len(tokenizer("近年の機械学習は", add_special_tokens=False)["input_ids"])
    assert room_after(tokenizer, "近年の機械学習は", 128, 50) == (50, used)
    assert room_after(tokenizer, "近年の機械学習は", 128, 500) == (128 - used, used)
    assert room_after(tokenizer, "近年の機械学習は" * 40, 128, 50)[0] == 0


def test_reading_the_folders_record_loads_no_transformers():
    code = "import sys, gpt2ja.tokenizer_folder; print('transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
