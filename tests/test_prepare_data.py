import bz2
import contextlib
import dataclasses
import gzip
import hashlib
import json
import logging
import shutil
import socket
import time

import datasets
import pytest

import prepare_data
from dumps import MARKUP_PAGES, MARKUP_PAGES_0_3, write_parts
from hub_double import HubDouble, datasets_cache_in, seen_from_this_process
from processes import Script, alive, children_of, descendants, kill_when
from gpt2ja import rerun
from gpt2ja.errors import UserError
from gpt2ja.dump import iter_pages, split_pages, write_multistream
from gpt2ja.sources import wikipedia
from gpt2ja.sources.base import FEATURES
from gpt2ja.splits import SPLITS, Preparation, split_of
from benchmarks.markup_residue import residue_share, short_line_share
from gpt2ja.wikitext import article_text

REPO = prepare_data.Path(prepare_data.__file__).parent


def prepare(tmp_path, *dumps, name="out", **flags):
    argv = [arg for dump in dumps for arg in ("--dump", str(dump))]
    argv += ["--output_dir", str(tmp_path / name), "--num_proc", str(flags.pop("num_proc", 1))]
    for key, value in flags.items():
        argv += [f"--{key}", str(value)]
    stats = prepare_data.main(argv)
    return datasets.load_from_disk(str(tmp_path / name)), stats


def all_ids(dataset_dict):
    return sorted(i for split in dataset_dict.values() for i in split["id"])


# --- selection, counts and quality on the fixtures and the real excerpt -----------------------

def test_selection_keeps_articles_only(tmp_path):
    splits, stats = prepare(tmp_path, MARKUP_PAGES, validation_percent=0, test_percent=0)
    assert all_ids(splits) == ["101", "106", "107"]
    assert stats.dropped == {"not_article": 2, "redirect": 2, "disambiguation": 1, "empty": 1, "duplicate": 0}
    assert splits["train"].features == FEATURES


def test_a_dump_in_the_old_export_schema_gives_the_same_articles(tmp_path):
    new, new_stats = prepare(tmp_path, MARKUP_PAGES, name="new")
    old, old_stats = prepare(tmp_path, MARKUP_PAGES_0_3, name="old")
    assert {k: v.to_dict() for k, v in old.items()} == {k: v.to_dict() for k, v in new.items()}
    assert old_stats.dropped == new_stats.dropped


def test_real_excerpt_counts_and_quality(tmp_path, excerpt, caplog):
    with caplog.at_level(logging.WARNING, logger="gpt2ja.dump"):
        splits, stats = prepare(tmp_path, excerpt)
    # 262 pages; 204 are namespace-0 articles that are not redirects. Of those, 6 are
    # disambiguation pages ({{aimai}}); the list of countries keeps the sentences of its legend.
    assert stats.pages_read == 262
    assert stats.dropped == {"not_article": 39, "redirect": 19, "disambiguation": 6, "empty": 0, "duplicate": 0}
    assert stats.articles == 198 == sum(len(s) for s in splits.values())
    assert {k: len(v) for k, v in splits.items()} == stats.splits
    assert stats.characters == {k: sum(len(t) for t in v["text"]) for k, v in splits.items()}
    cut_warnings = [r for r in caplog.records if "without </mediawiki>" in r.getMessage()]
    assert len(cut_warnings) == 1
    lines = [line for split in splits.values() for text in split["text"] for line in text.split("\n")]
    assert residue_share(lines) < 0.001
    assert short_line_share(lines) < 0.01
    titles = {t for split in splits.values() for t in split["title"]}
    assert {"アンパサンド", "日本語", "パリ", "人工知能", "エジプト"} <= titles


def test_first20_excerpt(tmp_path, first20, caplog):
    with caplog.at_level(logging.WARNING, logger="gpt2ja.dump"):
        splits, stats = prepare(tmp_path, first20)
    assert stats.pages_read == 20
    assert stats.dropped["not_article"] == 5 and stats.dropped["redirect"] == 2
    assert stats.articles + stats.dropped["disambiguation"] + stats.dropped["empty"] == 13
    assert not [r for r in caplog.records if "without </mediawiki>" in r.getMessage()]


# --- splits -----------------------------------------------------------------------------------

def test_splits_are_disjoint_and_byte_identical_across_runs(tmp_path, excerpt):
    first, _ = prepare(tmp_path, excerpt, name="a", validation_percent=10, test_percent=10)
    prepare(tmp_path, excerpt, name="b", validation_percent=10, test_percent=10)
    ids = {name: set(split["id"]) for name, split in first.items()}
    assert not ids["train"] & ids["validation"] and not ids["train"] & ids["test"]
    assert not ids["validation"] & ids["test"]
    assert all(len(ids[name]) > 5 for name in ids)

    def digest(directory):
        return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(directory.rglob("*.arrow"))}
    assert digest(tmp_path / "a") == digest(tmp_path / "b")


