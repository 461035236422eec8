"""The prepared data: a DatasetDict of clean articles (train / validation / test) and its record.

prepare_data.py writes it with `save_to_disk`; every later step reads it through
`load_split`. Each article's split comes from a hash of its page id, so it stays in
its split across reruns, machines and dump dates. `preparation.json` in the same
folder records how it was made and what was counted, and the content fingerprint
of the splits: what a tokenizer or a training run records of the data it read.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import UserError
from .rerun import Record
from .sources import SourceRecord, upgraded_record

SPLITS = ("train", "validation", "test")


def split_of(page_id, validation_percent=1.0, test_percent=1.0):
    """train / validation / test from a stable hash of the page id (same on every machine and run)."""
    bucket = int.from_bytes(hashlib.sha256(page_id.encode()).digest()[:8], "big") / 2**64 * 100
    if bucket < validation_percent:
        return "validation"
    if bucket < validation_percent + test_percent:
        return "test"
    return "train"


def check_prepared(data_dir):
    if not Path(data_dir, "dataset_dict.json").is_file():
        raise UserError(f"{data_dir} holds no prepared data; run prepare_data.py --output_dir {data_dir} first.")


def load_split(data_dir, split, allow_empty=False):
    check_prepared(data_dir)
    dataset = datasets.load_from_disk(str(data_dir))[split]
    if len(dataset) == 0 and not allow_empty:
        raise UserError(f"The {split} split of {data_dir} is empty; prepare more articles.")
    return dataset


def count_characters(dataset):
    """Characters of the text column, counted by Arrow batch by batch: a whole split as Python
    strings would take gigabytes."""
    return sum(pc.sum(pc.utf8_length(batch["text"])).as_py() or 0
               for batch in dataset.with_format("arrow").iter(batch_size=10_000))


def _hash_strings(chunk, values, lengths):
    """Feed a string array's UTF-8 bytes and lengths to two hashes: the same strings give the same
    digests however they are cut into arrays."""
    offset_type = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(chunk.buffers()[1], dtype=offset_type)[chunk.offset:chunk.offset + len(chunk) + 1]
    if len(chunk):
        values.update(memoryview(chunk.buffers()[2])[offsets[0]:offsets[-1]])
    lengths.update(np.diff(offsets).astype("<i8").tobytes())


def content_fingerprint(splits):
    """SHA-256 of the ids and texts of every split, in order: the same articles give the same fingerprint
    however Arrow chunked them (any --num_proc), wherever the folder lies, whatever its file times."""
    digest = hashlib.sha256()
    for name in SPLITS:
        for column in ("id", "text"):
            values, lengths = hashlib.sha256(), hashlib.sha256()
            for batch in splits[name].with_format("arrow").iter(batch_size=10_000):
                for chunk in batch[column].chunks:
                    _hash_strings(chunk, values, lengths)
            digest.update(f"{name}/{column}:{values.hexdigest()}:{lengths.hexdigest()}".encode())
    return digest.hexdigest()


def data_fingerprint(data_dir):
    """The content fingerprint of a prepared data folder: as recorded by prepare_data.py, else computed."""
    record = Preparation.load(data_dir)
    if record is not None:
        return record.fingerprint
    check_prepared(data_dir)
    return content_fingerprint(datasets.load_from_disk(str(data_dir)))


@dataclass
class Preparation(Record):
    """preparation.json: what a data folder was prepared from (identity) and its counts."""

    FILE = "preparation.json"
    OTHER = "data prepared with other settings"
    # token_cache/: where versions before the run folder's token cache wrote it; it goes with the data
    ENTRIES = frozenset({FILE, "dataset_dict.json", *SPLITS, "token_cache"})

    # identity: what the source's documents are made of (sources.base.Source.identity: a dump's files by content
    # and the cleaner, the user's files by content or a Hub dataset at its commit, and the text field), plus
    # max_articles, validation_percent and test_percent
    sources: list  # the dump files or URLs as given (the user's files or URLs, or the dataset's name)
    dump_date: Optional[str]
    pages_read: int
    dropped: dict  # outcome -> documents not kept: a dump's pages (wikitext.OUTCOMES but "kept"), the user's
    # "empty" documents; "duplicate": the id of an earlier one
    articles: int
    splits: dict  # split -> articles
    characters: dict  # split -> characters
    fingerprint: str  # content_fingerprint of the splits
    source: SourceRecord  # what the cards say of the source (gpt2ja.sources)

    @classmethod
    def upgrade(cls, fields):
        fields = super().upgrade(fields)
        if "source" not in fields:  # written before records held their source: it had `corpus`
            fields["source"] = upgraded_record(fields)
        fields.pop("corpus", None)
        return fields

    @classmethod
    def from_fields(cls, fields):
        if isinstance(fields.get("source"), dict):
            fields["source"] = SourceRecord(**fields["source"])
        return cls(**fields)
