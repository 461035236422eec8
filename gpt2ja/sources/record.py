"""SourceRecord: what the cards say of where the documents came from, written by the source that read them into
preparation.json (its `source`). Standard library only: the data folder's record (gpt2ja.splits) holds one."""

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class SourceRecord:
    title: str  # plain text: "Japanese Wikipedia 20210301", "USER/NAME", "a.txt and b.txt"
    named: str  # in a sentence, Markdown: "Japanese Wikipedia (the dump of 20210301)", "the Hub dataset [USER/NAME](...)"
    named_ja: str  # the same in Japanese, for the card's 日本語 summary: "日本語版ウィキペディア（20210301 のダンプ）"
    described: str  # the Data section's opening, Markdown: the source with its version and the field read
    unit: str  # what a row is: "articles" or "documents"
    unit_one: str  # one of them, with its article: "an article", "a document"
    read_as: str  # what the source holds, of which some became rows: "pages", "documents"
    dropped_as: dict  # preparation.json's dropped outcome -> what it says of them: "redirects", "empty documents"
    made_from: str  # Markdown: the source by content, as the dataset card's "How it was made" names it
    fields: dict  # id / title / text -> what the field holds
    cleaning: Optional[str] = None  # what cleaning did to the text; None where it is kept whole
    license: Optional[str] = None  # the text's Hub license id where the source says it; None: its owner's terms
    attribution: Optional[str] = None  # Markdown: where the text's authors are named, where its license asks it
    license_note: Optional[str] = None  # why a later version of the text's license applies, where it may
    caveat: Optional[str] = None  # what a model of this text knows little of
    cited_as: Optional[str] = None  # the text as a citation's title names what the model was trained on
    hub_datasets: Optional[list] = None  # the Hub datasets the text is in (the card's `datasets`)
    dataset_name: str = ""  # the model-index name of the published splits
    dataset_ref: dict = field(default_factory=dict)  # the model-index dataset where the splits are not published
    source_datasets: list = field(default_factory=lambda: ["original"])  # the dataset card's
    tags: list = field(default_factory=lambda: ["japanese"])
    short_name: Optional[str] = None  # "Wikipedia": in the Space's one-line description, where short