def test_an_article_keeps_its_split_when_the_dump_changes(tmp_path, excerpt):
    full, _ = prepare(tmp_path, excerpt, name="full", validation_percent=10, test_percent=10)
    head, _ = prepare(tmp_path, excerpt, name="head", validation_percent=10, test_percent=10, max_articles=50)
    for name in SPLITS:
        assert set(head[name]["id"]) <= set(full[name]["id"])


# --- sources ----------------------------------------------------------------------------------

def test_every_dump_format_gives_the_same_articles(tmp_path):
    xml = MARKUP_PAGES.read_bytes()
    (tmp_path / "d.xml.bz2").write_bytes(bz2.compress(xml))
    (tmp_path / "d.xml.gz").write_bytes(gzip.compress(xml))
    write_multistream(xml, tmp_path / "d-multistream.xml.bz2", pages_per_stream=2)
    parts = write_parts(xml, tmp_path)
    expected, _ = prepare(tmp_path, MARKUP_PAGES, name="xml")
    for name, dumps in [("bz2", [tmp_path / "d.xml.bz2"]), ("gz", [tmp_path / "d.xml.gz"]),
                        ("multi", [tmp_path / "d-multistream.xml.bz2"]),
                        ("parts", [tmp_path / "jawiki-20990101-pages-articles*.xml-p*.bz2"])]:
        got, stats = prepare(tmp_path, *dumps, name=name, num_proc=2)
        assert all_ids(got) == all_ids(expected), name
        assert stats.dropped == {"not_article": 2, "redirect": 2, "disambiguation": 1, "empty": 1, "duplicate": 0}, name
    assert len(parts) == 2


def test_num_proc_does_not_change_the_output(tmp_path, excerpt):
    xml = bz2.open(excerpt).read()
    multistream = write_multistream(xml, tmp_path / "jawiki-20220720-pages-articles-multistream.xml.bz2", 20)
    one, _ = prepare(tmp_path, multistream, name="one", num_proc=1)
    two, _ = prepare(tmp_path, multistream, name="two", num_proc=2)
    for name in SPLITS:
        assert one[name]["id"] == two[name]["id"] and one[name]["text"] == two[name]["text"]


def test_without_a_dump_the_date_names_the_url():
    args, = prepare_data.parse_args([prepare_data.PrepareArguments], ["--date", "20200101"])
    assert args.dump == [] and args.date == "20200101"


def test_max_articles_takes_the_head_of_the_dump(tmp_path, excerpt):
    splits, stats = prepare(tmp_path, excerpt, max_articles=20)
    assert stats.articles == 20
    full = [p for p in iter_pages(str(excerpt)) if article_text(p)[0] is not None][:20]
    assert all_ids(splits) == sorted(p.id for p in full)


def test_max_articles_keeps_the_first_articles_and_counts_whatever_num_proc(tmp_path, excerpt):
    # Each process stops on its own after N articles; what is kept and counted must be the dump's first N.
    xml = bz2.open(excerpt).read()
    multistream = write_multistream(xml, tmp_path / "jawiki-20220720-pages-articles-multistream.xml.bz2", 20)
    pages = list(iter_pages(str(multistream)))
    kept = [i for i, page in enumerate(pages) if article_text(page)[0] is not None]
    head = pages[:kept[19] + 1]  # every page up to the 20th article
    records = {}
    for num_proc in (1, 2, 4):
        splits, stats = prepare(tmp_path, multistream, name=f"n{num_proc}", num_proc=num_proc, max_articles=20)
        records[num_proc] = (tmp_path / f"n{num_proc}" / Preparation.FILE).read_text()
        assert all_ids(splits) == sorted(pages[i].id for i in kept[:20])
        assert stats.articles == 20 and stats.pages_read == len(head)
        assert stats.pages_read == stats.articles + sum(stats.dropped.values())
        assert stats.dropped["not_article"] == sum(1 for p in head if p.ns != 0)
    assert records[1] == records[2] == records[4]


def test_rerun_reuses_and_other_settings_refuse(tmp_path):
    prepare(tmp_path, MARKUP_PAGES)
    marker = tmp_path / "out" / "dataset_dict.json"
    before = marker.stat().st_mtime_ns
    prepare(tmp_path, MARKUP_PAGES)
    assert marker.stat().st_mtime_ns == before
    with pytest.raises(UserError, match="other settings"):
        prepare(tmp_path, MARKUP_PAGES, validation_percent=5)
    prepare(tmp_path, MARKUP_PAGES, validation_percent=5, overwrite_output_dir="true")
    assert marker.stat().st_mtime_ns != before


def test_data_cleaned_by_another_cleaner_version_is_not_reused(tmp_path, monkeypatch):
    prepare(tmp_path, MARKUP_PAGES)
    monkeypatch.setattr(wikipedia, "CLEANER_VERSION", "a later one")
    with pytest.raises(UserError, match="other settings"):
        prepare(tmp_path, MARKUP_PAGES)


# --- errors -----------------------------------------------------------------------------------

