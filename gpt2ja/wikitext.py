"""Wiki markup to plain Japanese prose, the text a language model should see.

A regex pipeline in the spirit of wikiextractor (the tool most Japanese corpora
were built with), so it runs at its speed, but it keeps the words that common
inline templates carry ({{lang}}, {{仮リンク}}, {{読み仮名}}, ...) instead of
leaving holes in sentences, and it drops what is not prose: headings, lists,
tables, references, files, categories and the trailing reference sections.

Order matters: comments and tags that hide markup go first, then links and
templates from the innermost out (so a template inside a link caption or a link
inside a template parameter is resolved before its container), then the
line-based constructs, and HTML entities last.
"""

import html
import re

# Tags whose whole content is dropped: footnotes, formulas, code, galleries, maps.
_DROPPED_TAGS = (
    "ref|references|math|chem|ce|gallery|timeline|score|syntaxhighlight|source|pre|"
    "imagemap|graph|templatedata|mapframe|maplink|hiero|inputbox|categorytree|table|"
    "templatestyles|indicator|charinsert|section"
)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_NOWIKI = re.compile(r"<nowiki\s*>(.*?)</nowiki\s*>", re.S | re.I)
_SELF_CLOSING_DROPPED = re.compile(rf"<(?:{_DROPPED_TAGS})\b[^>]*/>", re.I)
_PAIRED_DROPPED = re.compile(rf"<({_DROPPED_TAGS})\b[^>]*>.*?</\1\s*>", re.S | re.I)
_UNCLOSED_DROPPED = re.compile(rf"<(?:{_DROPPED_TAGS})\b[^>]*>.*", re.S | re.I)
_ANY_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*\b[^<>]*>")
_BROKEN_TAG = re.compile(r"</?(?:ref|nowiki|br|span|div|small|sup|sub)\b[^<>\n]*", re.I)

_INNERMOST_LINK = re.compile(r"\[\[([^\[\]]*)\]\]([a-zA-Z]*)")
_INNERMOST_TEMPLATE = re.compile(r"\{\{((?:[^{}]|\{(?!\{)|\}(?!\}))*)\}\}")
_EXTERNAL_LINK = re.compile(r"\[(?:https?:|ftp:)?//[^\s\[\]]+(?:\s+([^\[\]]*))?\]")
_BARE_URL = re.compile(r"https?://[^\s<>\[\]{}|（）]+")
_BOLD_ITALIC = re.compile(r"'{2,}")
_BEHAVIOUR_SWITCH = re.compile(r"__[A-Z]+__")
_EMPTY_BRACKETS = re.compile(r"[（(][\s、，,;；:：]*[）)]")
_LEADING_SEPARATOR = re.compile(r"([（(])[\s、，,;；]+")
_TRAILING_SEPARATOR = re.compile(r"[\s、，,;；]+([）)])")
_SPACES = re.compile(r"[ \t\u00a0\u2002\u2003\u2009\u3000]{2,}")
_HEADING = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$")
_LANGUAGE_PREFIX = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]+)*$")

# A line this short that does not end a sentence is a caption, a list header or
# what is left of a table row or an infobox value ("国立", "（ポピュラー）", "面積：km2、").
MIN_FRAGMENT_CHARS = 20
SENTENCE_END = ("。", "．", "！", "？", "!", "?", "」", "』")
# Nor is a short line that starts with a particle: its head was a formula or list that was cut out.
HEADLESS_START = ("。", "、", "が", "を", "に", "は", "へ", "と", "など", "で", "も")

FILE_NAMESPACES = {"file", "image", "media", "ファイル", "画像", "メディア"}
CATEGORY_NAMESPACES = {"category", "カテゴリ"}

# Sections at the end of an article that hold references and link lists, not prose.
TRAILING_SECTIONS = {
    "脚注", "注釈", "出典", "参考文献", "参考資料", "関連項目", "外部リンク",
    "関連書籍", "関連文献", "参照", "注", "補注", "脚注・出典", "出典・脚注",
    "脚注・参考文献", "注釈・出典", "関連人物", "外部サイト",
}

