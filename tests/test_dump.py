"""gpt2ja.dump: reading a MediaWiki dump page by page, and writing the multistream shape."""

import bz2
import shutil
import sys
from pathlib import Path

import pytest

from dumps import MARKUP_PAGES, MARKUP_PAGES_0_3
from gpt2ja import dump
from gpt2ja.dump import (DumpError, Page, dump_date, dump_url, expand_sources, iter_pages, namespace_of,
                         plan_ranges, split_pages, write_multistream)


def test_pages_come_as_named_records():
    pages = list(iter_pages(str(MARKUP_PAGES)))
    assert all(isinstance(p, Page) for p in pages)
    first = pages[0]
    assert (first.id, first.ns, first.is_redirect) == ("101", 0, False)
    assert first.title and "'''" in first.wikitext
    assert any(p.is_redirect for p in pages) and any(p.ns != 0 for p in pages)


def test_ranges_of_one_file_cover_every_page_once(tmp_path, excerpt):
    xml = bz2.open(excerpt).read() + b"</mediawiki>\n"
    for path in (write_multistream(xml, tmp_path / "m.xml.bz2", pages_per_stream=10), tmp_path / "p.xml"):
        if path.suffix == ".xml":
            path.write_bytes(xml)
        ranges = plan_ranges(str(path), 4)
        assert len(ranges) == 4
        ids = [p.id for start, end in ranges for p in iter_pages(str(path), start, end)]
        assert len(ids) == 262 == len(set(ids))


def test_a_single_stream_file_is_one_range(tmp_path):
    path = tmp_path / "d.xml.bz2"
    path.write_bytes(bz2.compress(MARKUP_PAGES.read_bytes()))
    assert plan_ranges(str(path), 4) == [(0, None)]


def test_multistream_holds_the_same_pages_in_streams_of_its_own(tmp_path):
    xml = MARKUP_PAGES.read_bytes()
    header, pages, footer = split_pages(xml)
    assert header + b"".join(pages) + footer == xml
    path = write_multistream(xml, tmp_path / "m.xml.bz2", pages_per_stream=2)
    assert bz2.open(path).read() == xml
    assert len(plan_ranges(str(path), len(pages))) > 1
    assert [p.id for p in iter_pages(str(path))] == [p.id for p in iter_pages(str(MARKUP_PAGES))]


def test_dump_url_and_date():
    assert dump_url("20210301") == (
        "https://dumps.wikimedia.org/jawiki/20210301/jawiki-20210301-pages-articles-multistream.xml.bz2")
    assert dump_url("20210301", "https://mirror.example/dumps/") == (
        "https://mirror.example/dumps/jawiki/20210301/jawiki-20210301-pages-articles-multistream.xml.bz2")
    assert dump_date("/x/jawiki-20200101-pages-articles1.xml-p1p9.bz2") == "20200101"
    assert dump_date("/x/dump.xml") is None


def test_parts_of_a_dump_sort_by_their_first_page_id(tmp_path):
    for name in ("jawiki-20990101-pages-articles10.xml-p900p1000.bz2",
                 "jawiki-20990101-pages-articles2.xml-p11p200.bz2", "jawiki-20990101-pages-articles1.xml-p1p10.bz2"):
        (tmp_path / name).write_bytes(b"")
    parts = expand_sources([str(tmp_path / "jawiki-20990101-pages-articles*.bz2"), "https://x/y.bz2"])
    assert [p.rsplit("-", 1)[-1] for p in parts[:3]] == ["p1p10.bz2", "p11p200.bz2", "p900p1000.bz2"]
    assert parts[3] == "https://x/y.bz2"


def test_an_old_schema_without_ns_or_redirect_reads_as_the_new_one():
    old, new = list(iter_pages(str(MARKUP_PAGES_0_3))), list(iter_pages(str(MARKUP_PAGES)))
    assert old == new
    assert {(p.ns, p.is_redirect) for p in new} == {(0, False), (0, True), (1, False), (4, False)}


