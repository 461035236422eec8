"""The prepared data: a DatasetDict of clean articles (train / validation / test) and its record.

prepare_data.py writes it with `save_to_disk`; every later step reads it through
`load_split`. Each article's split comes from a hash of its page id, so it stays in
its split across reruns, machines and dump dates. `preparation.json` in the same
folder records how it was made and what was counted.
"""

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import datasets
import pyarrow.compute as pc

from .cli import UserError

SPLITS = ("train", "validation", "test")
PREPARATION_FILE = "preparation.json"
FEATURES = datasets.Features(
    {"id": datasets.Value("string"), "title": datasets.Value("string"), "text": datasets.Value("string")}
)


def split_of(page_id, validation_percent=1.0, test_percent=1.0):
    """train / validation / test from a stable hash of the page id (same on every machine and run)."""
    bucket = int.from_bytes(hashlib.sha256(page_id.encode()).digest()[:8], "big") / 2**64 * 100
    if bucket < validation_percent:
        return "validation"
    if bucket < validation_percent + test_percent:
        return "test"
    return "train"


def load_split(data_dir, split, allow_empty=False):
    data_dir = Path(data_dir)
    if not (data_dir / "dataset_dict.json").is_file():
        raise UserError(f"{data_dir} holds no prepared data; run prepare_data.py --output_dir {data_dir} first.")
    dataset = datasets.load_from_disk(str(data_dir))[split]
    if len(dataset) == 0 and not allow_empty:
        raise UserError(f"The {split} split of {data_dir} is empty; prepare more articles.")
    return dataset


def count_characters(dataset):
    """Characters of the text column, counted by Arrow batch by batch: a whole split as Python
    strings would take gigabytes."""
    return sum(pc.sum(pc.utf8_length(batch["text"])).as_py() or 0
               for batch in dataset.with_format("arrow").iter(batch_size=10_000))


@dataclass
class Preparation:
    """preparation.json: the settings a data folder was prepared with and its counts."""

    settings: dict  # the dumps by content, max_articles, validation_percent, test_percent, cleaner
    sources: list  # the dump files or URLs as given
    dump_date: Optional[str]
    pages_read: int
    dropped: dict  # outcome -> pages (wikitext.OUTCOMES but "kept")
    articles: int
    splits: dict  # split -> articles
    characters: dict  # split -> characters
    fingerprint: str  # content_fingerprint of the splits

    def save(self, folder):
        Path(folder, PREPARATION_FILE).write_text(
            json.dumps(dataclasses.asdict(self), ensure_ascii=False, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, folder):
        """The record of a data folder, or None where it has none (or one of an older shape)."""
        path = Path(folder, PREPARATION_FILE)
        if not path.is_file():
            return None
        fields = json.loads(path.read_text(encoding="utf-8"))
        if set(fields) != {f.name for f in dataclasses.fields(cls)}:
            return None
        return cls(**fields)
