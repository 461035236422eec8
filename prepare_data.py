"""Japanese Wikipedia `pages-articles` dump, or your own text -> DatasetDict of documents (train / validation / test).

    python prepare_data.py                                   # the reference dump (2021-03-01)
    python prepare_data.py --dump jawiki-...-pages-articles.xml.bz2 --output_dir runs/demo/data
    python prepare_data.py --train_file notes.txt more.jsonl --output_dir runs/mine/data
    python prepare_data.py --dataset_name USER/NAME --dataset_split train --output_dir runs/mine/data

`JaWikipedia` is a `datasets.GeneratorBasedBuilder`; instantiate it directly
(`load_dataset` no longer runs dataset scripts). It reads the dump once, as a
stream, and yields every kept article into one split; `split_articles` then
assigns each article to train / validation / test by a stable hash of its page
id, so an article keeps its split across reruns, machines and dump dates.
Your own text (`gpt2ja.corpus`: plain-text or JSON Lines files, or a Hub dataset
streamed) takes the same way from there, its documents kept whole: each is split
by its `id` field, or the SHA-256 of its text where it has none.
"""

import gpt2ja.interrupts  # noqa: F401  (first: Ctrl-C while the libraries below load ends in one line)
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import datasets

from gpt2ja.cli import parse_args, run_main
from gpt2ja.corpus import check_source_flags, drop_repeats, user_corpus
from gpt2ja.dump import (check_exists, download_error, dump_date, dump_identity, dump_url, expand_sources, is_url,
                         iter_pages, latest_dump_date, plan_ranges)
from gpt2ja.errors import DumpError, UserError, reason_inside
from gpt2ja.interrupts import ctrl_c_exits_at_once
from gpt2ja.rerun import building, reuse_or_refuse
from gpt2ja.run_folder import RunFolder
from gpt2ja.settings import DEFAULT_MIRROR, DEFAULT_RUN_DIR, REFERENCE_DUMP_DATE
from gpt2ja.splits import FEATURES, SPLITS, Preparation, content_fingerprint, count_characters, split_of
from gpt2ja.wikitext import CLEANER_VERSION, OUTCOMES, article_text

logger = logging.getLogger("prepare_data")

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
    num_proc: int = field(default=os.cpu_count() or 1, metadata={
        "help": "Processes that parse and clean the dump, or filter your own text (default: all cores)."})
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


# --- reading the dump: a datasets builder ----------------------------------------------------

@dataclass
class JaWikipediaConfig(datasets.BuilderConfig):
    dumps: tuple = ()
    num_proc: int = 1
    max_articles: Optional[int] = None
    stats_dir: Optional[str] = None


class JaWikipedia(datasets.GeneratorBasedBuilder):
    """Clean articles (namespace 0, no redirects, no disambiguation pages) of a jawiki dump.

    Yields a single split, "articles", in dump order; `split_articles` makes
    train / validation / test from it, so the dump is read once.
    """

    BUILDER_CONFIG_CLASS = JaWikipediaConfig

    def _info(self):
        return datasets.DatasetInfo(
            description="Japanese Wikipedia articles as plain text, one paragraph a line.",
            features=FEATURES,
            homepage="https://dumps.wikimedia.org/jawiki/",
            license="CC BY-SA 3.0 (text of Japanese Wikipedia)",
        )

    def _split_generators(self, dl_manager):
        paths = []
        for source in self.config.dumps:
            if not is_url(source):
                check_exists(source)
                paths.append(source)
            elif self.config.max_articles:
                paths.append(source)  # streamed: only the head of the dump is read
            else:
                try:
                    paths.append(dl_manager.download(source))
                except (FileNotFoundError, ConnectionError, OSError) as error:
                    raise download_error(source, error) from None
        ranges_per_dump = max(1, math.ceil(self.config.num_proc / len(paths)))
        shards = []
        for path in paths:
            ranges = plan_ranges(path, ranges_per_dump)
            if len(ranges) < ranges_per_dump and len(paths) < self.config.num_proc:
                logger.info("%s is one compressed stream, so one process reads it; the multistream dump "
                            "or the multi-part files let several processes share the work.", path)
            shards.extend((path, start, end) for start, end in ranges)
        # numbered, so that the counts of the shards can be put back in dump order
        return [datasets.SplitGenerator(name="articles", gen_kwargs={"shards": list(enumerate(shards))})]

    def _generate_examples(self, shards):
        for index, (path, start, end) in shards:
            try:
                yield from self._shard_examples(index, path, start, end)
            except (UserError, OSError) as error:
                # A worker's exception reaches the main process without its cause (datasets wraps it, the
                # pool pickles it): the main process reads the reason here (see worker_error).
                Path(self.config.stats_dir, f"{index:06d}.error").write_text(json.dumps(
                    {"message": str(error) if isinstance(error, UserError) else error.strerror,
                     "errno": getattr(error, "errno", None)}))
                raise

    def _shard_examples(self, index, path, start, end):
        counts = dict.fromkeys(OUTCOMES, 0)
        # With --max_articles, each shard stops on its own after N articles, so the counts as they
        # stood at each kept article are recorded too: the merge then stops where the dump's Nth is.
        at_kept = []
        for page in iter_pages(path, start, end):
            text, outcome = article_text(page)
            counts[outcome] += 1
            if text is not None:
                yield page.id, {"id": page.id, "title": page.title, "text": text}
                if self.config.max_articles:
                    at_kept.append(dict(counts))
                    if counts["kept"] == self.config.max_articles:
                        break
        Path(self.config.stats_dir, f"{index:06d}.json").write_text(json.dumps({"counts": counts, "at_kept": at_kept}))