def test_ranges_of_an_old_schema_find_the_namespaces_at_the_head_of_the_file(tmp_path):
    path = write_multistream(MARKUP_PAGES_0_3.read_bytes(), tmp_path / "m.xml.bz2", pages_per_stream=2)
    ranges = plan_ranges(str(path), 3)
    assert len(ranges) == 3
    pages = [p for start, end in ranges for p in iter_pages(str(path), start, end)]
    assert pages == list(iter_pages(str(MARKUP_PAGES)))


@pytest.mark.parametrize("title, key", [
    ("記号テスト", 0), ("Wikipedia:テスト", 4), ("wikipedia:テスト", 4), ("ノート:記号", 1),
    ("Help:目次", 12), ("Re:ゼロから始める異世界生活", 0),  # a colon that is not a namespace's
])
def test_a_title_prefix_names_its_namespace(title, key):
    namespaces = {"ノート": 1, "Wikipedia": 4, "Help": 12}
    assert namespace_of(title, namespaces, "dump.xml") == key


def test_pages_without_ns_in_a_dump_that_lists_no_namespaces_are_refused(tmp_path):
    xml = MARKUP_PAGES_0_3.read_text(encoding="utf-8")
    start, end = xml.index("    <namespaces>"), xml.index("</namespaces>") + len("</namespaces>")
    (tmp_path / "d.xml").write_text(xml[:start] + xml[end:], encoding="utf-8")
    with pytest.raises(DumpError, match="no <ns>"):
        list(iter_pages(str(tmp_path / "d.xml")))


@pytest.mark.parametrize("bzip2_tool", [
    pytest.param(True, marks=pytest.mark.skipif(shutil.which("bzip2") is None or shutil.which("head") is None,
                                                reason="the bzip2 and head tools are not installed")),
    False])
def test_the_bzip2_tool_and_the_bz2_module_read_the_same_pages_and_refuse_the_same_damage(
        tmp_path, monkeypatch, bzip2_tool):
    monkeypatch.setattr(dump, "USE_BZIP2_TOOL", bzip2_tool)
    xml = MARKUP_PAGES.read_bytes()
    path = write_multistream(xml, tmp_path / "m.xml.bz2", pages_per_stream=2)
    ranges = plan_ranges(str(path), 3)
    assert len(ranges) == 3
    assert [p for start, end in ranges for p in iter_pages(str(path), start, end)] == list(iter_pages(str(MARKUP_PAGES)))
    before = child_processes()
    pages = iter_pages(str(path), *ranges[1])
    next(pages)
    pages.close()  # a reader stopped early (--max_articles) leaves no process behind
    assert child_processes() == before
    compressed = bz2.compress(xml)
    (tmp_path / "cut.xml.bz2").write_bytes(compressed[:len(compressed) // 2])
    with pytest.raises(DumpError, match="cut.xml.bz2 is not a readable compressed dump"):
        list(iter_pages(str(tmp_path / "cut.xml.bz2")))


@pytest.mark.skipif(shutil.which("bzip2") is None or sys.platform != "linux",
                    reason="needs the bzip2 tool and Linux's pipe sizes")
def test_bzip2_can_run_a_whole_read_ahead_of_the_parser(tmp_path):
    """The pipe holds a whole read (1 MiB): with Linux's default 64 KiB, each read waited for bzip2 to decompress
    the rest of it, and the two processes took turns (measured: wall time = their CPU time added up)."""
    import fcntl
    path = write_multistream(MARKUP_PAGES.read_bytes(), tmp_path / "m.xml.bz2")
    stream = dump._open_xml(str(path))
    try:
        pipe = stream.raw._bzip2.stdout
        assert fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) >= 1 << 20
        assert stream.read(1 << 20) == MARKUP_PAGES.read_bytes()
    finally:
        stream.close()


def child_processes():
    """The ids of this process's children, where Linux lists them (an empty set elsewhere)."""
    return {pid for task in Path("/proc/self/task").glob("*/children") for pid in task.read_text().split()}
