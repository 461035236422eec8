"""What every source of documents shares: the rows they all read into (FEATURES), the one way from a source's
reader to the documents that are split (read_documents: counting, the empty-split rule, the duplicate rule), and
the row of a record that names its own text field (the user's files and datasets).

A source is a `Source`: its identity (what its documents are made of, compared by a rerun), the files or names
it was given (`sources`), a reader, and the record the cards read (`record()`, a SourceRecord).
"""

import hashlib
import json
import logging
from pathlib import Path

import datasets

from ..errors import UserError, reason_inside

logger = logging.getLogger(__name__)

FEATURES = datasets.Features(
    {"id": datasets.Value("string"), "title": datasets.Value("string"), "text": datasets.Value("string")}
)


class Source:
    """Where documents come from. A subclass gives `identity`, `sources`, `rows()` (or its own `read`), `record()`
    and `nothing_read()`; the class attributes say how its documents are counted and de-duplicated."""

    unit = "documents"  # what a row is, in the log and the cards
    dump_date = None  # the date of a dump the documents come from (preparation.json's dump_date)
    # A repeated id: True keeps the first document of it whatever its text (a dump's page given twice); False keeps
    # one of the same text and refuses two texts under one id (ids decide splits: none may be lost).
    keep_first_of_an_id = False

    identity: dict
    sources: list

    def rows(self):
        """Every document as a row of FEATURES, in order, empty ones too (they are counted, then dropped)."""
        raise NotImplementedError

    def record(self):
        """The SourceRecord of what was read, which preparation.json keeps and the cards read."""
        raise NotImplementedError

    def nothing_read(self, read):
        """The sentence for a source that gave no document with text, of `read` documents read (all empty)."""
        found = f"{read} document{'s' * (read > 1)} read, all empty" if read else "no document in it"
        return f"{', '.join(self.sources)} holds no document with text ({found})."

    def read(self, max_documents=None, num_proc=None, work_dir=None):
        """(the non-empty documents in order, up to the Nth with max_documents, or None; counts: kept, empty)."""
        documents = dataset_or_none(lambda: datasets.Dataset.from_generator(
            _head, features=FEATURES, cache_dir=str(Path(work_dir, "cache")),
            gen_kwargs={"source": self, "max_documents": max_documents},
            fingerprint=hashlib.sha256(json.dumps([self.identity, max_documents]).encode()).hexdigest()))
        read = len(documents) if documents is not None else 0
        if not read:
            return None, {"kept": 0, "empty": 0}
        documents = documents.filter(lambda texts: [bool(text) for text in texts], input_columns="text",
                                     batched=True, num_proc=num_proc, desc="Dropping empty documents")
        return documents, {"kept": len(documents), "empty": read - len(documents)}


def _head(source, max_documents):
    """The source's rows up to the Nth non-empty one (all without max_documents)."""
    kept = 0
    for row in source.rows():
        yield row
        kept += bool(row["text"])
        if max_documents and kept == max_documents:
            return


def dataset_or_none(make, reason=lambda: None):
    """The Dataset `make()` builds, or None where no example was generated (datasets refuses an empty split); a
    UserError or OSError raised in the generator (or what `reason()` finds) comes out as itself, not wrapped by
    datasets; any other error keeps its whole chain."""
    try:
        return make()
    except datasets.exceptions.DatasetGenerationError as error:
        found = reason_inside(error) or reason()
        if found is None:
            raise  # an unforeseen cause: datasets' error, with the chain that names it
        raise found from None
    except ValueError as error:
        if "corresponds to no data" not in str(error):
            raise
        return None


def read_documents(source, max_documents=None, num_proc=None, work_dir=None):
    """(the documents of a source that are split: read, empty ones dropped, repeats dropped by the source's rule;
    counts of each outcome). A source with no document is one sentence."""
    documents, counts = source.read(max_documents, num_proc, work_dir)
    if documents is None or len(documents) == 0:
        raise UserError(source.nothing_read(counts.get("empty", 0)))
    documents, counts["duplicate"] = drop_repeats(documents, source.keep_first_of_an_id, source.unit)
    counts["kept"] -= counts["duplicate"]
    return documents, counts


def drop_repeats(documents, keep_first_of_an_id, unit="documents"):
    """(documents with each id kept once, in order; how many were dropped). With keep_first_of_an_id, the first
    document of an id is kept whatever its text; without, one given twice is kept once and two texts under one
    id are refused."""
    seen, keep = {}, []
    texts = None if keep_first_of_an_id else documents["text"]
    for index, doc_id in enumerate(documents["id"]):
        digest = None if texts is None else hashlib.sha256(texts[index].encode()).digest()
        if doc_id not in seen:
            seen[doc_id] = digest
            keep.append(index)
        elif seen[doc_id] != digest:
            raise UserError(f"Two different documents have the id {doc_id!r}: each document's id must be its own "
                            "(the split is drawn from it); make the ids unique, or leave the id field out to "
                            "split by each text's SHA-256.")
    dropped = len(documents) - len(keep)
    if dropped:
        logger.warning("%d %s repeat the id of an earlier one: only the first of each is kept.", dropped, unit)
        documents = documents.select(keep)
    return documents, dropped


# --- the user's own text: records that name their text field ---------------------------------------

DEFAULT_TEXT_COLUMN = "text"


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


USER_FIELDS = {"id": "the document's id, which its split is drawn from",
               "title": "the document's title, where its source gives one", "text": "the document's text"}