def broken_dumps(tmp_path):
    xml = MARKUP_PAGES.read_bytes()
    header, pages, _ = split_pages(xml)
    compressed = bz2.compress(xml)
    cases = {
        "missing.xml.bz2": None,
        "empty.xml": b"",
        "not-mediawiki.xml": b"<html><body>hello</body></html>",
        "cut-in-page.xml.bz2": bz2.compress(header + pages[0] + pages[1][:60]),
        "corrupt.xml.bz2": compressed[:200] + bytes(b ^ 0x55 for b in compressed[200:400]) + compressed[400:],
        "truncated.xml.bz2": compressed[: len(compressed) // 2],
    }
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
    return cases


@pytest.mark.parametrize("name, message", [
    ("missing.xml.bz2", "does not exist"),
    ("empty.xml", "is empty"),
    ("not-mediawiki.xml", "not a MediaWiki XML export"),
    ("cut-in-page.xml.bz2", "cut or damaged inside a page"),
    ("corrupt.xml.bz2", "not a readable compressed dump"),
    ("truncated.xml.bz2", "not a readable compressed dump"),
])
def test_bad_dumps_fail_with_one_sentence_and_no_output(tmp_path, name, message):
    broken_dumps(tmp_path)
    with pytest.raises(UserError, match=message) as raised:
        prepare(tmp_path, tmp_path / name)
    assert name in str(raised.value)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_error_is_one_line_without_traceback(tmp_path, command):
    broken_dumps(tmp_path)
    out = command(prepare_data.main, ["--dump", str(tmp_path / "corrupt.xml.bz2"), "--output_dir",
                                      str(tmp_path / "out"), "--num_proc", "2"])
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "corrupt.xml.bz2" in errors[0]
    assert not (tmp_path / "out").exists()


def test_help_documents_every_flag(command):
    done = command(prepare_data.main, ["--help"])
    assert done.returncode == 0
    out = done.stdout
    for flag in ("--dump", "--date", "--mirror", "--output_dir", "--num_proc", "--max_articles",
                 "--validation_percent", "--test_percent", "--overwrite_output_dir", "--train_file", "--dataset_name",
                 "--dataset_config_name", "--dataset_split", "--text_column"):
        assert flag in out


# --- downloads, from a mirror served on 127.0.0.1 ---------------------------------------------

@pytest.fixture
def run_cli(command, monkeypatch):
    """run_cli(tmp_path, *argv): prepare_data.py's command line with HF_HOME=tmp_path/hf_home, in this process
    (`command`): the download cache stays in the test (datasets reads HF_HOME at import)."""
    def ran(tmp_path, *argv):
        datasets_cache_in(tmp_path / "hf_home", monkeypatch)
        return command(prepare_data.main, [*argv, "--num_proc", "1"])
    return ran


def test_a_dump_date_is_downloaded_from_the_mirror(tmp_path, mirror, run_cli):
    out = run_cli(tmp_path, "--mirror", mirror, "--date", "20220720", "--output_dir", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    stats = json.loads((tmp_path / "out" / Preparation.FILE).read_text())
    assert stats["pages_read"] == 20 and stats["articles"] == 12 and stats["dump_date"] == "20220720"
    assert list((tmp_path / "hf_home").rglob("*")), "the download went through the datasets cache"


def test_max_articles_streams_the_head_of_a_remote_dump(tmp_path, mirror, run_cli):
    out = run_cli(tmp_path, "--mirror", mirror, "--date", "20220720", "--max_articles", "5",
                  "--output_dir", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "out" / Preparation.FILE).read_text())["articles"] == 5


def test_a_date_the_mirror_lacks_says_where_else_to_look(tmp_path, mirror, run_cli):
    out = run_cli(tmp_path, "--mirror", mirror, "--date", "20010101", "--output_dir", str(tmp_path / "out"))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    error = [line for line in out.stderr.splitlines() if line.startswith("error:")][0]
    assert "jawiki-20010101-pages-articles-multistream.xml.bz2" in error
    assert "--mirror" in error and "--dump" in error
    assert not (tmp_path / "out").exists()


# --- never losing a user's work ----------------------------------------------------------------

@pytest.mark.parametrize("what", ["a run folder", "the current folder", "a tokenizer folder"])
def test_an_output_dir_holding_anything_else_is_refused_and_kept(tmp_path, monkeypatch, what):
    folder = tmp_path / "target"
    folder.mkdir()
    keep = {"a run folder": folder / "data" / "dataset_dict.json", "the current folder": folder / "notes.txt",
            "a tokenizer folder": folder / "tokenizer_report.json"}[what]
    keep.parent.mkdir(exist_ok=True)
    keep.write_text("keep me")
    monkeypatch.chdir(folder)
    output_dir = "." if what == "the current folder" else str(folder)
    for flags in ([], ["--overwrite_output_dir"]):
        with pytest.raises(UserError, match="holds files this step did not write"):
            prepare_data.main(["--dump", str(MARKUP_PAGES), "--output_dir", output_dir, "--num_proc", "1", *flags])
        assert keep.read_text() == "keep me"


def test_a_moved_or_copied_dump_is_the_same_dump(tmp_path):
    for place in ("a", "b"):
        (tmp_path / place).mkdir()
        (tmp_path / place / "jawiki-20990101-pages-articles.xml").write_bytes(MARKUP_PAGES.read_bytes())
    prepare(tmp_path, tmp_path / "a" / "jawiki-20990101-pages-articles.xml")
    stamp = (tmp_path / "out" / "dataset_dict.json").stat().st_mtime_ns
    _, stats = prepare(tmp_path, tmp_path / "b" / "jawiki-20990101-pages-articles.xml")  # reused, not refused
    assert (tmp_path / "out" / "dataset_dict.json").stat().st_mtime_ns == stamp
    (tmp_path / "b" / "jawiki-20990101-pages-articles.xml").write_bytes(MARKUP_PAGES.read_bytes() + b"\n")
    with pytest.raises(UserError, match="other settings"):
        prepare(tmp_path, tmp_path / "b" / "jawiki-20990101-pages-articles.xml")


@pytest.mark.parametrize("flags, message", [
    (["--max_articles", "0"], "--max_articles must be 1 or more"),
    (["--num_proc", "0"], "--num_proc must be 1 or more"),
    (["--validation_percent", "60", "--test_percent", "50"], "less than 100 together"),
    (["--test_percent", "-1"], "must be 0 or more"),
])
def test_out_of_range_values_are_refused_before_any_work(tmp_path, flags, message):
    with pytest.raises(UserError, match=message):
        prepare_data.main(["--dump", str(MARKUP_PAGES), "--output_dir", str(tmp_path / "out"), *flags])
    assert not (tmp_path / "out").exists()


def test_a_dump_with_no_article_is_one_sentence(tmp_path, command):
    header, pages, footer = split_pages(MARKUP_PAGES.read_bytes())
    (tmp_path / "no-articles.xml").write_bytes(header + b"".join(p for p in pages if b"<ns>0</ns>" not in p) + footer)
    out = command(prepare_data.main, ["--dump", str(tmp_path / "no-articles.xml"), "--output_dir",
                                      str(tmp_path / "out")])
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: ") and "holds no article" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-articles.xml"]


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    from gpt2ja.rerun import building
    with building(tmp_path / "out"):  # as a run in another process holds it
        with pytest.raises(UserError, match="Another run is writing"):
            prepare(tmp_path, MARKUP_PAGES)


