"""Reading a MediaWiki XML dump page by page, from any of the shapes Wikimedia publishes it in.

A dump is one or more files (the parts of a multi-part dump), each `.xml`,
`.xml.gz`, a single-stream `.xml.bz2` or a multistream `.xml.bz2` (independent
bz2 streams of 100 pages), local or by URL. `plan_ranges` cuts one file into byte
ranges that several processes can read at once; `iter_pages` reads one range as
a stream, one page at a time, with flat memory.
"""

import bz2
import gzip
import io
import logging
import mmap
import os
import re
import shutil
import socket
import subprocess
from glob import glob
from typing import NamedTuple
from urllib.parse import urlsplit
from xml.parsers import expat

from .errors import DumpError
from .rerun import file_fingerprint
from .settings import DEFAULT_MIRROR, REFERENCE_DUMP_DATE

logger = logging.getLogger(__name__)

# Decompress bz2 with the bzip2 tool in a process of its own where it is installed (the bz2 module otherwise).
USE_BZIP2_TOOL = True
BZ2_STREAM_START = re.compile(rb"BZh[1-9]1AY&SY")  # a bz2 stream header and its first block's magic
# Export schemas before 0.4 mark a redirect only in its text, and before 0.6 give no <ns>.
REDIRECT_TEXT = re.compile(r"\s*#(?:REDIRECT|転送)\s*:?\s*\[\[", re.IGNORECASE)
SYNTHETIC_ROOT = b'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">'
ARCHIVE_MIRROR_HINT = (
    "dumps.wikimedia.org keeps only the last few dates; for an older one pass --mirror "
    "with a mirror that keeps it (see https://meta.wikimedia.org/wiki/Mirroring_Wikimedia_project_XML_dumps, "
    "or the Internet Archive's 'jawiki-DATE' items) or download the file and pass --dump PATH"
)


class Page(NamedTuple):
    id: str
    ns: int
    title: str
    is_redirect: bool
    wikitext: str


def dump_url(date=REFERENCE_DUMP_DATE, mirror=DEFAULT_MIRROR):
    # The multistream file holds the same pages as pages-articles.xml.bz2, in
    # independent bz2 streams, so several processes can read it at once.
    return f"{mirror.rstrip('/')}/jawiki/{date}/jawiki-{date}-pages-articles-multistream.xml.bz2"


def latest_dump_date(mirror=DEFAULT_MIRROR):
    """The date the mirror's jawiki/latest/ stands for (from the RSS file Wikimedia keeps beside each latest
    dump), or None where it cannot be read: a dump's license follows its date."""
    import urllib.request
    url = f"{mirror.rstrip('/')}/jawiki/latest/jawiki-latest-pages-articles-multistream.xml.bz2-rss.xml"
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            match = re.search(r"jawiki/(\d{8})", answer.read().decode("utf-8", "replace"))
    except (OSError, ValueError) as error:
        logger.warning("Could not read the date of the latest dump from %s (%s).", url, error)
        return None
    return match.group(1) if match else None


def dump_date(source):
    match = re.search(r"jawiki-(\d{8})-", os.path.basename(source))
    return match.group(1) if match else None


def is_url(source):
    return re.match(r"^[a-z][a-z0-9+.-]*://", source) is not None


def _part_order(path):
    # multi-part dumps: jawiki-DATE-pages-articles2.xml-p114795p390428.bz2 sorts by its first page id
    match = re.search(r"-p(\d+)p\d+", os.path.basename(path))
    return (int(match.group(1)) if match else -1, path)


def expand_sources(sources):
    """Local paths may be globs (the parts of a multi-part dump); URLs pass through. A file named twice
    (by another path, or by two globs) is read once, where it is first named."""
    expanded, seen = [], set()
    for source in sources:
        if is_url(source) or not any(ch in source for ch in "*?["):
            matches = [source]
        else:
            matches = sorted(glob(os.path.expanduser(source)), key=_part_order)
            if not matches:
                raise DumpError(f"No file matches {source}; check the path of the dump parts.")
        for match in matches:
            same = match if is_url(match) else os.path.realpath(os.path.expanduser(match))
            if same in seen:
                logger.warning("%s is named twice: it is read once.", match)
                continue
            seen.add(same)
            expanded.append(match)
    return expanded