def merge_counts(shard_stats, max_articles=None):
    """Page counts of the shards in dump order, up to the dump's Nth article with max_articles."""
    total = dict.fromkeys(OUTCOMES, 0)
    for stats in shard_stats:
        wanted = max_articles - total["kept"] if max_articles else None
        last = stats["at_kept"][wanted - 1] if wanted is not None and stats["counts"]["kept"] >= wanted else None
        for outcome, count in (last or stats["counts"]).items():
            total[outcome] += count
        if last:
            break
    return total


def build_articles(sources, num_proc=1, max_articles=None, work_dir=None):
    """Run the builder over the dump files; return (articles Dataset in dump order, or None where no page
    is an article; page counts)."""
    stats_dir = Path(work_dir, "stats")
    stats_dir.mkdir(parents=True, exist_ok=True)
    builder = JaWikipedia(
        cache_dir=str(Path(work_dir, "cache")),
        config_name="jawiki",
        dumps=tuple(sources),
        num_proc=max(1, num_proc),
        max_articles=max_articles,
        stats_dir=str(stats_dir),
    )
    try:
        # Downloads go to the shared datasets cache (HF_DATASETS_CACHE), not the temporary work folder,
        # so a rerun or another output folder reuses the dump.
        builder.download_and_prepare(
            num_proc=num_proc if num_proc > 1 else None,
            download_config=datasets.DownloadConfig(cache_dir=datasets.config.DOWNLOADED_DATASETS_PATH))
        articles = builder.as_dataset(split="articles")
    except datasets.exceptions.DatasetGenerationError as error:
        # the reason is inside: a DumpError of ours, or the disk running out of space
        raise (reason_inside(error) or worker_error(stats_dir) or error) from None
    except ValueError as error:
        if "corresponds to no data" not in str(error):
            raise
        articles = None  # datasets refuses a split with no example: no page of the dump is an article
    counts = merge_counts([json.loads(p.read_text()) for p in sorted(stats_dir.glob("*.json"))], max_articles)
    if articles is not None and max_articles and len(articles) > max_articles:
        articles = articles.select(range(max_articles))
    if articles is not None:
        articles, counts["duplicate"] = drop_duplicates(articles)
        counts["kept"] -= counts["duplicate"]
    return articles, counts


def worker_error(stats_dir):
    """The first error a worker process recorded (see JaWikipedia._generate_examples), as it was raised."""
    recorded = sorted(Path(stats_dir).glob("*.error"))
    if not recorded:
        return None
    error = json.loads(recorded[0].read_text())
    return OSError(error["errno"], error["message"]) if error["errno"] else DumpError(error["message"])


