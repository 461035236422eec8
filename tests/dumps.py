"""Dump files for the tests, made from the fixture XML: the shapes a real jawiki dump comes in."""

import bz2
import re
from pathlib import Path

from gpt2ja.dump import split_pages

FIXTURES = Path(__file__).parent / "fixtures"
MARKUP_PAGES = FIXTURES / "markup-pages.xml"
# The same pages in the export schema 0.3 (2008): no <ns>, no <redirect/>.
MARKUP_PAGES_0_3 = FIXTURES / "markup-pages-0.3.xml"


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