# Templates that mark a page as a disambiguation page (not prose: a list of links).
DISAMBIGUATION_TEMPLATES = re.compile(
    r"\{\{\s*(?:aimai|disambig|曖昧さ回避|人名の曖昧さ回避|地名の曖昧さ回避|dmbox)\s*[|}]", re.I
)

# Inline templates that carry words of the sentence. Value: which unnamed
# parameters make up the visible text, and how they are joined.
def _first(params):
    return params[0] if params else ""


def _second(params):
    return params[1] if len(params) > 1 else _first(params)


def _last(params):
    return params[-1] if params else ""


def _reading(params):
    # {{読み仮名|漢字|かんじ}} renders as 漢字（かんじ）
    if len(params) >= 2 and params[1]:
        return f"{params[0]}（{params[1]}）"
    return _first(params)


_CONTENT_TEMPLATES = {
    "lang": _second,
    "仮リンク": _first,
    "ill": _first,
    "ill2": _first,
    "interlang": _second,
    "読み仮名": _reading,
    "読み仮名_ruby不使用": _reading,
    "ruby": _first,
    "ルビ": _first,
    "nowrap": _first,
    "small": _first,
    "smaller": _first,
    "big": _first,
    "larger": _first,
    "fontsize": _second,
    "font size": _second,
    "resize": _last,
    "color": _last,
    "colour": _last,
    "en": _first,
    "nihongo": _first,
    "要出典範囲": _first,
    "要検証範囲": _first,
    "独自研究範囲": _first,
    "疑問点範囲": _first,
    "要説明範囲": _first,
    "要曖昧さ回避": _first,
    "transl": _last,
    "ipa": _first,
    "!": lambda params: "|",
    "=": lambda params: "=",
    "°": lambda params: "°",
    "unicode": _first,
    "smallcaps": _first,
    "sup": _first,
    "sub": _first,
    "al": lambda params: "、".join(p for p in params if p),
    "quote": _first,
    "center": _first,
    "補助漢字フォント": _first,
    "jis2004フォント": _first,
    "cjk": _first,
    "拡張漢字": _first,
}


def _template_name(name):
    name = name.strip().replace("_", " ").lower()
    return name.split(":", 1)[-1] if name.startswith(("template:", "テンプレート:")) else name


def _render_template(match):
    parts = match.group(1).split("|")
    name = _template_name(parts[0])
    unnamed = [p.strip() for p in parts[1:] if "=" not in p]
    render = _CONTENT_TEMPLATES.get(name)
    if render is None and name.startswith(("lang-", "ipa-")):
        render = _last
    return render(unnamed) if render else ""


def _render_link(match):
    inner, trail = match.group(1), match.group(2)
    target, _, label = inner.partition("|")
    target = target.strip()
    if not target.startswith(":"):
        prefix, colon, _ = target.partition(":")
        prefix = prefix.strip().lower()
        if colon and (prefix in FILE_NAMESPACES or prefix in CATEGORY_NAMESPACES
                      or _LANGUAGE_PREFIX.match(prefix)):
            return ""
    if label:
        # [[A|B|C]] shows its last part; a file link never reaches here.
        return label.rsplit("|", 1)[-1] + trail
    return target.lstrip(":").split("#", 1)[0] + trail


def _replace_innermost(pattern, render, text):
    while True:
        text, count = pattern.subn(render, text)
        if not count:
            return text


def _drop_balanced(text, opening, closing):
    """Cut out what unbalanced regex passes left: from an opening to its closing marker."""
    out, depth, i = [], 0, 0
    token = re.compile(re.escape(opening) + "|" + re.escape(closing))
    for m in token.finditer(text):
        if m.group() == opening:
            if depth == 0:
                out.append(text[i:m.start()])
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                i = m.end()
        # a stray closing marker at depth 0 is simply dropped with what follows it
        else:
            out.append(text[i:m.start()])
            i = m.end()
    if depth == 0:
        out.append(text[i:])
    return "".join(out)


