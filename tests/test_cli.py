"""gpt2ja.cli: recipe + flags, and the one-sentence exit."""

import logging
from dataclasses import dataclass, field
from typing import Optional

import pytest

from gpt2ja.cli import parse_args
from gpt2ja.errors import UserError


@dataclass
class Example:
    size: int = field(default=1, metadata={"help": "a size"})
    name: Optional[str] = field(default=None, metadata={"help": "a name"})


def test_the_recipe_gives_defaults_and_flags_override_them(tmp_path):
    (tmp_path / "r.yaml").write_text("size: 5\nname: recipe\n")
    (args,) = parse_args([Example], [str(tmp_path / "r.yaml"), "--size", "7"])
    assert (args.size, args.name) == (7, "recipe")
    (tmp_path / "r.json").write_text('{"size": 3}')
    assert parse_args([Example], [str(tmp_path / "r.json")])[0].size == 3
    assert parse_args([Example], [])[0].size == 1


def test_a_flag_is_named_in_full():
    # an abbreviation would slip past the flags a script refuses (not_taken) or weighs (a base model's architecture)
    with pytest.raises(UserError, match="--siz"):
        parse_args([Example], ["--siz", "2"])
    with pytest.raises(UserError, match="--size is not a setting of this script"):
        parse_args([Example], ["--size", "2"], not_taken={"size": "it is fixed"})


@pytest.mark.parametrize("name, recipe, message", [
    ("r.yaml", None, "does not exist"),
    ("r.yaml", "size: 5\nsise: 6\n", r"unknown keys \['sise'\]"),
    ("r.yaml", "size: [5\nname: x\n", r"r.yaml is not valid YAML \(.*line"),
    ("r.json", '{"size": 5,}', r"r.json is not valid JSON \(.*line 1"),
    ("r.yaml", "- size\n- 5\n", "must map settings to values"),
])
def test_bad_recipes_are_one_sentence(tmp_path, name, recipe, message):
    if recipe is not None:
        (tmp_path / name).write_text(recipe)
    with pytest.raises(UserError, match=message):
        parse_args([Example], [str(tmp_path / name)])


def test_ctrl_c_ends_in_one_line_and_exit_130(command):
    def main(argv):
        raise KeyboardInterrupt

    out = command(main, [])
    assert out.returncode == 130 and "Traceback" not in out.stderr and out.stderr.startswith("error: Interrupted")


def test_run_main_ends_a_user_error_in_one_line_and_exit_1(command):
    def main(argv):
        raise UserError("The flag --x is wrong; pass --y.")

    out = command(main, [])
    assert out.returncode == 1 and out.stderr.strip() == "error: The flag --x is wrong; pass --y."


def test_an_error_that_came_of_ctrl_c_counts_as_ctrl_c_even_in_a_chain_that_loops():
    from gpt2ja.cli import interrupted
    try:
        try:
            raise KeyboardInterrupt
        finally:
            raise TimeoutError("a worker pool's clean-up")  # datasets' pool, after a Ctrl-C
    except TimeoutError as error:
        assert interrupted(error)
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    assert not interrupted(first)


def test_the_http_clients_line_per_request_is_not_logged(monkeypatch):
    from gpt2ja.cli import setup_logging
    monkeypatch.setattr(logging.getLogger(), "level", logging.INFO)  # as a script's own run has it
    setup_logging()
    assert logging.getLogger("push_to_hub").isEnabledFor(logging.INFO)
    for chatter in ("httpx", "httpcore", "httpx2", "httpcore2"):  # huggingface_hub 2's and 1.x's
        assert not logging.getLogger(chatter).isEnabledFor(logging.INFO)
        assert logging.getLogger(chatter).isEnabledFor(logging.WARNING)
