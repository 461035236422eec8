"""The user's own text instead of a Wikipedia dump: plain-text or JSON Lines files, or a Hub dataset.

    prepare_data.py --train_file notes.txt more.jsonl        # local files or http(s) URLs
    prepare_data.py --dataset_name USER/NAME [--dataset_config_name C] [--dataset_split train]

A plain-text file holds documents separated by one or more blank lines; a JSON Lines file (`.jsonl` or
`.json`, either gzipped) one JSON object a line, its text in the field `text` (--text_column names another).
A Hub dataset is streamed at the commit the Hub names for it now (recorded), so a big one is never
downloaded whole. Every document becomes a row of the prepared data's FEATURES, its text stripped and kept
whole (no cleaner runs on it): its id is its `id` field as a string where it has one, else the SHA-256 of
its text, so the same documents get the same ids, and so the same splits, whatever file or dataset they
come from; its title is its `title` field, or "". Empty documents are dropped and counted.
"""

import gzip
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import datasets

from .dump import is_url
from .errors import UserError, reason_inside
from .rerun import file_fingerprint
from .splits import FEATURES

logger = logging.getLogger(__name__)

JSON_LINES_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
DEFAULT_TEXT_COLUMN = "text"
DEFAULT_SPLIT = "train"


def check_source_flags(dump, train_file, dataset_name, date, mirror, text_column, dataset_config_name,
                       dataset_split):
    """Refuse (ValueError, as an argument dataclass raises) two sources at once, or a flag of another source."""
    given = [flag for flag, value in (("--dump", dump), ("--train_file", train_file),
                                      ("--dataset_name", dataset_name)) if value]
    if len(given) > 1:
        raise ValueError(f"{' and '.join(given)} name two sources; pass one: --dump for a Wikipedia dump, "
                         "--train_file or --dataset_name for your own text")
    own_text = train_file or dataset_name
    if own_text and (date is not None or mirror is not None):
        raise ValueError("--date and --mirror choose a Wikipedia dump; leave them out with "
                         f"{given[0]}")
    if not own_text and text_column is not None:
        raise ValueError("--text_column names the field of your own text; it goes with --train_file or "
                         "--dataset_name, not with a dump")
    if not dataset_name and (dataset_config_name is not None or dataset_split is not None):
        raise ValueError("--dataset_config_name and --dataset_split choose a part of a Hub dataset; they go "
                         "with --dataset_name")


def is_json_lines(source):
    """JSON Lines or plain text, by the name as given (.jsonl, .json, either .gz: JSON Lines)."""
    name = source.split("?", 1)[0] if is_url(source) else source
    return name.lower().endswith(JSON_LINES_SUFFIXES)


def type_name(value):
    """A value's type as JSON names it (a dataset's values too)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {list: "list", dict: "object"}.get(type(value), type(value).__name__)


def document(record, text_column, where):
    """A row of FEATURES from a JSON object or a dataset's example; `where` names it in an error."""
    if text_column not in record:
        fields = ", ".join(sorted(map(str, record))[:8]) or "none"
        raise UserError(f"{where} has no {text_column!r} field (its fields: {fields}); pass --text_column with "
                        "the field that holds the text.")
    text = record[text_column]
    if text is None:  # a missing value: an empty document
        text = ""
    if not isinstance(text, str):
        raise UserError(f"{where}: the {text_column!r} field holds a {type_name(text)}, not text; pass "
                        "--text_column with the field that holds the text.")
    text = text.replace("\r\n", "\n").strip()
    given_id, title = record.get("id"), record.get("title")
    return {"id": str(given_id) if given_id is not None else hashlib.sha256(text.encode()).hexdigest(),
            "title": str(title) if title is not None else "", "text": text}


# --- files ---------------------------------------------------------------------------------------

