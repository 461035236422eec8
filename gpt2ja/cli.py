"""How every script reads its arguments and ends: recipe + flags, and one sentence on a user's mistake or Ctrl-C."""

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from .errors import UserError
from .interrupts import INTERRUPTED

RECIPE_SUFFIXES = (".yaml", ".yml", ".json")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help as the script's docstring wrote it, and every flag's default (a recipe's where one is given),
    unless its help says it already or there is none."""

    def _get_help_string(self, action):
        if "default" in (action.help or "").lower() or action.default in (None, [], argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def flags_named(argv):
    """The settings a command line names (`--do_eval`, `--do-eval x`, `--do_eval=x` -> do_eval)."""
    return {token[2:].split("=", 1)[0].replace("-", "_") for token in argv if token.startswith("--")}


def parse_args(dataclass_types, argv=None, description=None, not_taken=None):
    """Parse `[recipe.yaml] [--flag value ...]`: the recipe gives defaults, flags override them.

    This is run_clm.py's convention (a single YAML/JSON file, or flags) extended so
    that both can be given at once. `not_taken` ({setting: why}) names inherited settings the script decides
    itself (TrainingArguments' do_eval, say): they are hidden from --help and refused when given, never
    silently ignored.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    not_taken = not_taken or {}
    # no abbreviations: a flag is named in full, so the flags a script refuses or weighs (flags_named) are seen
    parser = HfArgumentParser(dataclass_types, description=description, formatter_class=HelpFormatter,
                              allow_abbrev=False)
    for action in parser._actions:
        if action.dest in not_taken:
            action.help = argparse.SUPPRESS
    given = " ".join(argv) or "defaults"
    refused = sorted(flags_named(argv) & set(not_taken))
    if refused:
        raise UserError(f"--{refused[0]} is not a setting of this script: {not_taken[refused[0]]}.")
    if argv and argv[0].endswith(RECIPE_SUFFIXES) and not argv[0].startswith("-"):
        recipe_path = Path(argv.pop(0))
        if not recipe_path.is_file():
            raise UserError(f"Recipe {recipe_path} does not exist; pass a YAML file from configs/.")
        try:
            recipe = (json.loads if recipe_path.suffix == ".json" else yaml.safe_load)(
                recipe_path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, json.JSONDecodeError) as error:
            where = str(error).strip().splitlines()
            raise UserError(f"Recipe {recipe_path} is not valid {recipe_path.suffix[1:].upper()} "
                            f"({' '.join(line.strip() for line in where[:3])}); fix it.") from None
        if not isinstance(recipe, dict):
            raise UserError(f"Recipe {recipe_path} must map settings to values (key: value), not hold a "
                            f"{type(recipe).__name__}.")
        known = {f.name for t in dataclass_types for f in dataclasses.fields(t)} - set(not_taken)
        unknown = sorted(set(recipe) - known)
        if unknown:
            raise UserError(f"Recipe {recipe_path} has unknown keys {unknown}; see --help for the valid ones.")
        parser.set_defaults(**recipe)
    try:
        return parser.parse_args_into_dataclasses(args=argv)
    except (ValueError, TypeError) as error:  # the dataclasses' own checks (TypeError: a recipe's null or list
        # where a number belongs), e.g. TrainingArguments' bf16 on a machine without it
        raise UserError(f"{error} (from: {given})") from None


def setup_logging():
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", level=logging.INFO)
    # the Hub client's HTTP library (huggingface_hub 2 uses httpx2, 1.x httpx): a line for every request at INFO
    for chatter in ("httpx", "httpcore", "httpx2", "httpcore2"):
        logging.getLogger(chatter).setLevel(logging.WARNING)
    import datasets  # here: --help answers without it
    # datasets prints through its own handler; without this, each of its lines shows twice
    datasets.utils.logging.disable_propagation()


def interrupted(error):
    """Whether an error is Ctrl-C, or came of it (a worker pool's clean-up that timed out, say)."""
    seen = set()
    while error is not None and id(error) not in seen:  # a chain can loop back on itself
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def run_main(main):
    """Run a script's main(): a UserError ends with its message and exit status 1, Ctrl-C with exit
    status 130; neither with a traceback. What the script was writing stays out of its output folder."""
    setup_logging()
    try:
        main()
    except (Exception, KeyboardInterrupt) as error:
        if interrupted(error):
            print(INTERRUPTED, file=sys.stderr)
            sys.exit(130)
        if not isinstance(error, UserError):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
