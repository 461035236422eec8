"""Your own text files: plain text or JSON Lines, local or by URL (prepare_data.py --train_file).

A plain-text file holds documents separated by one or more blank lines; a JSON Lines file (`.jsonl` or
`.json`, either gzipped) one JSON object a line, its text in the field `text` (--text_column names another).
Each document is kept whole (no cleaner runs on it): its id is its `id` field as a string where it has one,
else the SHA-256 of its text, so the same documents get the same ids, and so the same splits, whatever file
they come from; its title is its `title` field, or "".
"""

import gzip
import hashlib
import json
import os
import re
from pathlib import PurePosixPath
from urllib.parse import urlparse

import datasets

from ..dump import is_url
from ..errors import UserError
from ..rerun import file_fingerprint
from .base import DEFAULT_TEXT_COLUMN, USER_DROPPED, USER_FIELDS, Source, document, type_name
from .record import SourceRecord

JSON_LINES_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")


def is_json_lines(source):
    """JSON Lines or plain text, by the name as given (.jsonl, .json, either .gz: JSON Lines)."""
    name = source.split("?", 1)[0] if is_url(source) else source
    return name.lower().endswith(JSON_LINES_SUFFIXES)


def fetch_files(sources):
    """The local path of each file: one by URL is downloaded through datasets' download manager into the shared
    datasets cache (HF_DATASETS_CACHE), afresh each time: a server without ETags would let a cached copy pass for
    a file that changed (the identity is by content, so an unchanged file is still the same data)."""
    manager = datasets.DownloadManager(download_config=datasets.DownloadConfig(
        cache_dir=datasets.config.DOWNLOADED_DATASETS_PATH, force_download=True))
    paths = []
    for source in sources:
        if not is_url(source):
            if not os.path.isfile(source):
                what = "is a folder" if os.path.isdir(source) else "does not exist"
                raise UserError(f"--train_file {source} {what}; pass a plain-text or JSON Lines file or URL.")
            paths.append(source)
            continue
        try:
            paths.append(manager.download(source))
        except (FileNotFoundError, ConnectionError, OSError) as error:
            detail = type(error).__name__ if str(error) in ("", source) else str(error).splitlines()[0]
            raise UserError(f"Could not download --train_file {source} ({detail}); check the URL, or download "
                            "the file and pass its path.") from None
    return paths


def file_identity(source, path):
    """A file by content: its name and SHA-256, so a moved, copied or re-downloaded file is the same."""
    return {"name": source.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1], "sha256": file_fingerprint(path)}


def open_text(path):
    """A file's lines as text: UTF-8 (a byte-order mark dropped), gzipped or not, any line ending as \\n."""
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    if gzipped:
        return gzip.open(path, "rt", encoding="utf-8-sig", newline=None)
    return open(path, encoding="utf-8-sig", newline=None)


def plain_text_documents(lines):
    """The documents of a plain-text file: runs of lines between blank lines, stripped."""
    paragraph = []
    for line in lines:
        if line.strip():
            paragraph.append(line.rstrip("\n"))
        elif paragraph:
            yield "\n".join(paragraph).strip()
            paragraph = []
    if paragraph:
        yield "\n".join(paragraph).strip()


def json_lines_records(lines, source):
    """(line number, JSON object) of each non-blank line."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.rstrip("\n"))
        except json.JSONDecodeError as error:
            at = "" if error.msg.endswith(" at") else " at"  # "Unterminated string starting at", "Extra data"
            raise UserError(f"{source} line {number} is not valid JSON ({error.msg}{at} column {error.colno}); "
                            "a JSON Lines file holds one JSON object a line.") from None
        except (ValueError, RecursionError) as error:  # valid JSON that Python cannot hold: a huge number, deep nesting
            reason = "nested too deeply" if isinstance(error, RecursionError) else str(error).splitlines()[0]
            raise UserError(f"{source} line {number} cannot be read as JSON ({reason}); keep each record a flat "
                            "object of text and small numbers.") from None
        if not isinstance(record, dict):
            raise UserError(f"{source} line {number} is a JSON {type_name(record)}, not an object; a JSON Lines "
                            "file holds one JSON object a line.")
        yield number, record


def file_rows(sources, paths, text_column):
    """Every document of the files, in order (empty ones too: they are counted, then dropped)."""
    for source, path in zip(sources, paths):
        try:
            with open_text(path) as lines:
                if is_json_lines(source):
                    for number, record in json_lines_records(lines, source):
                        yield document(record, text_column, f"{source} line {number}")
                else:
                    for text in plain_text_documents(lines):
                        yield {"id": hashlib.sha256(text.encode()).hexdigest(), "title": "", "text": text}
        except UnicodeDecodeError:
            raise UserError(f"{source} is not UTF-8 text; save it as UTF-8 and rerun.") from None
        except (gzip.BadGzipFile, EOFError):
            raise UserError(f"{source} is not a readable gzip file (cut or damaged); download or compress it "
                            "again.") from None


def file_names(files, quote=""):
    """The names of the files, without their folders (a local path stays off a public card), each between
    `quote`s: at most five, then how many more."""
    names = [quote + (PurePosixPath(urlparse(path).path).name or path) + quote for path in files]
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def files_record(files, text_column, identity=None):
    """The record of the text files `files` (as given), their JSON Lines' `text_column`; `identity` (TextFiles') adds
    each file's SHA-256."""
    named = f"the text files {file_names(files, '`')}"
    by_content = ", ".join(f"`{f['name']}` (SHA-256 `{f['sha256']}`)" for f in (identity or {}).get("files", []))
    return SourceRecord(
        title=file_names(files), named=named, named_ja="独自のテキスト", unit="documents", unit_one="a document", read_as="documents",
        dropped_as=USER_DROPPED, made_from=f"the text files {by_content or file_names(files, '`')}", fields=USER_FIELDS,
        described=f"The text files {file_names(files, '`')}" + (
            f", their `{text_column}` field" if text_column and any(map(is_json_lines, files)) else ""),
        dataset_name=file_names(files),
        dataset_ref={"dataset_type": re.sub(r"[^\w.+-]+", "-", file_names(files)),
                     "dataset_name": f"{file_names(files)}, gpt2-small-ja splits"})


class TextFiles(Source):
    """--train_file: plain-text or JSON Lines files, local or by URL, read by content."""

    def __init__(self, files, text_column=None):
        self.sources = list(files)
        self.text_column = text_column or DEFAULT_TEXT_COLUMN
        self.paths = fetch_files(self.sources)
        self.identity = {"files": [file_identity(s, p) for s, p in zip(self.sources, self.paths)],
                         "text_column": self.text_column}

    def rows(self):
        return file_rows(self.sources, self.paths, self.text_column)

    def nothing_read(self, read):
        return super().nothing_read(read, "pass text separated by blank lines, or JSON Lines whose "
                                          f"{self.text_column!r} field holds it")

    def record(self):
        return files_record(self.sources, self.text_column, self.identity)