def test_output_another_run_finished_while_this_one_started_is_reused_not_rebuilt(tmp_path, monkeypatch):
    first, stats = prepare(tmp_path, MARKUP_PAGES, name="first")
    real_building = rerun.building

    @contextlib.contextmanager
    def another_run_finishes_first(target, **flags):  # between this run's reuse check and its taking the lock
        shutil.copytree(tmp_path / "first", target)
        with real_building(target, **flags) as build:
            yield build

    monkeypatch.setattr(rerun, "building", another_run_finishes_first)
    monkeypatch.setattr(prepare_data, "read_documents", lambda *args: pytest.fail("read the dump again"))
    again, reused = prepare(tmp_path, MARKUP_PAGES)
    assert reused == stats and all_ids(again) == all_ids(first)
    monkeypatch.setattr(rerun, "building", real_building)
    shutil.rmtree(tmp_path / "out")
    monkeypatch.setattr(rerun, "building", another_run_finishes_first)
    with pytest.raises(UserError, match=r"prepared with other settings \(validation_percent"):
        prepare(tmp_path, MARKUP_PAGES, validation_percent=20)


def test_a_killed_run_then_the_same_command_gives_the_same_data(tmp_path, excerpt, command):
    argv = ["prepare_data.py", "--dump", str(excerpt), "--output_dir", str(tmp_path / "out"), "--num_proc", "1"]
    kill_when(argv, (tmp_path / ".out.partial").exists)
    assert not (tmp_path / "out").exists()
    assert command(prepare_data.main, argv[1:]).returncode == 0  # the same command, here: the kill was apart
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    _, straight = prepare(tmp_path / "straight", excerpt)
    assert json.loads((tmp_path / "out" / Preparation.FILE).read_text())["fingerprint"] == straight.fingerprint


def test_out_of_space_names_the_folder_and_leaves_no_output(small_disk, excerpt):
    with pytest.raises(UserError, match=r"ran out of space while writing .*disk/out.* MiB are free"):
        prepare_data.main(["--dump", str(excerpt), "--output_dir", str(small_disk / "out"), "--num_proc", "1"])
    assert list(small_disk.iterdir()) == []


# --- what an operator meets: the same pages twice, cut dumps, kills and Ctrl-C with workers ---------------