def dump_identity(source):
    """A local dump by content: its file name and SHA-256, so a moved or copied file is the same dump. A dump
    by URL by its file name (jawiki-DATE-...), so the same dump from another mirror is the same too."""
    if is_url(source):
        return {"name": source.rstrip("/").rsplit("/", 1)[-1]}
    check_exists(source)
    return {"name": os.path.basename(source), "sha256": file_fingerprint(source)}


def check_exists(path):
    if not os.path.isfile(path):
        raise DumpError(f"Dump {path} does not exist; pass --dump with a jawiki pages-articles file or URL.")


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


class _Bzip2Pipe(io.RawIOBase):
    """The decompressed bytes of [start, end) of a bz2 file, from `bzip2 -dc` in a process of its own, so that
    a second core decompresses while this one parses and cleans (a reader thread in this process measured
    slower). A range that stops before the end of the file reaches bzip2 through `head -c`."""

    def __init__(self, path, start, end):
        self._processes = []
        with open(path, "rb") as file:
            file.seek(start)
            source = file
            if end is not None:
                source = self._start(["head", "-c", str(end - start)], stdin=file).stdout
            self._bzip2 = self._start(["bzip2", "-dc"], stdin=source, stderr=subprocess.PIPE)
        _widen(self._bzip2.stdout)
        if end is not None:
            source.close()  # (bzip2 holds it now)

    def _start(self, argv, **streams):
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, bufsize=0, **streams)
        self._processes.append(process)
        return process

    def readable(self):
        return True

    def readinto(self, buffer):
        size = self._bzip2.stdout.readinto(buffer)
        if not size and self._bzip2.wait():  # the end of the output: a damaged stream shows in the exit status
            reason = self._bzip2.stderr.read().decode(errors="replace").strip().splitlines()
            raise OSError(reason[0] if reason else f"bzip2 exited with status {self._bzip2.returncode}")
        return size

    def close(self):
        for process in self._processes:
            if process.poll() is None:
                process.kill()  # (the reader stopped early: --max_articles, or an error)
            process.wait()
            for stream in (process.stdout, process.stderr):
                if stream:
                    stream.close()
        super().close()


def _widen(pipe):
    """The pipe from bzip2 as wide as the reads from it (1 MiB) where Linux allows it: with the default 64 KiB,
    bzip2 stops 64 KiB ahead of the parser, and each read waits for it to decompress the rest, so the two took
    turns instead of working side by side."""
    try:
        import fcntl  # (Unix only)
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError):
        pass  # (not Linux, or a limit below 1 MiB: the default size works, in turns)


def _bzip2_pipe_works(end):
    return shutil.which("bzip2") is not None and (end is None or shutil.which("head") is not None)


def _compression(path):
    with open(path, "rb") as probe:
        magic = probe.read(3)
    return "bz2" if magic == b"BZh" else "gzip" if magic[:2] == b"\x1f\x8b" else None


def unreachable(url):
    """Why no connection to a URL's host opens (a name that does not resolve, no network, a closed port), or
    None where one does."""
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
                                 timeout=10).close()
    except OSError as error:
        return str(error) or type(error).__name__
    return None


def download_error(source, error):
    """A dump that could not be downloaded, in one sentence that says where else to look: a host that cannot be
    reached is the network's fault, not the date's."""
    why_not = unreachable(source)
    if why_not:
        return DumpError(f"Cannot reach {urlsplit(source).netloc} ({why_not}): check the network, or pass --dump / "
                         "--mirror.")
    detail = type(error).__name__ if str(error) in ("", source) else str(error).splitlines()[0]
    return DumpError(f"Could not download {source} ({detail}). {ARCHIVE_MIRROR_HINT}.")


def _open_xml(path, start=0, end=None):
    """The XML bytes of [start, end) of a dump, decompressed on the fly, never to disk."""
    if is_url(path):  # only with --max_articles: read the head of the remote dump as a stream
        import fsspec
        try:
            raw = fsspec.open(path, "rb").open()
        except Exception as error:  # fsspec's and aiohttp's: a 404, a refused connection, a timeout
            raise download_error(path, error) from None
        return bz2.open(raw) if path.endswith(".bz2") else raw
    compression = _compression(path)
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "bz2" and USE_BZIP2_TOOL and _bzip2_pipe_works(end):
        return io.BufferedReader(_Bzip2Pipe(path, start, end), buffer_size=1 << 20)
    raw = io.BufferedReader(_ByteRange(path, start, end), buffer_size=1 << 20)
    return bz2.open(raw, "rb") if compression == "bz2" else raw


