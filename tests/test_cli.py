"""gpt2ja.cli: recipe + flags, and the one-sentence exit."""

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from gpt2ja.cli import UserError, parse_args

REPO = Path(__file__).resolve().parents[1]


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


@pytest.mark.parametrize("recipe, message", [
    (None, "does not exist"),
    ("size: 5\nsise: 6\n", r"unknown keys \['sise'\]"),
])
def test_bad_recipes_are_one_sentence(tmp_path, recipe, message):
    if recipe is not None:
        (tmp_path / "r.yaml").write_text(recipe)
    with pytest.raises(UserError, match=message):
        parse_args([Example], [str(tmp_path / "r.yaml")])


def test_run_main_ends_a_user_error_in_one_line_and_exit_1():
    code = ("import sys; sys.path.insert(0, '.'); from gpt2ja.cli import UserError, run_main\n"
            "def main(): raise UserError('The flag --x is wrong; pass --y.')\n"
            "run_main(main)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 1 and out.stderr.strip() == "error: The flag --x is wrong; pass --y."