def fetch_files(sources):
    """The local path of each file: one by URL is downloaded through datasets' download manager into the shared
    datasets cache (HF_DATASETS_CACHE), so a rerun downloads again only a file that changed."""
    manager = datasets.DownloadManager(download_config=datasets.DownloadConfig(
        cache_dir=datasets.config.DOWNLOADED_DATASETS_PATH))
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


# --- a Hub dataset ---------------------------------------------------------------------------------

def dataset_revision(name):
    """The commit the Hub names for the dataset now (from HF_ENDPOINT); a dataset it lacks is one sentence."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, RepositoryNotFoundError
    from .hub import network_errors
    try:
        return HfApi().dataset_info(name).sha
    except HFValidationError as error:
        raise UserError(f"--dataset_name {name!r} is not a Hub dataset id such as USER/NAME "
                        f"({str(error).splitlines()[0]}).") from None
    except RepositoryNotFoundError:
        raise UserError(f"Dataset {name} does not exist on the Hub ({constants.ENDPOINT}), or this token may "
                        "not read it; check --dataset_name (a private or gated dataset needs `hf auth "
                        "login`).") from None
    except (HfHubHTTPError, *network_errors()) as error:
        raise UserError(f"Could not ask the Hub ({constants.ENDPOINT}) about dataset {name} "
                        f"({str(error).splitlines()[0] or type(error).__name__}); check the connection and "
                        "rerun.") from None


def open_dataset(name, config, split, revision):
    """The dataset's split as a stream (datasets.IterableDataset), or one sentence on a config or split it
    lacks."""
    try:
        return datasets.load_dataset(name, config, split=split, revision=revision, streaming=True)
    except datasets.exceptions.DatasetNotFoundError as error:
        raise UserError(f"Dataset {name} cannot be read at {revision} ({error}); check --dataset_name.") from None
    except ValueError as error:
        message = str(error).splitlines()[0]
        available = re.search(r"Available(?: splits)?: \[(.*)\]", message)
        if "BuilderConfig" in message and available:
            raise UserError(f"Dataset {name} has no config {config!r} (it has {available.group(1)}); pass "
                            "--dataset_config_name with one of them.") from None
        if "Bad split" in message and available:
            raise UserError(f"Dataset {name} has no split {split!r} (it has {available.group(1)}); pass "
                            "--dataset_split with one of them.") from None
        raise UserError(f"Dataset {name} cannot be read ({message}); check --dataset_config_name and "
                        "--dataset_split.") from None


def dataset_rows(name, config, split, revision, text_column):
    from huggingface_hub.errors import HfHubHTTPError
    from .hub import network_errors
    number = 0
    try:
        for number, example in enumerate(open_dataset(name, config, split, revision), 1):
            yield document(example, text_column, f"Dataset {name} ({split} split) row {number}")
    except (HfHubHTTPError, *network_errors()) as error:
        if getattr(error, "filename", None):  # a local file's, not the network's
            raise
        detail = str(error).splitlines()[0] if str(error) else ""
        raise UserError(f"Reading dataset {name} from the Hub failed after {number} rows ({type(error).__name__}: "
                        f"{detail}); check the connection and rerun.") from None


# --- the documents, as a datasets.Dataset ----------------------------------------------------------

def _head(rows, max_articles):
    """The rows up to the Nth non-empty one (all without max_articles)."""
    kept = 0
    for row in rows:
        yield row
        kept += bool(row["text"])
        if max_articles and kept == max_articles:
            return


def _generate(kind, max_articles, **kwargs):
    rows = file_rows(**kwargs) if kind == "files" else dataset_rows(**kwargs)
    yield from _head(rows, max_articles)


@dataclass
class Corpus:
    """The user's text: what it is made of (identity), what preparation.json records of it, and how to read it."""

    sources: list  # the files or URLs as given, or the dataset's name
    identity: dict  # the content: files by SHA-256, a dataset by commit; the text column
    record: dict  # Preparation.corpus
    read_kwargs: dict

    def read(self, max_articles=None, num_proc=None, work_dir=None):
        """(the non-empty documents in order, up to the Nth with max_articles; counts: "kept", "empty")."""
        try:
            documents = datasets.Dataset.from_generator(
                _generate, features=FEATURES, cache_dir=str(Path(work_dir, "cache")),
                gen_kwargs={"max_articles": max_articles, **self.read_kwargs},
                fingerprint=hashlib.sha256(json.dumps([self.identity, max_articles]).encode()).hexdigest())
        except datasets.exceptions.DatasetGenerationError as error:
            raise (reason_inside(error) or error) from None
        except ValueError as error:
            if "corresponds to no data" not in str(error):
                raise
            documents = None  # datasets refuses a split with no example: nothing was read
        read = len(documents) if documents is not None else 0
        if read:
            documents = documents.filter(lambda texts: [bool(text) for text in texts], input_columns="text",
                                         batched=True, num_proc=num_proc, desc="Dropping empty documents")
        if not read or not len(documents):
            found = f"{read} document{'s' * (read > 1)} read, all empty" if read else "no document in it"
            column = self.record["text_column"]
            fix = (f"check --dataset_split and --text_column ({column!r})" if self.record["kind"] == "dataset" else
                   f"pass text separated by blank lines, or JSON Lines whose {column!r} field holds it")
            raise UserError(f"{', '.join(self.sources)} holds no document with text ({found}); {fix}.")
        return documents, {"kept": len(documents), "empty": read - len(documents)}


