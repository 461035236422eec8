"""A Japanese Wikipedia `pages-articles` dump (prepare_data.py --dump, --date, --mirror): its pages read as a
stream, cleaned into prose (gpt2ja.wikitext), articles kept (namespace 0, no redirects, no disambiguation pages).

`JaWikipedia` is the `datasets.GeneratorBasedBuilder` of the dump (instantiate it directly: `load_dataset` no
longer runs dataset scripts); `WikipediaDump` is the source prepare_data.py reads through it.
"""

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import datasets

from ..dump import (check_exists, download_error, dump_date, dump_identity, dump_url, expand_sources, is_url,
                    iter_pages, latest_dump_date, plan_ranges)
from ..errors import DumpError, UserError
from ..licenses import wikipedia_license
from ..settings import DEFAULT_MIRROR, REFERENCE_DUMP_DATE
from ..wikitext import CLEANER_VERSION, CLEANING, OUTCOMES, article_text
from .base import FEATURES, Source, dataset_or_none
from .record import SourceRecord

logger = logging.getLogger(__name__)


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
    # Downloads go to the shared datasets cache (HF_DATASETS_CACHE), not the temporary work folder, so a rerun
    # or another output folder reuses the dump; the reason of a worker's failure is in its stats file.
    def articles():
        builder.download_and_prepare(
            num_proc=num_proc if num_proc > 1 else None,
            download_config=datasets.DownloadConfig(cache_dir=datasets.config.DOWNLOADED_DATASETS_PATH))
        return builder.as_dataset(split="articles")

    found = dataset_or_none(articles, reason=lambda: worker_error(stats_dir))
    counts = merge_counts([json.loads(p.read_text()) for p in sorted(stats_dir.glob("*.json"))], max_articles)
    if found is not None and max_articles and len(found) > max_articles:
        found = found.select(range(max_articles))
    return found, counts


def worker_error(stats_dir):
    """The first error a worker process recorded (see JaWikipedia._generate_examples), as it was raised."""
    recorded = sorted(Path(stats_dir).glob("*.error"))
    if not recorded:
        return None
    error = json.loads(recorded[0].read_text())
    return OSError(error["errno"], error["message"]) if error["errno"] else DumpError(error["message"])


DROPPED = {"not_article": "pages outside the article namespace", "redirect": "redirects",
           "disambiguation": "disambiguation pages", "empty": "pages left empty by cleaning",
           "duplicate": "repeated pages (a page id seen before)"}


def wikipedia_record(date, files, cleaner, dumps=()):
    """The record of articles from the jawiki dump of `date` (None: unknown), in `files`, cleaned by `cleaner`;
    `dumps`: the files by content (WikipediaDump's identity), which the dataset card names."""
    names = ", ".join(Path(f).name for f in files)
    by_content = ", ".join(f"`{d['name']}`" + (f" (SHA-256 `{d['sha256']}`)" if "sha256" in d else "")
                           for d in dumps) or names  # a dump by URL is known by its name
    return SourceRecord(
        title=f"Japanese Wikipedia {date or ''}".strip(),
        named="Japanese Wikipedia" + (f" (the dump of {date})" if date else ""),
        named_ja="日本語版ウィキペディア" + (f"（{date} のダンプ）" if date else ""),
        described=f"Japanese Wikipedia, the `pages-articles` dump of {date or 'an unrecorded date'}"
                  + (f"\n({names})" if names else ""),
        unit="articles", unit_one="an article", read_as="pages", dropped_as=DROPPED,
        made_from=f"{by_content}, cleaned by cleaner version {cleaner}",
        cleaning=CLEANING.get(cleaner) if cleaner else None, cited_as="Japanese Wikipedia",
        fields={"id": "the page id in the dump", "title": "the article's title",
                "text": "the article as plain prose, one paragraph a line"},
        license=wikipedia_license(date).hub_id,
        attribution="the authors of each article are listed in its history on "
                    "[ja.wikipedia.org](https://ja.wikipedia.org/)",
        license_note="Text contributed to Wikipedia since 7 June 2023 is under CC BY-SA 4.0; earlier text is "
                     "under CC BY-SA 3.0, whose adaptations may be licensed under 4.0.",
        caveat="it knows little of informal, spoken or recent Japanese",
        hub_datasets=["wikimedia/wikipedia"],
        dataset_name=f"Japanese Wikipedia ({date})" if date else "Japanese Wikipedia",
        dataset_ref={"dataset_type": f"jawiki-{date or 'undated'}",
                     "dataset_name": f"Japanese Wikipedia {date or ''}, gpt2-small-ja splits".replace("  ", " ")},
        tags=["wikipedia", "japanese"], short_name="Wikipedia")


class WikipediaDump(Source):
    """The dump files or URLs given (--dump), or the dump of --date (default: the reference's) from --mirror."""

    unit = "articles"
    keep_first_of_an_id = True  # a page given twice (a dump's repeated page, overlapping parts) is trained on once

    def __init__(self, dumps=(), date=None, mirror=None):
        date, mirror = date or REFERENCE_DUMP_DATE, mirror or DEFAULT_MIRROR
        self.sources = expand_sources(list(dumps) or [dump_url(date, mirror)])
        self.identity = {"dumps": [dump_identity(source) for source in self.sources], "cleaner": CLEANER_VERSION}
        self.dump_date = next((d for d in map(dump_date, self.sources) if d), None) or (
            latest_dump_date(mirror) if not dumps and date == "latest" else None)

    def read(self, max_documents=None, num_proc=None, work_dir=None):
        return build_articles(self.sources, num_proc or 1, max_documents, work_dir)

    def nothing_read(self, read):
        return (f"{', '.join(self.sources)} holds no article (namespace 0, not a redirect); pass a jawiki "
                "pages-articles dump.")

    def record(self):
        return wikipedia_record(self.dump_date, self.sources, CLEANER_VERSION, self.identity["dumps"])