def test_the_same_pages_twice_are_kept_once_the_first_in_dump_order(tmp_path):
    once, stats_once = prepare(tmp_path, MARKUP_PAGES, name="once", validation_percent=0, test_percent=0)
    twice, stats_twice = prepare(tmp_path, MARKUP_PAGES, MARKUP_PAGES, name="twice", validation_percent=0,
                                 test_percent=0)  # the same file named twice is read once
    assert twice["train"]["text"] == once["train"]["text"] and stats_twice.pages_read == stats_once.pages_read
    header, pages, footer = split_pages(MARKUP_PAGES.read_bytes())
    # every page again after the first ones, retitled: the first of each page id is kept
    again = [page.replace(b"</title>", " 再掲</title>".encode(), 1) for page in pages]
    xml = header + b"".join(pages + again) + footer
    (tmp_path / "repeated.xml").write_bytes(xml)
    write_multistream(xml, tmp_path / "repeated-multistream.xml.bz2", pages_per_stream=2)
    for name, dump, num_proc in (("r1", tmp_path / "repeated.xml", 1),
                                 ("r2", tmp_path / "repeated-multistream.xml.bz2", 2)):
        got, stats = prepare(tmp_path, dump, name=name, num_proc=num_proc, validation_percent=0, test_percent=0)
        assert got["train"]["id"] == once["train"]["id"] and got["train"]["title"] == once["train"]["title"], name
        assert stats.dropped["duplicate"] == stats_once.articles and stats.articles == stats_once.articles
        assert stats.pages_read == 2 * stats_once.pages_read == stats.articles + sum(stats.dropped.values())


def test_a_cut_multistream_dump_read_by_two_workers_is_one_sentence(tmp_path):
    path = write_multistream(MARKUP_PAGES.read_bytes(), tmp_path / "jawiki-20990101-pages-articles-multistream.xml.bz2",
                             pages_per_stream=2)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 3 // 4])  # an interrupted download
    with pytest.raises(UserError, match="jawiki-20990101-pages-articles-multistream.xml.bz2 .*download it again"):
        prepare(tmp_path, path, num_proc=2)
    assert not (tmp_path / "out").exists()


def test_a_remote_dump_that_is_not_there_is_one_sentence_with_max_articles_too(tmp_path, mirror, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    with pytest.raises(UserError, match=r"Could not download .*jawiki-20010101-pages-articles-multistream.xml.bz2 "
                                        r"\(.*\)\. dumps.wikimedia.org keeps only the last few dates.*--mirror"):
        prepare_data.main(["--mirror", mirror, "--date", "20010101", "--max_articles", "5", "--num_proc", "2",
                           "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, warned", [
    ({}, ["validation", "test"]),  # 12 articles at the default 1% each
    ({"validation_percent": 5, "test_percent": 5}, ["validation"]),  # demo.py's: one lands in test
    ({"validation_percent": 40, "test_percent": 40}, []),
    ({"validation_percent": 0, "test_percent": 0}, []),  # none asked for: nothing to warn of
])
def test_a_split_that_gets_no_article_is_warned_of_at_prepare_time_naming_its_flag(tmp_path, first20, caplog, flags,
                                                                                  warned):
    caplog.set_level(logging.WARNING, "prepare_data")
    _, record = prepare(tmp_path, first20, **flags)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "got none" in r.getMessage()]
    assert [split for split in ("validation", "test") if not record.splits[split] and flags.get(
        f"{split}_percent", 1)] == warned
    percent = {split: flags.get(f"{split}_percent", 1) for split in ("validation", "test")}
    assert said == [f"The {split} split got none of the 12 articles at --{split}_percent {percent[split]}, so train.py "
                    f"will not score it; pass a larger --{split}_percent." for split in warned]


def closed_loopback_port():
    with socket.socket() as probe:  # a port the system just gave out and nobody listens on now
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("mirror_url, host", [("http://dumps.invalid", "dumps.invalid"),  # a name that never resolves
                                              ("closed", "127.0.0.1:")])
@pytest.mark.parametrize("date, max_articles", [("latest", []), ("20220720", ["--max_articles", "5"])])
def test_a_host_that_cannot_be_reached_is_said_so_not_taken_for_a_date_too_old(tmp_path, monkeypatch, mirror_url,
                                                                               host, date, max_articles):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    mirror_url = f"http://127.0.0.1:{closed_loopback_port()}" if mirror_url == "closed" else mirror_url
    with pytest.raises(UserError) as refused:
        prepare_data.main(["--mirror", mirror_url, "--date", date, *max_articles,
                           "--output_dir", str(tmp_path / "out")])
    message = str(refused.value)
    assert message.startswith(f"Cannot reach {host}") and message.endswith(
        "): check the network, or pass --dump / --mirror.")
    assert "keeps only the last few dates" not in message
    assert not (tmp_path / "out").exists()


def test_a_data_folder_that_another_step_wrote_into_is_not_replaced(tmp_path):
    prepare(tmp_path, MARKUP_PAGES)
    (tmp_path / "out" / "model").mkdir()  # as train.py --output_dir <this folder> once left it
    (tmp_path / "out" / "model" / "model.safetensors").write_text("weights")
    with pytest.raises(UserError, match=r"holds model besides this step's output"):
        prepare(tmp_path, MARKUP_PAGES, overwrite_output_dir="true")
    assert (tmp_path / "out" / "model" / "model.safetensors").read_text() == "weights"
    (tmp_path / "out" / "token_cache").mkdir()  # where versions before 2026-12 kept the token cache: the data's
    (tmp_path / "out" / "model" / "model.safetensors").unlink()
    (tmp_path / "out" / "model").rmdir()
    prepare(tmp_path, MARKUP_PAGES, overwrite_output_dir="true")
    assert not (tmp_path / "out" / "token_cache").exists()


def multistream_excerpt(tmp_path, excerpt):
    return write_multistream(bz2.open(excerpt).read(), tmp_path / "jawiki-20220720-pages-articles-multistream.xml.bz2",
                             20)


@pytest.mark.slow
def test_kill_9_of_the_main_process_with_two_workers_then_a_rerun_at_once(tmp_path, excerpt, command):
    argv = ["prepare_data.py", "--dump", str(multistream_excerpt(tmp_path, excerpt)), "--output_dir",
            str(tmp_path / "out"), "--num_proc", "2"]
    killed = Script(argv, tmp_path / "killed.log")
    killed.wait_until(lambda: (tmp_path / ".out.partial").exists() and len(children_of(killed.process.pid)) >= 2)
    workers = descendants(killed.process.pid)
    killed.process.kill()  # as docker stop, a scheduler or htop does: the workers are not told
    killed.wait()
    rerun = command(prepare_data.main, argv[1:])  # the same command, here: the kill was apart
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert not [pid for pid in workers if alive(pid)], "a worker of the killed run lives on"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jawiki-20220720-pages-articles-multistream.xml.bz2",
                                                           "killed.log", "out"]


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["while it imports", "while two workers read the dump",
                                    "while it writes the splits"])
