"""The run folder: where each step writes, what a finished model folder holds, and run_info.json.

    runs/<name>/
        data/          prepare_data.py (the DatasetDict, preparation.json, token_cache/)
        tokenizer/     tokenizer.py
        checkpoints/   train.py: Trainer's checkpoint-N folders, resumable
        logs/          train.py: TensorBoard
        model/         train.py: weights, config, tokenizer, *_results.json, trainer_state.json, run_info.json
        hub/           push_to_hub.py: exactly the files of the Hub repo
"""

import dataclasses
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .splits import Preparation

logger = logging.getLogger(__name__)

# A model folder's files that the Hub repo gets; everything else there stays on the machine.
MODEL_FILES = ("model.safetensors", "config.json", "generation_config.json", "spiece.model",
               "tokenizer_config.json", "tokenizer.json")
OPTIONAL_MODEL_FILES = ("special_tokens_map.json",)
RUN_INFO = "run_info.json"
TRAINER_STATE = "trainer_state.json"
ALL_RESULTS = "all_results.json"
RESULT_FILES = ("train_results.json", "eval_results.json", "test_results.json", ALL_RESULTS)
RUN_FILES = (ALL_RESULTS, TRAINER_STATE, RUN_INFO)  # what the card is made of; not uploaded
# The final evaluation's splits and the prefix of their figures in *_results.json (Trainer's names).
RESULT_PREFIXES = {"validation": "eval", "test": "test"}


@dataclass(frozen=True)
class RunFolder:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def data(self):
        return self.root / "data"

    @property
    def tokenizer(self):
        return self.root / "tokenizer"

    @property
    def checkpoints(self):
        return self.root / "checkpoints"

    @property
    def logs(self):
        return self.root / "logs"

    @property
    def model(self):
        return self.root / "model"

    @property
    def hub(self):
        return self.root / "hub"


def move_into_place(finished, target):
    """Replace the folder `target` by `finished`: a later step never sees a half-written folder."""
    if Path(target).exists():
        shutil.rmtree(target)
    os.replace(finished, target)


def read_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def is_finished_model(model_dir):
    return Path(model_dir, ALL_RESULTS).is_file()


def last_complete_checkpoint(checkpoints_dir):
    """The newest checkpoint-N holding trainer_state.json (Trainer writes it last, so a checkpoint
    cut short by a kill lacks it and is skipped)."""
    folder = Path(checkpoints_dir)
    if not folder.is_dir():
        return None
    complete = [p for p in folder.glob("checkpoint-*") if (p / TRAINER_STATE).is_file()]
    return str(max(complete, key=lambda p: int(p.name.split("-")[1]))) if complete else None


def remove_incomplete_checkpoints(checkpoints_dir):
    for path in Path(checkpoints_dir).glob("checkpoint-*"):
        if not (path / TRAINER_STATE).is_file():
            logger.warning("Removing %s: a checkpoint cut short (no %s).", path, TRAINER_STATE)
            shutil.rmtree(path, ignore_errors=True)


@dataclass
class RunInfo:
    """run_info.json in a model folder: what the model card reports of the run besides its results."""

    data: Optional[Preparation]  # the data folder's preparation.json
    tokens: dict  # split -> {"articles", "tokens", "characters"} as tokenized for training
    tokenizer: Optional[dict]  # the tokenizer folder's tokenizer_report.json
    recipe: dict  # the model's and the optimizer's settings, global batch included
    hardware: dict  # {"processes": N, "devices": [name, ...]}
    versions: dict  # {"torch": ..., "transformers": ...}

    @property
    def dump_date(self):
        return self.data.dump_date if self.data else None

    @property
    def sources(self):
        return self.data.sources if self.data else []

    def save(self, model_dir):
        Path(model_dir, RUN_INFO).write_text(
            json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False, default=str), encoding="utf-8")

    @classmethod
    def load(cls, model_dir):
        fields = read_json(Path(model_dir, RUN_INFO))
        fields["data"] = Preparation(**fields["data"]) if fields.get("data") else None
        return cls(**fields)
