"""The run folder: where each step writes, what a finished model folder holds, and run_info.json.

    runs/<name>/
        data/          prepare_data.py (the DatasetDict, preparation.json, token_cache/)
        tokenizer/     tokenizer.py
        checkpoints/   train.py: Trainer's checkpoint-N folders, resumable
        logs/          train.py: TensorBoard
        model/         train.py: weights, config, tokenizer, *_results.json, trainer_state.json, run_info.json
        hub/           push_to_hub.py: exactly the files of the Hub repo
        space/         push_to_hub.py --space_id: the live demo's files
        dataset_card/  push_to_hub.py --dataset_repo_id: the dataset's card
"""

import dataclasses
import errno
import fcntl
import json
import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .cli import UserError
from .splits import Preparation

logger = logging.getLogger(__name__)

# A model folder's files that the Hub repo gets; everything else there stays on the machine.
MODEL_FILES = ("model.safetensors", "config.json", "generation_config.json", "spiece.model",
               "tokenizer_config.json", "tokenizer.json")
OPTIONAL_MODEL_FILES = ("special_tokens_map.json",)
RUN_INFO = "run_info.json"
RUN_IDENTITY = "run_identity.json"  # in checkpoints/: what the run is made of, compared by a resume
TRAINER_STATE = "trainer_state.json"
ALL_RESULTS = "all_results.json"
RESULT_FILES = ("train_results.json", "eval_results.json", "test_results.json", "ood_results.json", ALL_RESULTS)
RUN_FILES = (ALL_RESULTS, TRAINER_STATE, RUN_INFO)  # what the card is made of; not uploaded
# The final evaluation's splits and the prefix of their figures in *_results.json (Trainer's names).
RESULT_PREFIXES = {"validation": "eval", "test": "test"}
OOD_PREFIX = "ood"  # the out-of-domain text's figures (train.py --out_of_domain_text)


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


def holds_own_output(folder, record, flag="--output_dir"):
    """Whether `folder` holds this step's earlier output, known by the `record` file the step writes there.

    An absent or empty folder is free. One that holds anything else (the current folder, a run folder,
    another step's output, a user's files) is refused in one sentence: a step replaces only its own work.
    """
    folder = Path(folder)
    if not folder.exists():
        return False
    if not folder.is_dir():
        raise UserError(f"{flag} {folder} is a file; pass a folder.")
    if (folder / record).is_file():
        return True
    if any(folder.iterdir()):
        raise UserError(f"{flag} {folder} holds files this step did not write (it has no {record}); a step replaces "
                        "only its own output: pass a new or empty folder.")
    return False


def move_into_place(finished, target, record):
    """Replace the folder `target` by `finished` (which holds `record`), so that a later step never sees a
    half-written folder; `target` is replaced only if it is absent, empty, or this step's own output. The old
    output is renamed away before the new one takes its place, so a kill in between loses neither."""
    target = Path(target).resolve()  # a symlinked output folder: replace what it points at
    holds_own_output(target, record)
    old = target.parent / f".{target.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(finished, target)
    shutil.rmtree(old, ignore_errors=True)


def _lock(lock_path, wait):
    """An open file holding an exclusive flock on lock_path. The holder removes the file when done, so a
    waiter that gets the lock of a file no longer at lock_path tries again with the new one."""
    while True:
        lock = open(lock_path, "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            lock.close()
            return None
        try:
            if os.stat(lock_path).st_ino == os.fstat(lock.fileno()).st_ino:
                return lock
        except FileNotFoundError:
            pass
        lock.close()


@contextmanager
def writing(target, wait=False):
    """Hold the lock of the folder `target` and yield a fresh scratch folder beside it to build it in.

    A second run on the same folder is refused in one sentence, or with wait=True (the processes of one
    training run) waits its turn; the kernel drops the lock of a process that dies, so none is ever stale.
    The scratch folder is removed at the end; one left by a killed run is removed by the next.
    """
    target = Path(target).resolve()  # "." has no name to put a lock beside
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    scratch = target.parent / f".{target.name}.partial"
    lock = _lock(lock_path, wait)
    if lock is None:
        raise UserError(f"Another run is writing {target} (it holds {lock_path}); wait for it to finish, "
                        "or pass another folder.")
    old = target.parent / f".{target.name}.old"  # see move_into_place
    try:
        if old.exists() and not target.exists():  # stopped between moving the old output away and the new in
            os.replace(old, target)
            logger.info("Put back %s, which a run stopped while replacing it had moved away.", target)
        shutil.rmtree(old, ignore_errors=True)
        if scratch.exists():
            logger.info("Removing %s, left by a run that was stopped.", scratch)
            shutil.rmtree(scratch)
        scratch.mkdir()
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        os.unlink(lock_path)
        lock.close()


def _is_out_of_space(error, folder):
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # tokenizers (Rust) say it in words; torch's checkpoint writer only says its stream failed
    # ("iostream error", "unexpected pos"): then the disk being full is what tells
    text = str(error)
    return ("No space left on device" in text or "os error 28" in text
            or (isinstance(error, (OSError, RuntimeError)) and _free_bytes(folder) < 2**20))


def _free_bytes(folder):
    folder = Path(folder)
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


@contextmanager
def space_errors(folder, needed_bytes=None):
    """Turn running out of disk space while writing `folder` into one sentence that names it."""
    try:
        yield
    except Exception as error:
        if not _is_out_of_space(error, folder):
            raise
        needed = f" it needs about {needed_bytes / 2**20:,.0f} MiB," if needed_bytes else ""
        raise UserError(f"The disk ran out of space while writing {folder}:{needed} {_free_bytes(folder) / 2**20:,.0f} "
                        "MiB are free; free some space or pass a folder on another disk, then rerun.") from None


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
    complete = [p for p in folder.glob("checkpoint-*")
                if p.name.split("-", 1)[1].isdigit() and (p / TRAINER_STATE).is_file()]
    return str(max(complete, key=lambda p: int(p.name.split("-")[1]))) if complete else None


def remove_incomplete_checkpoints(checkpoints_dir):
    for path in Path(checkpoints_dir).glob("checkpoint-*"):
        if path.name.split("-", 1)[1].isdigit() and not (path / TRAINER_STATE).is_file():
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
    identity: dict  # fingerprints of data and tokenizer, the model config and the recipe (run_identity.json)

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
        """The run_info.json of a model folder, or None where it has none (or one of an older shape)."""
        path = Path(model_dir, RUN_INFO)
        fields = read_json(path) if path.is_file() else {}
        if set(fields) != {f.name for f in dataclasses.fields(cls)}:
            return None
        fields["data"] = Preparation(**fields["data"]) if fields.get("data") else None
        return cls(**fields)
