"""Japanese Wikipedia `pages-articles` dump, or your own text -> DatasetDict of documents (train / validation / test).

    python prepare_data.py                                   # the reference dump (2021-03-01)
    python prepare_data.py --dump jawiki-...-pages-articles.xml.bz2 --output_dir runs/demo/data
    python prepare_data.py --train_file notes.txt more.jsonl --output_dir runs/mine/data
    python prepare_data.py --dataset_name USER/NAME --dataset_split train --output_dir runs/mine/data

A source (`gpt2ja.sources`: the dump, your files, a Hub dataset) is read once, as a stream, into one
Dataset of documents; `split_articles` then assigns each to train / validation / test by a stable hash of its
id (a page id, your `id` field, or the SHA-256 of the text), so a document keeps its split across reruns,
machines and dump dates. The dump's `datasets` builder is `JaWikipedia` (gpt2ja.sources.wikipedia;
instantiate it directly: `load_dataset` no longer runs dataset scripts); your own text is kept whole.
"""

import gpt2ja.interrupts  # noqa: F401  (first: Ctrl-C while the libraries below load ends in one line)
import logging
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Optional

import datasets

from gpt2ja.cli import parse_args, run_main
from gpt2ja.interrupts import ctrl_c_exits_at_once
from gpt2ja.rerun import reuse_or_build, reuse_or_refuse
from gpt2ja.run_folder import RunFolder
from gpt2ja.settings import DEFAULT_MIRROR, DEFAULT_RUN_DIR, REFERENCE_DUMP_DATE
from gpt2ja.sources.base import read_documents
from gpt2ja.sources.files import TextFiles, is_json_lines
from gpt2ja.sources.hub_dataset import HubDataset
from gpt2ja.sources.wikipedia import JaWikipedia, WikipediaDump  # noqa: F401  (the dump's builder, by its name)
from gpt2ja.splits import SPLITS, Preparation, content_fingerprint, count_characters, split_of

logger = logging.getLogger("prepare_data")

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
    if train_file and text_column is not None and not any(map(is_json_lines, train_file)):
        raise ValueError("--text_column names the field of JSON Lines records; plain-text files hold no fields "
                         "(each document is the text between blank lines): leave it out")
    if not own_text and text_column is not None:
        raise ValueError("--text_column names the field of your own text; it goes with --train_file or "
                         "--dataset_name, not with a dump")
    if not dataset_name and (dataset_config_name is not None or dataset_split is not None):
        raise ValueError("--dataset_config_name and --dataset_split choose a part of a Hub dataset; they go "
                         "with --dataset_name")


