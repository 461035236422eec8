"""Fingerprints by content, never by path or file time: a moved or copied checkout keeps its identity.

What a run was made from (the dump, the prepared articles, the tokenizer) is recorded by these, and a
resume, a reuse or an export compares them.
"""

import hashlib
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa

from .cli import UserError
from .splits import SPLITS, Preparation


def file_fingerprint(path):
    """SHA-256 of a file's bytes, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    if not Path(data_dir, "dataset_dict.json").is_file():
        raise UserError(f"{data_dir} holds no prepared data; run prepare_data.py --output_dir {data_dir} first.")
    return content_fingerprint(datasets.load_from_disk(str(data_dir)))


def input_fingerprints(data_dir, tokenizer_dir):
    """What a training run reads, by content: {"data": ..., "tokenizer": ...} (the SentencePiece model)."""
    return {"data": data_fingerprint(data_dir), "tokenizer": file_fingerprint(Path(tokenizer_dir, "spiece.model"))}