def test_ctrl_c_at_any_moment_with_two_workers_exits_130_in_one_line(tmp_path, excerpt, moment):
    argv = ["prepare_data.py", "--dump", str(multistream_excerpt(tmp_path, excerpt)), "--output_dir",
            str(tmp_path / "out"), "--num_proc", "2"]
    job = Script(argv, tmp_path / "job.log")
    started = time.time()
    job.wait_until({
        "while it imports": lambda: time.time() > started + 1,  # datasets and pyarrow take seconds to load
        "while two workers read the dump": lambda: len(children_of(job.process.pid)) >= 2,
        "while it writes the splits": lambda: any((tmp_path / ".out.partial" / "output").glob("*")),
    }[moment])
    members = descendants(job.process.pid)
    job.ctrl_c()
    assert job.wait(timeout=120) == 130, job.output()[-3000:]
    assert "Traceback" not in job.output(), job.output()[-3000:]
    assert job.output().strip().splitlines()[-1] == "error: Interrupted (Ctrl-C); rerun the same command to go on."
    deadline = time.time() + 10  # the kernel kills the workers as their parent ends
    while [pid for pid in members if alive(pid)]:
        assert time.time() < deadline, "a process of the job lives on"
        time.sleep(0.05)
    assert not (tmp_path / "out").exists()


def test_an_output_folder_on_a_read_only_disk_is_one_sentence(tmp_path, read_only_disk):
    disk, seal = read_only_disk
    seal()
    with pytest.raises(UserError, match=r"--output_dir .*read-only/data cannot be written \(Read-only file system\)"):
        prepare(disk, MARKUP_PAGES, name="data")


# --- your own text: --train_file, --dataset_name ------------------------------------------------------------

# 40 documents of a few paragraphs; the third is empty, the eighth repeats the first
DOCUMENTS = [f"文書{n}の一段落目です。\n文書{n}の二段落目は、もう少し長い文です。" if n != 2 else "   "
             for n in range(40)]
DOCUMENTS[7] = DOCUMENTS[0]