@dataclass
class PrepareArguments:
    dump: list[str] = field(default_factory=list, metadata={
        "action": "extend",
        "help": "Dump file(s) or URL(s): .xml.bz2, .xml, .xml.gz, the parts of a multi-part dump "
                "(repeat the flag or use a glob). Default: the dump of --date from --mirror, unless "
                "--train_file or --dataset_name gives your own text."})
    date: Optional[str] = field(default=None, metadata={
        "help": f"Dump date (YYYYMMDD, or latest) used to build the URL when no --dump is given "
                f"(default: {REFERENCE_DUMP_DATE})."})
    mirror: Optional[str] = field(default=None, metadata={
        "help": f"Base URL of a Wikimedia dumps mirror, for dates dumps.wikimedia.org no longer keeps "
                f"(default: {DEFAULT_MIRROR})."})
    train_file: list[str] = field(default_factory=list, metadata={
        "action": "extend",
        "help": "Your own text instead of a dump: file(s) or http(s) URL(s), plain text (documents separated "
                "by blank lines) or JSON Lines (.jsonl, .json, either .gz: one object a line, the text in "
                "--text_column). Each document is kept whole."})
    dataset_name: Optional[str] = field(default=None, metadata={
        "help": "Your own text instead of a dump: a Hub dataset (USER/NAME), streamed from HF_ENDPOINT at "
                "its current commit, which is recorded."})
    dataset_config_name: Optional[str] = field(default=None, metadata={
        "help": "The configuration of --dataset_name (default: the dataset's default one)."})
    dataset_split: Optional[str] = field(default=None, metadata={
        "help": "The split of --dataset_name that is read (default: train); it is split again into "
                "train / validation / test."})
    text_column: Optional[str] = field(default=None, metadata={
        "help": "The field of --train_file JSON Lines or --dataset_name that holds the text (default: text); "
                "an `id` field, where there is one, decides a document's split, and a `title` field is kept."})
    output_dir: str = field(default=str(RunFolder(DEFAULT_RUN_DIR).data), metadata={
        "help": "Where the DatasetDict (train / validation / test) is saved."})
    # Each process reads a .bz2 dump through a bzip2 of its own, which takes about a quarter of its CPU on the
    # other cores: on 2 cores, 2 processes measured 0.86x to 1.03x the wall time of 1, at 2% to 24% more CPU
    # (docs/results.md).
    num_proc: int = field(default=max(1, (os.cpu_count() or 1) * 3 // 4), metadata={
        "help": "Processes that parse and clean the dump, or filter your own text (default: three quarters of "
                "the cores, leaving the rest to their bzip2 processes)."})
    max_articles: Optional[int] = field(default=None, metadata={
        "help": "Keep only the first N articles of the dump, in dump order, or the first N documents of your "
                "own text (for a quick sample)."})
    validation_percent: float = field(default=1.0, metadata={"help": "Share of articles in validation."})
    test_percent: float = field(default=1.0, metadata={"help": "Share of articles in test."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Replace the data this step prepared earlier in --output_dir with other settings."})

    def __post_init__(self):
        if self.num_proc < 1:
            raise ValueError(f"--num_proc must be 1 or more, not {self.num_proc}")
        if self.max_articles is not None and self.max_articles < 1:
            raise ValueError(f"--max_articles must be 1 or more, not {self.max_articles} (leave it out for all)")
        if not (self.validation_percent >= 0 and self.test_percent >= 0
                and self.validation_percent + self.test_percent < 100):
            raise ValueError("--validation_percent and --test_percent must be 0 or more, and less than 100 together")
        check_source_flags(self.dump, self.train_file, self.dataset_name, self.date, self.mirror, self.text_column,
                           self.dataset_config_name, self.dataset_split)


def split_articles(articles, validation_percent=1.0, test_percent=1.0):
    """train / validation / test by the page-id hash; disjoint by construction. In this process: selecting by
    page id is quick (about 5 CPU-s for a full dump's 1.25M articles), and a pool of workers for each split
    cost more than it saved."""
    def keep(name):
        return lambda ids: [split_of(i, validation_percent, test_percent) == name for i in ids]

    return datasets.DatasetDict({
        name: articles.filter(keep(name), input_columns="id", batched=True, desc=f"Selecting {name}")
        for name in SPLITS
    })

# --- the command --------------------------------------------------------------------------------

def source_from_flags(args):
    """The source the flags name: your own files or Hub dataset, else a Wikipedia dump."""
    if args.train_file:
        return TextFiles(args.train_file, args.text_column)
    if args.dataset_name:
        return HubDataset(args.dataset_name, args.dataset_config_name, args.dataset_split, args.text_column)
    return WikipediaDump(args.dump, args.date, args.mirror)


def prepare(args, source=None):
    """Write the DatasetDict of `source` (default: the one the flags name) to args.output_dir, atomically: a
    failed run leaves no output folder."""
    source = source or source_from_flags(args)
    identity = {**source.identity, "max_articles": args.max_articles,
                "validation_percent": args.validation_percent, "test_percent": args.test_percent}
    output_dir = Path(args.output_dir)
    num_proc = args.num_proc if args.num_proc > 1 else None
    finished = partial(reuse_or_refuse, output_dir, Preparation, identity, args.overwrite_output_dir)
    with reuse_or_build(output_dir, finished) as (previous, build), ctrl_c_exits_at_once():
        if previous:
            return previous
        documents, counts = read_documents(source, args.max_articles, num_proc, build.work)
        splits = split_articles(documents, args.validation_percent, args.test_percent)
        splits.save_to_disk(str(build.output))
        record = Preparation(
            identity=identity,
            sources=source.sources,
            dump_date=source.dump_date,
            pages_read=sum(counts.values()),
            dropped={k: v for k, v in counts.items() if k != "kept"},
            articles=len(documents),
            splits={name: len(split) for name, split in splits.items()},
            characters={name: count_characters(split) for name, split in splits.items()},
            fingerprint=content_fingerprint(splits),
            source=source.record(),
        )
        del documents, splits
        build.finish(record)
    logger.info("Wrote %s: %s %s (train %d, validation %d, test %d); dropped %s.", output_dir, record.articles,
                source.unit, *record.splits.values(), record.dropped)
    for split in ("validation", "test"):
        percent = getattr(args, f"{split}_percent")
        if percent and not record.splits[split]:
            logger.warning("The %s split got none of the %d %s at --%s_percent %g, so train.py will not score "
                           "it; pass a larger --%s_percent.", split, record.articles,
                           source.unit, split, percent, split)
    return record


def main(argv=None):
    (args,) = parse_args([PrepareArguments], argv, description=__doc__)
    return prepare(args)


if __name__ == "__main__":
    run_main(main)
