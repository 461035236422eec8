"""Japanese Wikipedia `pages-articles` dump -> DatasetDict of clean articles (train / validation / test).

    python prepare_data.py                                   # the reference dump (2021-03-01)
    python prepare_data.py --dump jawiki-...-pages-articles.xml.bz2 --output_dir runs/demo/data

`JaWikipedia` is a `datasets.GeneratorBasedBuilder`; instantiate it directly
(`load_dataset` no longer runs dataset scripts). It reads the dump once, as a
stream, and yields every kept article into one split; `split_articles` then
assigns each article to train / validation / test by a stable hash of its page
id, so an article keeps its split across reruns, machines and dump dates.
"""

import bz2
import gzip
import hashlib
import json
import logging
import io
import math
import mmap
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Optional

import datasets
import pyarrow.compute as pc

from common import DEFAULT_RUN_DIR, UserError, move_into_place, parse_args, run_main
from wikitext import clean_wikitext, is_disambiguation

logger = logging.getLogger("prepare_data")

REFERENCE_DATE = "20210301"
DEFAULT_MIRROR = "https://dumps.wikimedia.org"
ARCHIVE_MIRROR_HINT = (
    "dumps.wikimedia.org keeps only the last few dates; for an older one pass --mirror "
    "with a mirror that keeps it (see https://meta.wikimedia.org/wiki/Mirroring_Wikimedia_project_XML_dumps, "
    "or the Internet Archive's 'jawiki-DATE' items) or download the file and pass --dump PATH"
)
SPLITS = ("train", "validation", "test")
STATS_FILE = "preparation.json"
FEATURES = datasets.Features(
    {"id": datasets.Value("string"), "title": datasets.Value("string"), "text": datasets.Value("string")}
)


class DumpError(UserError):
    """A dump that cannot be read: missing, empty, not a MediaWiki export, cut or corrupt."""


def dump_url(date=REFERENCE_DATE, mirror=DEFAULT_MIRROR):
    # The multistream file holds the same pages as pages-articles.xml.bz2, in
    # independent bz2 streams, so several processes can read it at once.
    return f"{mirror.rstrip('/')}/jawiki/{date}/jawiki-{date}-pages-articles-multistream.xml.bz2"


def dump_date(source):
    match = re.search(r"jawiki-(\d{8})-", os.path.basename(source))
    return match.group(1) if match else None


def _part_order(path):
    # multi-part dumps: jawiki-DATE-pages-articles2.xml-p114795p390428.bz2 sorts by its first page id
    match = re.search(r"-p(\d+)p\d+", os.path.basename(path))
    return (int(match.group(1)) if match else -1, path)


def is_url(source):
    return re.match(r"^[a-z][a-z0-9+.-]*://", source) is not None


def expand_sources(sources):
    """Local paths may be globs (the parts of a multi-part dump); URLs pass through."""
    expanded = []
    for source in sources:
        if is_url(source) or not any(ch in source for ch in "*?["):
            expanded.append(source)
            continue
        matches = sorted(glob(os.path.expanduser(source)), key=_part_order)
        if not matches:
            raise DumpError(f"No file matches {source}; check the path of the dump parts.")
        expanded.extend(matches)
    return expanded


BZ2_STREAM_START = re.compile(rb"BZh[1-9]1AY&SY")  # a bz2 stream header and its first block's magic
SYNTHETIC_ROOT = b'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">'


class _ByteRange(io.RawIOBase):
    """The bytes [start, end) of a file, read as a stream."""

    def __init__(self, path, start=0, end=None):
        self._file = open(path, "rb")
        self._file.seek(start)
        self._left = None if end is None else end - start

    def readable(self):
        return True

    def readinto(self, buffer):
        size = len(buffer) if self._left is None else min(len(buffer), self._left)
        data = self._file.read(size)
        buffer[:len(data)] = data
        if self._left is not None:
            self._left -= len(data)
        return len(data)

    def close(self):
        self._file.close()
        super().close()