def write_json_lines(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def prepare_own(tmp_path, *train_files, name="out", **flags):
    flags = {"validation_percent": 20, "test_percent": 20, **flags}
    argv = ["--train_file", *map(str, train_files), "--output_dir", str(tmp_path / name), "--num_proc",
            str(flags.pop("num_proc", 1))]
    for key, value in flags.items():
        argv += [f"--{key}", str(value)]
    record = prepare_data.main(argv)
    return datasets.load_from_disk(str(tmp_path / name)), record


def same_data(one, other):
    """The same documents in the same splits, counted alike: all but where they came from."""
    assert {k: v.to_dict() for k, v in one[0].items()} == {k: v.to_dict() for k, v in other[0].items()}
    for field in ("pages_read", "dropped", "articles", "splits", "characters", "fingerprint"):
        assert getattr(one[1], field) == getattr(other[1], field), field


def test_the_same_documents_as_plain_text_or_json_lines_prepare_alike(tmp_path):
    # blank lines between documents, Windows line endings: plain text knows no empty document
    (tmp_path / "docs.txt").write_bytes("\r\n\r\n".join(DOCUMENTS).replace("\n", "\r\n").encode())
    write_json_lines(tmp_path / "docs.jsonl", [{"text": text, "source": "mine"} for text in DOCUMENTS])
    text = prepare_own(tmp_path, tmp_path / "docs.txt", name="text")
    lines = prepare_own(tmp_path, tmp_path / "docs.jsonl", name="lines", num_proc=2)
    assert lines[1].dropped == {"empty": 1, "duplicate": 1} and lines[1].pages_read == 40
    assert text[1].dropped == {"empty": 0, "duplicate": 1} and text[1].pages_read == 39
    text[1].pages_read, text[1].dropped["empty"] = 40, 1  # the one difference: an empty record is counted
    same_data(text, lines)
    assert lines[1].articles == 38 == sum(lines[1].splits.values()) and min(lines[1].splits.values()) > 0
    assert lines[0]["train"].features == FEATURES and set(lines[0]["train"]["title"]) == {""}
    for name, split in lines[0].items():
        assert all(split_of(hashlib.sha256(t.encode()).hexdigest(), 20, 20) == name for t in split["text"])
    assert "cleaner" not in lines[1].identity and lines[1].dump_date is None
    assert lines[1].source.title == "docs.jsonl" and lines[1].source.unit == "documents"
    assert lines[1].source.cleaning is None and lines[1].source.license is None
    assert lines[1].sources == [str(tmp_path / "docs.jsonl")]
    assert text[1].identity["files"][0]["name"] == "docs.txt"
    # the same documents split over two files, in another order, fall into the same splits
    write_json_lines(tmp_path / "b.jsonl", [{"text": t} for t in DOCUMENTS[20:]])
    write_json_lines(tmp_path / "a.jsonl", [{"text": t} for t in DOCUMENTS[:20]])
    two = prepare_own(tmp_path, tmp_path / "b.jsonl", tmp_path / "a.jsonl", name="two")
    assert {k: sorted(v["id"]) for k, v in two[0].items()} == {k: sorted(v["id"]) for k, v in lines[0].items()}
    assert two[1].characters == lines[1].characters and two[1].dropped == lines[1].dropped


def test_an_id_field_decides_the_split_and_a_title_field_is_kept(tmp_path):
    records = [{"id": n, "title": f"題{n}", "body": text} for n, text in enumerate(DOCUMENTS)]
    records.append(dict(records[5]))  # a document given twice: kept once
    write_json_lines(tmp_path / "docs.jsonl", records)
    splits, record = prepare_own(tmp_path, tmp_path / "docs.jsonl", text_column="body", max_articles=30)
    assert sorted(i for split in splits.values() for i in split["id"]) == sorted(
        str(n) for n in range(31) if n != 2)  # the first 30 documents with text, the empty third read on the way
    assert record.dropped == {"empty": 1, "duplicate": 0} and record.pages_read == 31
    for name, split in splits.items():
        assert all(split_of(i, 20, 20) == name for i in split["id"])
        assert all(title == f"題{i}" for i, title in zip(split["id"], split["title"]))
    assert record.identity["text_column"] == "body" and "`body` field" in record.source.described
    _, whole = prepare_own(tmp_path, tmp_path / "docs.jsonl", name="whole", text_column="body")
    assert whole.dropped == {"empty": 1, "duplicate": 1} and whole.articles == 39
    # ids numbered anew in each file would lose documents: another text under a taken id is refused
    write_json_lines(tmp_path / "more.jsonl", [{"id": 5, "body": "同じ id の別の文書。"}])
    with pytest.raises(UserError, match="Two different documents have the id '5'"):
        prepare_own(tmp_path, tmp_path / "docs.jsonl", tmp_path / "more.jsonl", name="clash", text_column="body")
    assert not (tmp_path / "clash").exists()


def test_own_text_reruns_reuse_and_other_settings_or_content_refuse(tmp_path):
    path = write_json_lines(tmp_path / "docs.jsonl", [{"text": t} for t in DOCUMENTS])
    prepare_own(tmp_path, path)
    marker = tmp_path / "out" / "dataset_dict.json"
    before = marker.stat().st_mtime_ns
    (tmp_path / "moved").mkdir()
    prepare_own(tmp_path, path.rename(tmp_path / "moved" / "docs.jsonl"))  # the same content: reused
    assert marker.stat().st_mtime_ns == before
    with pytest.raises(UserError, match=r"prepared with other settings \(max_articles None -> 5\)"):
        prepare_own(tmp_path, tmp_path / "moved" / "docs.jsonl", max_articles=5)
    with pytest.raises(UserError, match=r"other settings \(text_column 'text' -> 'body'\)"):
        prepare_own(tmp_path, tmp_path / "moved" / "docs.jsonl", text_column="body")
    write_json_lines(tmp_path / "moved" / "docs.jsonl", [{"text": t} for t in DOCUMENTS[:-1]])
    with pytest.raises(UserError, match=r"other settings \(the files\)"):
        prepare_own(tmp_path, tmp_path / "moved" / "docs.jsonl")
    with pytest.raises(UserError, match=r"other settings \(.*dumps added.*files removed"):
        prepare(tmp_path, MARKUP_PAGES)
    _, record = prepare_own(tmp_path, tmp_path / "moved" / "docs.jsonl", overwrite_output_dir="true")
    assert marker.stat().st_mtime_ns != before and record.articles == 37


@pytest.mark.parametrize("name, content, message", [
    ("missing.txt", None, "--train_file .*missing.txt does not exist"),
    ("blank.txt", "\n \n\t\n", r"blank.txt holds no document with text \(no document in it\)"),
    ("empty.jsonl", '{"text": ""}\n{"text": " "}\n', r"empty.jsonl holds no document with text \(2 documents read"),
    ("no-field.jsonl", '{"text": "a"}\n{"body": "b"}\n', r"no-field.jsonl line 2 has no 'text' field \(its fields: "
                                                         r"body\); pass --text_column"),
    ("number.jsonl", '{"text": 3}\n', "number.jsonl line 1: the 'text' field holds a number, not text"),
    ("broken.jsonl", '{"text": "a"}\n\n{"text": "b",}\n', r"broken.jsonl line 3 is not valid JSON \(Expecting "
                                                          "property name enclosed in double quotes at column 14"),
])
def test_bad_own_text_is_one_sentence_and_no_output(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(UserError, match=message):
        prepare_own(tmp_path, tmp_path / name)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("flags, message", [
    (["--dump", "d.xml", "--train_file", "a.txt"], "--dump and --train_file name two sources; pass one"),
    (["--train_file", "a.txt", "--date", "latest"], "--date and --mirror choose a Wikipedia dump"),
    (["--text_column", "body"], "--text_column names the field of your own text"),
    (["--train_file", "a.txt", "--dataset_split", "test"], "--dataset_split .* go with --dataset_name"),
])
def test_one_source_at_a_time_refused_before_any_work(tmp_path, flags, message):
    with pytest.raises(UserError, match=message):
        prepare_data.main([*flags, "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


# A Hub dataset, from the Hub double, read from this process as HF_ENDPOINT and HF_HOME point a new one at it
HUB_TOKEN = "hf_PrepareDataTestToken0123456789"


def run_against(hub, tmp_path, monkeypatch, *runs):
    """The record, or the error's sentence, of each prepare_data run (a list of flags)."""
    seen_from_this_process(hub.url, monkeypatch, tmp_path / "hf_home", HUB_TOKEN)
    done = []
    for argv in runs:
        try:
            done.append({"record": dataclasses.asdict(prepare_data.main([*argv, "--num_proc", "1"]))})
        except UserError as error:
            done.append({"error": str(error)})
    return json.loads(json.dumps(done))  # as JSON holds it: tuples as lists


def test_a_hub_dataset_prepares_as_the_same_json_lines_file(tmp_path, monkeypatch):
    records = [{"text": text, "id": n, "title": f"題{n}"} for n, text in enumerate(DOCUMENTS)]
    path = write_json_lines(tmp_path / "docs.jsonl", records)
    local = prepare_own(tmp_path, path, name="local", validation_percent=10, test_percent=10)
    with HubDouble(HUB_TOKEN) as hub:
        first = hub.publish("datasets", "tester/corpus", {"data/train.jsonl": path.read_bytes(),
                                                          "data/test.jsonl": b'{"text": "t", "id": 0}\n'})
        got, again = run_against(hub, tmp_path, monkeypatch, *[["--dataset_name", "tester/corpus", "--output_dir",
                                                   str(tmp_path / "hub"), "--validation_percent", "10",
                                                   "--test_percent", "10"]] * 2)
        second = hub.publish("datasets", "tester/corpus", {"data/train.jsonl": path.read_bytes() + b"\n"})
        dataset = ["--dataset_name", "tester/corpus", "--output_dir"]
        changed, absent, no_config, no_split, not_text = run_against(
            hub, tmp_path, monkeypatch, [*dataset, str(tmp_path / "hub"), "--validation_percent", "10", "--test_percent", "10"],
            ["--dataset_name", "tester/absent", "--output_dir", str(tmp_path / "absent")],
            [*dataset, str(tmp_path / "c"), "--dataset_config_name", "nope"],
            [*dataset, str(tmp_path / "s"), "--dataset_split", "validation"],
            [*dataset, str(tmp_path / "n"), "--text_column", "id"])
    record = got["record"]
    assert again == got  # reused: the same dataset at the same commit
    hub_data = (datasets.load_from_disk(str(tmp_path / "hub")), Preparation.from_fields(dict(record)))
    same_data(hub_data, local)
    assert record["sources"] == ["tester/corpus"] and record["dump_date"] is None
    assert record["source"]["hub_datasets"] == ["tester/corpus"]
    assert record["source"]["dataset_ref"]["dataset_revision"] == first
    assert record["identity"]["dataset"]["revision"] == first and "cleaner" not in record["identity"]
    assert changed["error"].startswith(f"{tmp_path / 'hub'} holds data prepared with other settings (dataset "
                                       f"(revision '{first}' -> '{second}'))")
    assert "Dataset tester/absent does not exist on the Hub" in absent["error"]
    assert "check --dataset_name" in absent["error"]
    assert no_config["error"] == ("Dataset tester/corpus has no config 'nope' (it has 'default'); pass "
                                  "--dataset_config_name with one of them.")
    assert no_split["error"] == ("Dataset tester/corpus has no split 'validation' (it has 'train'); pass "
                                 "--dataset_split with one of them.")
    assert not_text["error"] == ("Dataset tester/corpus (train split) row 1: the 'id' field holds a number, not "
                                 "text; pass --text_column with the field that holds the text.")
    for folder in ("absent", "c", "s", "n"):
        assert not (tmp_path / folder).exists()
