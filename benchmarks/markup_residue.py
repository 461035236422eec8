"""The benchmarks' figures of output quality: the share of lines that hold markup, and of very short lines."""

import re

# What must not survive cleaning; the share of output lines holding any of it is our residue figure.
RESIDUE = re.compile(r"\{\{|\}\}|\[\[|\]\]|\{\||\|\}|<ref|&lt;|&nbsp;|__")


def residue_share(lines):
    lines = list(lines)
    return sum(1 for line in lines if RESIDUE.search(line)) / max(len(lines), 1)


def short_line_share(lines, max_chars=10):
    lines = list(lines)
    return sum(1 for line in lines if len(line) < max_chars) / max(len(lines), 1)