def plan_ranges(path, num_ranges):
    """Cut a dump into about num_ranges byte ranges that each start a bz2 stream or a <page>.

    The multistream dumps (pages-articles-multistream.xml.bz2) and plain XML cut
    anywhere; a single-stream bz2 or a gzip file is one range, read by one process.
    """
    if num_ranges <= 1 or is_url(path):
        return [(0, None)]
    compression = _compression(path)
    if compression == "gzip":
        return [(0, None)]
    size = os.path.getsize(path)
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


class _ExportReader:
    """What iter_pages needs of a MediaWiki export, read by expat's callbacks as bytes are fed to it: each
    page's fields as it ends, and the <siteinfo>'s namespaces. (ElementTree built an element for every
    tag and measured 1.7x the CPU.)"""

    def __init__(self):
        self.parser = expat.ParserCreate(namespace_separator="}")  # a name reads "{uri}local" less its "{"
        self.parser.buffer_text = True  # (a text arrives in one piece, not line by line)
        self.parser.buffer_size = 1 << 20
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.parser.CharacterDataHandler = self._text
        self.root = None  # the root element's name, once read
        self.namespaces = None  # {prefix: key} from <siteinfo>, once read
        self.pages = []  # the fields of the pages read since the caller last took them
        self.inside_page = False
        self.pages_read = 0
        self.last_id = None  # of the last complete page
        self._open = []  # the local names of the elements open now, outermost first
        self._page = None  # the fields read so far of the page open now
        self._page_depth = None  # how many elements are open inside it, the page included
        self._reading = None  # (field, [text pieces]) of the element whose text is being read
        self._site_namespaces = {}

    def feed(self, data, last=False):
        self.parser.Parse(data, last)

    def _start(self, name, attributes):
        local = name.rpartition("}")[2]
        self._open.append(local)
        depth = len(self._open)
        if self.root is None:
            if local != "mediawiki" or "mediawiki.org/xml/export" not in name:
                raise DumpError(f"is not a MediaWiki XML export (its root element is <{local}>)")
            self.root = name
        elif local == "page":
            self.inside_page, self._page, self._page_depth = True, {}, depth
        elif self.inside_page:
            below_page = depth - self._page_depth
            if below_page == 1 and local in ("id", "title", "ns") and local not in self._page:
                self._reading = (local, [])
            elif below_page == 1 and local == "redirect":
                self._page["redirect"] = True
            elif below_page == 2 and local == "text" and self._open[-2] == "revision" and "text" not in self._page:
                self._reading = ("text", [])  # (the first revision's text, as findtext("revision/text") reads)
        elif local == "namespace" and self._open[-2:-1] == ["namespaces"]:
            self._reading = (attributes.get("key"), [])

    def _text(self, data):
        if self._reading is not None:
            self._reading[1].append(data)

    def _end(self, name):
        local = self._open.pop()
        if self._reading is not None:
            field, pieces = self._reading
            self._reading = None
            if self.inside_page:
                self._page[field] = "".join(pieces)
            else:
                self._site_namespaces["".join(pieces).strip()] = int(field)
        if local == "page" and self.inside_page and len(self._open) + 1 == self._page_depth:
            self.inside_page = False
            self.pages_read += 1
            self.last_id = self._page.get("id")
            self.pages.append(self._page)
        elif local == "namespaces" and not self.inside_page:
            self.namespaces, self._site_namespaces = self._site_namespaces, {}

    def take_pages(self):
        pages, self.pages = self.pages, []
        return pages


