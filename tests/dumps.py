"""Dump files for the tests, made from the fixture XML: the shapes a real jawiki dump comes in."""

import bz2
import re
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
MARKUP_PAGES = FIXTURES / "markup-pages.xml"


def split_pages(xml):
    """(header, [page, ...], footer) of a MediaWiki export, byte-exact."""
    starts = [m.start() for m in re.finditer(rb"  <page>", xml)]
    end = xml.rindex(b"</page>") + len(b"</page>\n")
    pages = [xml[a:b] for a, b in zip(starts, starts[1:] + [end])]
    return xml[:starts[0]], pages, xml[end:]


def write_multistream(xml, path, pages_per_stream=2):
    """Recompress as Wikimedia's pages-articles-multistream files are: the header, then
    each group of pages, then the footer, each in a bz2 stream of its own."""
    header, pages, footer = split_pages(xml)
    groups = [b"".join(pages[i:i + pages_per_stream]) for i in range(0, len(pages), pages_per_stream)]
    with open(path, "wb") as out:
        for part in [header, *groups, footer]:
            out.write(bz2.compress(part))
    return path


def write_parts(xml, directory, date="20990101", parts=2):
    """Split into multi-part dump files named as Wikimedia names them (pages-articlesN.xml-pApB.bz2)."""
    header, pages, footer = split_pages(xml)
    size = -(-len(pages) // parts)
    paths = []
    for n in range(parts):
        chunk = pages[n * size:(n + 1) * size]
        ids = [int(re.search(rb"<id>(\d+)</id>", p).group(1)) for p in chunk]
        path = Path(directory) / f"jawiki-{date}-pages-articles{n + 1}.xml-p{ids[0]}p{ids[-1]}.bz2"
        path.write_bytes(bz2.compress(header + b"".join(chunk) + footer))
        paths.append(path)
    return paths