def drop_duplicates(articles):
    """(articles with the first page of each page id only, in dump order; how many were dropped): a page
    given twice (a dump's repeated page, overlapping parts) is trained on once."""
    seen, keep = set(), []
    for index, page_id in enumerate(articles["id"]):
        if page_id not in seen:
            seen.add(page_id)
            keep.append(index)
    if len(keep) == len(articles):
        return articles, 0
    logger.warning("%d pages share the page id of an earlier page: only the first of each is kept.",
                   len(articles) - len(keep))
    return articles.select(keep), len(articles) - len(keep)


def split_articles(articles, validation_percent=1.0, test_percent=1.0, num_proc=None):
    """train / validation / test by the page-id hash; disjoint by construction."""
    def keep(name):
        return lambda ids: [split_of(i, validation_percent, test_percent) == name for i in ids]

    return datasets.DatasetDict({
        name: articles.filter(keep(name), input_columns="id", batched=True, num_proc=num_proc,
                              desc=f"Selecting {name}")
        for name in SPLITS
    })


# --- the command --------------------------------------------------------------------------------

def prepare(args):
    """Write the DatasetDict to args.output_dir, atomically: a failed run leaves no output folder."""
    corpus = user_corpus(args.train_file, args.dataset_name, args.dataset_config_name, args.dataset_split,
                         args.text_column)
    date, mirror = args.date or REFERENCE_DUMP_DATE, args.mirror or DEFAULT_MIRROR
    sources = corpus.sources if corpus else expand_sources(args.dump or [dump_url(date, mirror)])
    # the wiki cleaner runs on dumps only: the user's text is kept as it is
    read = corpus.identity if corpus else {"dumps": [dump_identity(source) for source in sources]}
    identity = {**read, "max_articles": args.max_articles,
                "validation_percent": args.validation_percent, "test_percent": args.test_percent,
                **({} if corpus else {"cleaner": CLEANER_VERSION})}
    output_dir = Path(args.output_dir)
    previous = reuse_or_refuse(output_dir, Preparation, identity, args.overwrite_output_dir)
    if previous:
        return previous

    with building(output_dir) as build, ctrl_c_exits_at_once():
        finished = reuse_or_refuse(output_dir, Preparation, identity, args.overwrite_output_dir)
        if finished:  # by a run that held the lock between the check above and this one
            return finished
        if corpus:
            articles, counts = corpus.read(args.max_articles, args.num_proc if args.num_proc > 1 else None,
                                           build.work)
            articles, counts["duplicate"] = drop_repeats(articles)
            counts["kept"] -= counts["duplicate"]
        else:
            articles, counts = build_articles(sources, args.num_proc, args.max_articles, build.work)
        if articles is None or len(articles) == 0:
            raise UserError(f"{', '.join(sources)} holds no article (namespace 0, not a redirect); "
                            "pass a jawiki pages-articles dump.")
        splits = split_articles(articles, args.validation_percent, args.test_percent,
                                num_proc=args.num_proc if args.num_proc > 1 else None)
        splits.save_to_disk(str(build.output))
        record = Preparation(
            identity=identity,
            sources=sources,
            dump_date=None if corpus else next((d for d in map(dump_date, sources) if d), None) or (
                latest_dump_date(mirror) if not args.dump and date == "latest" else None),
            pages_read=sum(counts.values()),
            dropped={k: v for k, v in counts.items() if k != "kept"},
            articles=len(articles),
            splits={name: len(split) for name, split in splits.items()},
            characters={name: count_characters(split) for name, split in splits.items()},
            fingerprint=content_fingerprint(splits),
            corpus=corpus.record if corpus else None,
        )
        del articles, splits
        build.finish(record)
    logger.info("Wrote %s: %s %s (train %d, validation %d, test %d); dropped %s.", output_dir, record.articles,
                "documents" if corpus else "articles", *record.splits.values(), record.dropped)
    for split in ("validation", "test"):
        percent = getattr(args, f"{split}_percent")
        if percent and not record.splits[split]:
            logger.warning("The %s split got none of the %d %s at --%s_percent %g, so train.py will not score "
                           "it; pass a larger --%s_percent.", split, record.articles,
                           "documents" if corpus else "articles", split, percent, split)
    return record


def main(argv=None):
    (args,) = parse_args([PrepareArguments], argv, description=__doc__)
    return prepare(args)


if __name__ == "__main__":
    run_main(main)