def iter_pages(path, start=0, end=None):
    """Yield a Page for each page of a dump's byte range.

    Memory stays flat: each page is freed once read. A dump cut after its last
    </page> (no closing </mediawiki>) yields every page and logs a warning; one cut
    inside a page, or a damaged compressed stream, raises DumpError. Every export
    schema reads alike: a page without <ns> (schemas before 0.6) takes its namespace
    from its title's prefix as <siteinfo> lists them, and a redirect is known by its
    text as well as by <redirect/> (which schemas before 0.4 lack).
    """
    if not is_url(path):
        check_exists(path)
    reader = _ExportReader()
    namespaces = None  # {prefix: key} from <siteinfo>, read where a page has no <ns>
    stream = _open_xml(path, start, end)
    try:
        if start:
            reader.feed(SYNTHETIC_ROOT)  # a range after the first lacks the <mediawiki> root
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            reader.feed(chunk)
            for fields in reader.take_pages():
                title = fields.get("title", "")
                wikitext = fields.get("text", "")
                ns = fields.get("ns")
                if ns is None:
                    if namespaces is None:
                        namespaces = reader.namespaces if reader.namespaces is not None else site_namespaces(path)
                    ns = namespace_of(title, namespaces, path)
                yield Page(
                    id=fields.get("id"),
                    ns=int(ns),
                    title=title,
                    is_redirect="redirect" in fields or REDIRECT_TEXT.match(wikitext) is not None,
                    wikitext=wikitext,
                )
        reader.feed(b"", last=True)
    except DumpError as error:
        raise DumpError(f"{path} {error}; pass a jawiki pages-articles dump.") from None
    except expat.ExpatError as error:
        if reader.root is None:
            raise DumpError(f"{path} is empty or not XML ({error}); pass a jawiki pages-articles dump.") from None
        if reader.inside_page or error.code != 3:  # 3: expat's "no element found", the end of a cut stream
            raise DumpError(
                f"{path} is cut or damaged inside a page after page id {reader.last_id} ({error}); "
                "download the dump again.") from None
        if end is None:  # a range before the last one ends without </mediawiki> by design
            logger.warning("%s ends after its last </page> without </mediawiki> (a cut dump); "
                           "all %d complete pages of this part were read.", path, reader.pages_read)
    except (OSError, EOFError) as error:
        raise DumpError(f"{path} is not a readable compressed dump ({error}); download it again.") from None
    finally:
        stream.close()


def site_namespaces(path):
    """{prefix: key} of the namespaces the <siteinfo> at the head of a dump lists ({} if none)."""
    reader = _ExportReader()
    stream = _open_xml(path)
    try:
        for chunk in iter(lambda: stream.read(1 << 16), b""):
            reader.feed(chunk)
            if reader.namespaces is not None:
                return reader.namespaces
            if reader.pages or reader.inside_page:
                return {}
    except (DumpError, expat.ExpatError, OSError, EOFError):
        pass  # iter_pages reports a damaged dump with the page it stopped at
    finally:
        stream.close()
    return {}


def namespace_of(title, namespaces, path):
    """The namespace key of a title, by its prefix ("Wikipedia:…" -> 4; no known prefix -> 0)."""
    if not namespaces:
        raise DumpError(f"{path} gives its pages no <ns> and its <siteinfo> lists no namespaces, so "
                        "articles cannot be told from other pages; pass a complete pages-articles dump.")
    prefix, colon, _ = title.partition(":")
    if not colon:
        return 0
    prefix = prefix.strip()
    # MediaWiki folds the first letter's case and treats spaces and underscores alike
    for name in (prefix, prefix[:1].upper() + prefix[1:], prefix.replace("_", " ")):
        if name in namespaces:
            return namespaces[name]
    return 0


# --- writing: the same pages in the multistream shape, for tests and benchmarks ---------------

def split_pages(xml):
    """(header, [page, ...], footer) of a MediaWiki export's bytes, byte-exact."""
    starts = [m.start() for m in re.finditer(rb"  <page>", xml)]
    end = xml.rindex(b"</page>") + len(b"</page>\n")
    pages = [xml[a:b] for a, b in zip(starts, starts[1:] + [end])]
    return xml[:starts[0]], pages, xml[end:]


def write_multistream(xml, path, pages_per_stream=100):
    """Compress as Wikimedia's pages-articles-multistream files are: the header, then each group
    of pages, then the footer, each in a bz2 stream of its own (so plan_ranges can cut it)."""
    header, pages, footer = split_pages(xml)
    groups = [b"".join(pages[i:i + pages_per_stream]) for i in range(0, len(pages), pages_per_stream)]
    with open(path, "wb") as out:
        for part in [header, *groups, footer]:
            out.write(bz2.compress(part))
    return path