def drop_repeats(documents):
    """(documents with each one given more than once kept once, in order; how many were dropped). An id given to
    two different texts is refused: ids decide splits, and data that reuses them (rows numbered from 0 in each
    file) would lose documents."""
    texts_of_id, keep = {}, []
    for index, (doc_id, text) in enumerate(zip(documents["id"], documents["text"])):
        digest = hashlib.sha256(text.encode()).digest()
        if doc_id not in texts_of_id:
            texts_of_id[doc_id] = digest
            keep.append(index)
        elif texts_of_id[doc_id] != digest:
            raise UserError(f"Two different documents have the id {doc_id!r}: each document's id must be its own "
                            "(the split is drawn from it); make the ids unique, or leave the id field out to "
                            "split by each text's SHA-256.")
    dropped = len(documents) - len(keep)
    if dropped:
        logger.warning("%d documents were given more than once: each is kept once.", dropped)
        documents = documents.select(keep)
    return documents, dropped


def files_corpus(sources, text_column=None):
    text_column = text_column or DEFAULT_TEXT_COLUMN
    paths = fetch_files(sources)
    return Corpus(
        sources=list(sources),
        identity={"files": [file_identity(s, p) for s, p in zip(sources, paths)], "text_column": text_column},
        record={"kind": "files", "files": list(sources), "text_column": text_column},
        read_kwargs={"kind": "files", "sources": list(sources), "paths": paths, "text_column": text_column})


def dataset_corpus(name, config=None, split=None, text_column=None):
    text_column, split = text_column or DEFAULT_TEXT_COLUMN, split or DEFAULT_SPLIT
    dataset = {"name": name, "config": config, "split": split, "revision": dataset_revision(name)}
    logger.info("Reading dataset %s at commit %s, streamed.", name, dataset["revision"])
    return Corpus(
        sources=[name],
        identity={"dataset": dataset, "text_column": text_column},
        record={"kind": "dataset", **dataset, "text_column": text_column},
        read_kwargs={"kind": "dataset", **dataset, "text_column": text_column})


def user_corpus(train_file=(), dataset_name=None, dataset_config_name=None, dataset_split=None,
                text_column=None) -> Optional[Corpus]:
    """The user's text the flags name, or None for a Wikipedia dump."""
    if train_file:
        return files_corpus(train_file, text_column)
    if dataset_name:
        return dataset_corpus(dataset_name, dataset_config_name, dataset_split, text_column)
    return None