def _check_exists(path):
    if not os.path.isfile(path):
        raise DumpError(f"Dump {path} does not exist; pass --dump with a jawiki pages-articles file or URL.")


def _compression(path):
    with open(path, "rb") as probe:
        magic = probe.read(3)
    return "bz2" if magic == b"BZh" else "gzip" if magic[:2] == b"\x1f\x8b" else None


def _open_xml(path, start=0, end=None):
    """The XML bytes of [start, end) of a dump, decompressed on the fly, never to disk."""
    if is_url(path):  # only with --max_articles: read the head of the remote dump as a stream
        import fsspec
        raw = fsspec.open(path, "rb").open()
        return bz2.open(raw) if path.endswith(".bz2") else raw
    compression = _compression(path)
    if compression == "gzip":
        return gzip.open(path, "rb")
    raw = io.BufferedReader(_ByteRange(path, start, end), buffer_size=1 << 20)
    return bz2.open(raw, "rb") if compression == "bz2" else raw


def plan_ranges(path, num_ranges):
    """Cut a dump into about num_ranges byte ranges that each start a bz2 stream or a <page>.

    The multistream dumps (pages-articles-multistream.xml.bz2) and plain XML cut
    anywhere; a single-stream bz2 or a gzip file is one range, read by one process.
    """
    size = os.path.getsize(path)
    compression = _compression(path)
    if num_ranges <= 1 or compression == "gzip" or is_url(path):
        return [(0, None)]
    marker = BZ2_STREAM_START if compression == "bz2" else re.compile(rb"<page>")
    cuts = [0]
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for i in range(1, num_ranges):
            found = marker.search(data, max(size * i // num_ranges, cuts[-1] + 1))
            if found is None:
                break
            if found.start() > cuts[-1]:
                cuts.append(found.start())
    return list(zip(cuts, cuts[1:] + [None]))


def _local_name(tag):
    return tag.rsplit("}", 1)[-1]


def iter_pages(path, start=0, end=None):
    """Yield (page_id, ns, title, is_redirect, wikitext) for each page of a dump's byte range.

    Memory stays flat: each page is freed once read. A dump cut after its last
    </page> (no closing </mediawiki>) yields every page and logs a warning; one cut
    inside a page, or a damaged compressed stream, raises DumpError.
    """
    if not is_url(path):
        _check_exists(path)
    parser = ET.XMLPullParser(events=("start", "end"))
    if start:
        parser.feed(SYNTHETIC_ROOT)  # a range after the first lacks the <mediawiki> root
    root = None
    inside_page = False
    pages = 0
    last_id = None
    stream = _open_xml(path, start, end)
    try:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            parser.feed(chunk)
            for event, element in parser.read_events():
                name = _local_name(element.tag)
                if root is None:
                    if name != "mediawiki" or "mediawiki.org/xml/export" not in element.tag:
                        raise DumpError(
                            f"{path} is not a MediaWiki XML export (its root element is <{name}>); "
                            "pass a jawiki pages-articles dump.")
                    root = element
                elif name == "page":
                    inside_page = event == "start"
                    if event == "end":
                        pages += 1
                        last_id = element.findtext("{*}id")
                        yield (
                            last_id,
                            int(element.findtext("{*}ns", "-1")),
                            element.findtext("{*}title", ""),
                            element.find("{*}redirect") is not None,
                            element.findtext("{*}revision/{*}text", "") or "",
                        )
                        root.clear()
        parser.close()
    except ET.ParseError as error:
        if root is None:
            raise DumpError(f"{path} is empty or not XML ({error}); pass a jawiki pages-articles dump.") from None
        if inside_page or error.code != 3:  # 3: expat's "no element found", the end of a cut stream
            raise DumpError(
                f"{path} is cut or damaged inside a page after page id {last_id} ({error}); "
                "download the dump again.") from None
        if end is None:  # a range before the last one ends without </mediawiki> by design
            logger.warning("%s ends after its last </page> without </mediawiki> (a cut dump); "
                           "all %d complete pages of this part were read.", path, pages)
    except (OSError, EOFError) as error:
        raise DumpError(f"{path} is not a readable compressed dump ({error}); download it again.") from None
    finally:
        stream.close()


def article_text(page_id, ns, title, is_redirect, wikitext):
    """The clean text of an article, or the reason it is dropped."""
    if ns != 0:
        return None, "not_article"
    if is_redirect:
        return None, "redirect"
    if is_disambiguation(wikitext):
        return None, "disambiguation"
    text = clean_wikitext(wikitext)
    if not text:
        return None, "empty"
    return text, "kept"


def split_of(page_id, validation_percent=1.0, test_percent=1.0):
    """train / validation / test from a stable hash of the page id (same on every machine and run)."""
    bucket = int.from_bytes(hashlib.sha256(page_id.encode()).digest()[:8], "big") / 2**64 * 100
    if bucket < validation_percent:
        return "validation"
    if bucket < validation_percent + test_percent:
        return "test"
    return "train"


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
                _check_exists(source)
                paths.append(source)
            elif self.config.max_articles:
                paths.append(source)  # streamed: only the head of the dump is read
            else:
                try:
                    paths.append(dl_manager.download(source))
                except (FileNotFoundError, ConnectionError, OSError) as error:
                    detail = type(error).__name__ if str(error) in ("", source) else str(error)
                    raise DumpError(f"Could not download {source} ({detail}). {ARCHIVE_MIRROR_HINT}.") from None
        ranges_per_dump = max(1, math.ceil(self.config.num_proc / len(paths)))
        shards = []
        for path in paths:
            ranges = plan_ranges(path, ranges_per_dump)
            if len(ranges) < ranges_per_dump and len(paths) < self.config.num_proc:
                logger.info("%s is one compressed stream, so one process reads it; the multistream dump "
                            "or the multi-part files let several processes share the work.", path)
            shards.extend((path, start, end) for start, end in ranges)
        return [datasets.SplitGenerator(name="articles", gen_kwargs={"shards": shards})]

    def _generate_examples(self, shards):
        for path, start, end in shards:
            counts = dict.fromkeys(("kept", "not_article", "redirect", "disambiguation", "empty"), 0)
            for page_id, ns, title, is_redirect, wikitext in iter_pages(path, start, end):
                text, outcome = article_text(page_id, ns, title, is_redirect, wikitext)
                counts[outcome] += 1
                if text is not None:
                    yield page_id, {"id": page_id, "title": title, "text": text}
                    if counts["kept"] == self.config.max_articles:
                        break
            if self.config.stats_dir:
                name = f"{hashlib.sha1(path.encode()).hexdigest()[:12]}-{start}.json"
                Path(self.config.stats_dir, name).write_text(json.dumps(counts))


def build_articles(sources, num_proc=1, max_articles=None, work_dir=None):
    """Run the builder over the dump files; return (articles Dataset in dump order, page counts)."""
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
    except datasets.exceptions.DatasetGenerationError as error:
        cause = error.__cause__ or error.__context__
        while cause is not None and not isinstance(cause, UserError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        raise
    articles = builder.as_dataset(split="articles")
    counts = {}
    for stats_file in stats_dir.glob("*.json"):
        for key, value in json.loads(stats_file.read_text()).items():
            counts[key] = counts.get(key, 0) + value
    if max_articles and len(articles) > max_articles:
        articles = articles.select(range(max_articles))
    return articles, counts


def split_articles(articles, validation_percent=1.0, test_percent=1.0, num_proc=None):
    """train / validation / test by the page-id hash; disjoint by construction."""
    def keep(name):
        return lambda ids: [split_of(i, validation_percent, test_percent) == name for i in ids]

    return datasets.DatasetDict({
        name: articles.filter(keep(name), input_columns="id", batched=True, num_proc=num_proc,
                              desc=f"Selecting {name}")
        for name in SPLITS
    })


def count_characters(dataset):
    """Characters of the text column, counted by Arrow batch by batch: a whole split as Python
    strings would take gigabytes."""
    return sum(pc.sum(pc.utf8_length(batch["text"])).as_py() or 0
               for batch in dataset.with_format("arrow").iter(batch_size=10_000))


@dataclass
class PrepareArguments:
    dump: list[str] = field(default_factory=list, metadata={
        "action": "extend",
        "help": "Dump file(s) or URL(s): .xml.bz2, .xml, .xml.gz, the parts of a multi-part dump "
                "(repeat the flag or use a glob). Default: the dump of --date from --mirror."})
    date: str = field(default=REFERENCE_DATE, metadata={
        "help": "Dump date (YYYYMMDD, or latest) used to build the URL when no --dump is given."})
    mirror: str = field(default=DEFAULT_MIRROR, metadata={
        "help": "Base URL of a Wikimedia dumps mirror, for dates dumps.wikimedia.org no longer keeps."})
    output_dir: str = field(default=str(DEFAULT_RUN_DIR / "data"), metadata={
        "help": "Where the DatasetDict (train / validation / test) is saved."})
    num_proc: int = field(default=os.cpu_count() or 1, metadata={
        "help": "Processes that parse and clean the dump (default: all cores)."})
    max_articles: Optional[int] = field(default=None, metadata={
        "help": "Stop after this many articles (for a quick sample of a big dump)."})
    validation_percent: float = field(default=1.0, metadata={"help": "Share of articles in validation."})
    test_percent: float = field(default=1.0, metadata={"help": "Share of articles in test."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Prepare again even if --output_dir already holds data prepared with other settings."})


def prepare(args):
    """Write the DatasetDict to args.output_dir, atomically: a failed run leaves no output folder."""
    sources = expand_sources(args.dump or [dump_url(args.date, args.mirror)])
    settings = {"sources": sources, "max_articles": args.max_articles,
                "validation_percent": args.validation_percent, "test_percent": args.test_percent}
    output_dir = Path(args.output_dir)
    stats_path = output_dir / STATS_FILE
    if stats_path.is_file():
        previous = json.loads(stats_path.read_text(encoding="utf-8"))
        if previous.get("settings") == settings and not args.overwrite_output_dir:
            logger.info("%s already holds these articles; reusing it (pass --overwrite_output_dir to redo).",
                        output_dir)
            return previous
        if not args.overwrite_output_dir:
            raise UserError(f"{output_dir} holds data prepared with other settings; "
                            "pass --overwrite_output_dir or another --output_dir.")
    if not 0 <= args.validation_percent + args.test_percent < 100:
        raise UserError("--validation_percent plus --test_percent must be between 0 and 100.")

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{output_dir.name}-", dir=output_dir.parent) as work_dir:
        articles, dropped = build_articles(sources, args.num_proc, args.max_articles, work_dir)
        if len(articles) == 0:
            raise UserError(f"{', '.join(sources)} holds no article (namespace 0, not a redirect); "
                            "pass a jawiki pages-articles dump.")
        splits = split_articles(articles, args.validation_percent, args.test_percent,
                                num_proc=args.num_proc if args.num_proc > 1 else None)
        staging = Path(work_dir, "output")
        splits.save_to_disk(str(staging))
        stats = {
            "settings": settings,
            "dump_date": next((d for d in map(dump_date, sources) if d), None),
            "pages_read": sum(dropped.values()),
            "dropped": {k: v for k, v in dropped.items() if k != "kept"},
            "articles": len(articles),
            "splits": {name: len(split) for name, split in splits.items()},
            "characters": {name: count_characters(split) for name, split in splits.items()},
        }
        (staging / STATS_FILE).write_text(json.dumps(stats, ensure_ascii=False, indent=2), encoding="utf-8")
        del articles, splits
        move_into_place(staging, output_dir)
    logger.info("Wrote %s: %s articles (train %d, validation %d, test %d); dropped %s.", output_dir,
                stats["articles"], *stats["splits"].values(), stats["dropped"])
    return stats


def main(argv=None):
    (args,) = parse_args([PrepareArguments], argv, description=__doc__)
    return prepare(args)


if __name__ == "__main__":
    run_main(main)