def _escape_nowiki(match):
    return html.escape(match.group(1), quote=False).replace("[", "&#91;").replace(
        "]", "&#93;").replace("{", "&#123;").replace("}", "&#125;").replace(
        "'", "&#39;").replace("|", "&#124;").replace("_", "&#95;")


def _is_table_line(line):
    return line.startswith(("{|", "|", "!"))


def _clean_line(line):
    line = _EMPTY_BRACKETS.sub("", line.replace("\u00a0", " "))
    line = _LEADING_SEPARATOR.sub(r"\1", line)
    line = _TRAILING_SEPARATOR.sub(r"\1", line)
    line = _EMPTY_BRACKETS.sub("", line)
    return _SPACES.sub(" ", line).strip()


def _prose_lines(text):
    """Keep paragraph lines: drop headings, lists, tables and the trailing reference sections."""
    table_depth = 0
    skipping_section = False
    for raw in text.split("\n"):
        line = raw.strip()
        if line.startswith("{|"):
            table_depth += 1
            continue
        if table_depth:
            if line.startswith("|}"):
                table_depth -= 1
            continue
        heading = _HEADING.match(line)
        if heading:
            skipping_section = heading.group(2).strip() in TRAILING_SECTIONS or (
                skipping_section and len(heading.group(1)) > 2)
            continue
        if skipping_section or not line or line[0] in "*#:;" or _is_table_line(line):
            continue
        if line.startswith("----"):
            continue
        line = _clean_line(html.unescape(line))
        if not line or line.startswith(("|", "!", "{", "}")):
            continue
        if len(line) < MIN_FRAGMENT_CHARS and (
                not line.endswith(SENTENCE_END) or line.startswith(HEADLESS_START)):
            continue
        yield line


def is_disambiguation(wikitext):
    return DISAMBIGUATION_TEMPLATES.search(wikitext) is not None


# What becomes of a page: kept, or the reason it is dropped (the counts of preparation.json).
OUTCOMES = ("kept", "not_article", "redirect", "disambiguation", "empty")


def article_text(page):
    """(the clean text of an article, "kept"), or (None, the reason the page is dropped)."""
    if page.ns != 0:
        return None, "not_article"
    if page.is_redirect:
        return None, "redirect"
    if is_disambiguation(page.wikitext):
        return None, "disambiguation"
    text = clean_wikitext(page.wikitext)
    if not text:
        return None, "empty"
    return text, "kept"


def clean_wikitext(wikitext):
    """Return the article's prose, one paragraph a line, with no wiki markup left."""
    text = _COMMENT.sub("", wikitext)
    text = _NOWIKI.sub(_escape_nowiki, text)
    text = _SELF_CLOSING_DROPPED.sub("", text)
    text = _PAIRED_DROPPED.sub("", text)
    text = _UNCLOSED_DROPPED.sub("", text)
    text = _replace_innermost(_INNERMOST_LINK, _render_link, text)
    text = _replace_innermost(_INNERMOST_TEMPLATE, _render_template, text)
    text = _drop_balanced(text, "{{", "}}")
    text = _EXTERNAL_LINK.sub(lambda m: m.group(1) or "", text)
    text = _BARE_URL.sub("", text)
    text = _ANY_TAG.sub("", text)
    text = _BROKEN_TAG.sub("", text)
    text = _BOLD_ITALIC.sub("", text)
    text = _BEHAVIOUR_SWITCH.sub("", text)
    text = text.replace("[[", "").replace("]]", "")
    return "\n".join(_prose_lines(text))


# What must not survive cleaning; the share of output lines holding any of it is our residue figure.
RESIDUE = re.compile(r"\{\{|\}\}|\[\[|\]\]|\{\||\|\}|<ref|&lt;|&nbsp;|__")


def residue_share(lines):
    lines = list(lines)
    return sum(1 for line in lines if RESIDUE.search(line)) / max(len(lines), 1)


def short_line_share(lines, max_chars=10):
    lines = list(lines)
    return sum(1 for line in lines if len(line) < max_chars) / max(len(lines), 1)
