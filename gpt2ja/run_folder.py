"""The run folder: where each step writes, what a finished model folder holds, and its records.

    runs/<name>/
        data/          prepare_data.py (the DatasetDict, preparation.json)
        tokenizer/     tokenizer.py (spiece.model, tokenizer.json, tokenizer_report.json)
        token_cache/   train.py: the splits as token ids, one folder per data and tokenizer
        checkpoints/   train.py: Trainer's checkpoint-N folders, resumable, and run_identity.json
        logs/          train.py: TensorBoard
        model/         train.py: weights, config, tokenizer, *_results.json, trainer_state.json, run_info.json
        hub/           push_to_hub.py: exactly the files of the Hub repo
        space/         push_to_hub.py --space_id: the live demo's files
        dataset_card/  push_to_hub.py --dataset_repo_id: the dataset's card
"""

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .rerun import Record
from .splits import Preparation
from .tokenizer_folder import TokenizerReport

logger = logging.getLogger(__name__)

# A model folder's files that the Hub repo gets; everything else there stays on the machine.
MODEL_FILES = ("model.safetensors", "config.json", "generation_config.json", "spiece.model",
               "tokenizer_config.json", "tokenizer.json")
OPTIONAL_MODEL_FILES = ("special_tokens_map.json",)
TRAINER_STATE = "trainer_state.json"
ALL_RESULTS = "all_results.json"
RESULT_FILES = ("train_results.json", "eval_results.json", "test_results.json", "ood_results.json", ALL_RESULTS)
RUN_FILES = (ALL_RESULTS, TRAINER_STATE, "run_info.json")  # what the card is made of; not uploaded
# The final evaluation's splits and the prefix of their figures in *_results.json (Trainer's names).
RESULT_PREFIXES = {"validation": "eval", "test": "test"}
OOD_PREFIX = "ood"  # the out-of-domain text's figures (train.py --out_of_domain_text)
STAGING_RECORD = ".staged_by_push_to_hub.json"  # push_to_hub.py's record in each folder it stages


def final_scores_to_tensorboard(args, step, scores):
    """The final scores ({prefix_metric: value}, as all_results.json names them) as TensorBoard scalars beside
    Trainer's curves (where the run reports to TensorBoard), at the last step: final/validation_loss,
    final/test_perplexity, final/out_of_domain_loss, ..."""
    if "tensorboard" not in (args.report_to or []):
        return
    from torch.utils.tensorboard import SummaryWriter
    splits = {prefix: split for split, prefix in RESULT_PREFIXES.items()} | {OOD_PREFIX: "out_of_domain"}
    with SummaryWriter(os.environ["TENSORBOARD_LOGGING_DIR"]) as writer:  # where train.py points Trainer's
        for name, value in scores.items():
            prefix, metric = name.split("_", 1)
            writer.add_scalar(f"final/{splits[prefix]}_{metric}", value, step)


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
    def token_cache(self):
        return self.root / "token_cache"

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


def checkpoint_step(path):
    """N of a checkpoint-N folder, or None for any other name."""
    number = Path(path).name.removeprefix("checkpoint-")
    return int(number) if Path(path).name.startswith("checkpoint-") and number.isdigit() else None


def last_complete_checkpoint(checkpoints_dir):
    """The newest checkpoint-N holding trainer_state.json (Trainer writes it last, so a checkpoint
    cut short by a kill lacks it and is skipped)."""
    folder = Path(checkpoints_dir)
    if not folder.is_dir():
        return None
    complete = [p for p in folder.iterdir() if checkpoint_step(p) is not None and (p / TRAINER_STATE).is_file()]
    return str(max(complete, key=checkpoint_step)) if complete else None


def remove_incomplete_checkpoints(checkpoints_dir):
    for path in Path(checkpoints_dir).glob("checkpoint-*"):
        if checkpoint_step(path) is not None and not (path / TRAINER_STATE).is_file():
            logger.warning("Removing %s: a checkpoint cut short (no %s).", path, TRAINER_STATE)
            shutil.rmtree(path, ignore_errors=True)


@dataclass
class RunIdentity(Record):
    """run_identity.json in checkpoints/: what the run is made of, compared by a resume."""

    FILE = "run_identity.json"
    OTHER = "checkpoints of another run"

    resumed_from: Optional[str] = None  # the --resume_from_checkpoint this folder's checkpoints went on from

    @classmethod
    def upgrade(cls, fields):
        # earlier versions wrote the identity itself, not a record holding it
        return fields if "identity" in fields else {"identity": fields}


@dataclass
class RunInfo(Record):
    """run_info.json in a model folder: what the run was made of (identity: the fingerprints of data and
    tokenizer, the model config and the recipe) and what the model card reports of it besides its results."""

    FILE = "run_info.json"
    OTHER = "the model of another run"

    preparation: Optional[Preparation]  # the data folder's record
    tokens: dict  # split -> {"articles", "tokens", "characters"} as tokenized for training
    tokenizer_report: Optional[TokenizerReport]  # the tokenizer folder's record
    recipe: dict  # the model's and the optimizer's settings, global batch included
    hardware: dict  # {"processes": N, "devices": [name, ...]}
    versions: dict  # {"torch": ..., "transformers": ...}
    # the published model or folder the run started from (train.py --model_name_or_path), None from scratch:
    # {"name": repo id or folder, "revision": commit or None, "fingerprint": weights' SHA-256 or None,
    #  "license": the Hub license id its card gives, or None}
    base_model: Optional[dict] = None

    @property
    def dump_date(self):
        return self.preparation.dump_date if self.preparation else None

    @property
    def sources(self):
        return self.preparation.sources if self.preparation else []

    @classmethod
    def upgrade(cls, fields):
        fields = super().upgrade(fields)
        for old, new in (("data", "preparation"), ("tokenizer", "tokenizer_report")):  # earlier versions' names
            if old in fields and new not in fields:
                fields[new] = fields.pop(old)
        return fields

    @classmethod
    def from_fields(cls, fields):
        for name, record_type in (("preparation", Preparation), ("tokenizer_report", TokenizerReport)):
            if fields.get(name) is not None:
                fields[name] = record_type.from_fields(record_type.upgrade(dict(fields[name])))
        return cls(**fields)
