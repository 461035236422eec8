"""Where documents come from, one module a source (a new source is a new module): a Japanese Wikipedia dump
(`wikipedia`), your own text files (`files`), a Hub dataset (`hub_dataset`). Each is a `base.Source`: its
identity, its reader into the same rows (`base.FEATURES`), and the `record.SourceRecord` the cards read;
`base.read_documents` is the one way from any of them to the documents that are split.

This module answers the one question no other module asks, which source a record of an earlier version came
from (`upgraded_record`).
"""

from .files import files_record
from .hub_dataset import dataset_record
from .record import SourceRecord
from .wikipedia import wikipedia_record


def upgraded_record(fields):
    """The SourceRecord of a preparation.json written before records held one: a Wikipedia dump where its
    `corpus` is None, else the user's files or Hub dataset it names."""
    corpus = fields.get("corpus")
    if corpus is None:
        return wikipedia_record(fields.get("dump_date"), fields.get("sources", []),
                                fields.get("identity", {}).get("cleaner"))
    if corpus["kind"] == "dataset":
        return dataset_record(corpus["name"], corpus.get("config"), corpus.get("split"), corpus.get("revision"),
                              corpus.get("text_column"))
    return files_record(corpus["files"], corpus.get("text_column"))


def source_of(preparation):
    """The SourceRecord of a data folder's record; a run of an earlier version that recorded no preparation
    read a dump of unknown date."""
    return preparation.source if preparation is not None else wikipedia_record(None, [], None)


__all__ = ["SourceRecord", "source_of", "upgraded_record"]
