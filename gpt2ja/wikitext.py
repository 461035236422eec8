"""Wiki markup to plain Japanese prose, the text a language model should see.

A regex pipeline in the spirit of wikiextractor (the tool most Japanese corpora
were built with), so it runs at its speed, but it keeps the words that common
inline templates carry ({{lang}}, {{仮リンク}}, {{読み仮名}}, ...) instead of
leaving holes in sentences, keeps the list and definition items that are
sentences (gpt2ja.prose_items decides which), and drops what is not prose:
headings, tables, references, files, categories, list items that are names or
titles, editorial notes that send the reader elsewhere (「詳細は〜を参照。」) and
the trailing reference sections.

CLEANER_VERSION names what this module makes of a page; prepare_data.py records
it, so that data prepared by another version is not taken for this one. Change
it with any change to the output.

Order matters: comments and tags that hide markup go first, then links and
templates from the innermost out (so a template inside a link caption or a link
inside a template parameter is resolved before its container), then the
line-based constructs, and HTML entities last.
"""

import collections
import functools
import html
import re

from .prose_items import HEADLESS_START, could_be_prose, is_prose_item, looks_like_title

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

# Most links are [[target]] or [[target|label]] to an article (no namespace, no section, one label) and show
# their target or label: one substitution renders them, and only the others go through _render_link, first
# (a file or category link drops the letters after it, which a plain link rendered before it would leave there).
_PLAIN_LINK = re.compile(r"\[\[(?:([^\[\]|:#]*)\]\]|[^\[\]|:]*\|([^\[\]|]+)\]\])")  # (a target is stripped after)
_OTHER_LINK = re.compile(r"\[\[(?![^\[\]|:#]*\]\]|[^\[\]|:]*\|[^\[\]|]+\]\])([^\[\]]*)\]\]([a-zA-Z]*)")
# (the loop unrolled: runs of [^{}] at a time, where an alternation per character took twice as long)
_INNERMOST_TEMPLATE = re.compile(r"\{\{([^{}]*(?:(?:\{(?!\{)|\}(?!\}))[^{}]*)*)\}\}")
_EXTERNAL_LINK = re.compile(r"\[(?:https?:|ftp:)?//[^\s\[\]]+(?:\s+([^\[\]]*))?\]")
_BARE_URL = re.compile(r"https?://[^\s<>\[\]{}|（）]+")
_BOLD_ITALIC = re.compile(r"''+")
_BEHAVIOUR_SWITCH = re.compile(r"__[A-Z]+__")
_EMPTY_BRACKETS = re.compile(r"[（(][\s、，,;；:：]*[）)]")
_LEADING_SEPARATOR = re.compile(r"([（(])[\s、，,;；]+")
_TRAILING_SEPARATOR = re.compile(r"[\s、，,;；]+([）)])")
# what any of the three patterns above would change: without it, the four passes of _clean_line change nothing
_BRACKETS_TO_CLEAN = re.compile(
    r"[（()）](?:(?<=[（(])(?:[）)\s、，,;；]|[:：][\s、，,;；:：]*[）)])|(?<=[\s、，,;；][）)]))")
_SPACES = re.compile(r"[ \t\u00a0\u2002\u2003\u2009\u3000][ \t\u00a0\u2002\u2003\u2009\u3000]+")
_HEADING = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$")
_LANGUAGE_PREFIX = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]+)*$")

# A line this short that does not end a sentence is a caption, a list header or
# what is left of a table row or an infobox value ("国立", "（ポピュラー）", "面積：km2、").
MIN_FRAGMENT_CHARS = 20
SENTENCE_END = ("。", "．", "！", "？", "!", "?", "」", "』")

_LIST_MARKERS = re.compile(r"[*#:;]+")
_TERM_COLON = re.compile(r"\s:\s?")

# Editorial notes: a sentence whose verb is 参照 (see ...), a parenthesis that only points elsewhere.
_SENTENCE_PIECE = re.compile(r"[^。．！？]*(?:[。．！？]+[」』）)]*|$)")
# 「Xを参照。」「「X」も参照のこと。」「X（Y）参照。」「当該項参照のこと。」「参照：X」「詳細は該当ページへ。」,
# but not 「…への参照。」
_POINTER_SENTENCE = re.compile(
    r"(?:[をも」』）)]|項|節|記事|ページ|一覧)\s*(?:併せて)?参照(?:のこと|されたい|せよ|してください|して下さい)?[。．]?$"
    r"|^[（(]?参照\s*[:：]|^(?:詳細|詳しく)は[^、。]*へ[。．]?$")
# a parenthesis that holds nothing but a pointer: 「（詳細は「X」を参照）」「（→X）」「（参照：X）」;
# one that holds a sentence too, or a word such as 参照カウント, stays
_POINTER_PARENTHESIS = re.compile(
    r"\s*[（(](?:[^（）()。]*[をも」』]\s*参照(?:のこと|されたい)?|[^（）()。]*参照|(?:参照\s*[:：]|→)[^（）()。]*)[）)]")

FILE_NAMESPACES = {"file", "image", "media", "ファイル", "画像", "メディア"}
CATEGORY_NAMESPACES = {"category", "カテゴリ"}

# Sections at the end of an article that hold references and link lists, not prose.
TRAILING_SECTIONS = {
    "脚注", "注釈", "出典", "参考文献", "参考資料", "関連項目", "外部リンク",
    "関連書籍", "関連文献", "参照", "注", "補注", "脚注・出典", "出典・脚注",
    "脚注・参考文献", "注釈・出典", "外部サイト",
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


@functools.lru_cache(maxsize=1 << 14)  # (a few thousand names make up nearly every call of a dump)
def _renderer(written_name):
    """How a template named so renders its unnamed parameters, or None where it renders as nothing."""
    name = _template_name(written_name)
    render = _CONTENT_TEMPLATES.get(name)
    if render is None and name.startswith(("lang-", "ipa-")):
        render = _last
    return render


def _render_template(match):
    inner = match.group(1)
    render = _renderer(inner.partition("|")[0])
    if render is None:
        return ""  # (most templates, an infobox's many parameters among them)
    return render([p.strip() for p in inner.split("|")[1:] if "=" not in p])


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


def _render_links(text):
    """Links from the innermost out: each round renders the links that hold no other link."""
    while True:
        text, others = _OTHER_LINK.subn(_render_link, text)
        pieces = _PLAIN_LINK.split(text)  # the text around plain links, and each one's target or label
        pieces[1::3] = [target.strip() if target else target for target in pieces[1::3]]
        text = "".join(filter(None, pieces))  # (faster than a substitution's template or callback)
        if not others and len(pieces) == 1:
            return text


def _replace_innermost(pattern, render, text):
    while True:
        text, count = pattern.subn(render, text)
        if not count:
            return text


def _drop_balanced(text, opening, closing):
    """Cut out what unbalanced regex passes left: from an opening to its closing marker."""
    if opening not in text and closing not in text:
        return text
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


# the first characters of the lines that are not paragraphs: list items, tables, headings, rules
_LIST_MARKER_STARTS = ("*", "#", ":", ";")
_MARKUP_LINE_STARTS = frozenset((*_LIST_MARKER_STARTS, "{", "|", "!", "=", "-"))


def _is_table_line(line):
    return line.startswith(("{|", "|", "!"))


def _clean_line(line):
    line = line.replace("\u00a0", " ")
    # (1 line in 170 needs them, on the excerpt: this saves four passes; half the lines hold no bracket at all,
    # which `in` sees quicker than a search for a character class)
    if ("（" in line or "(" in line or ")" in line or "）" in line) and _BRACKETS_TO_CLEAN.search(line):
        line = _EMPTY_BRACKETS.sub("", line)
        line = _LEADING_SEPARATOR.sub(r"\1", line)
        line = _TRAILING_SEPARATOR.sub(r"\1", line)
        line = _EMPTY_BRACKETS.sub("", line)
    return _SPACES.sub(" ", line).strip()


def _item_parts(markers, body):
    """(markers, text) of the parts of a list or definition line: a `;term : definition` line holds
    two, the definition marked as a `:` under its term (a colon with a space before it splits them
    first, as in 「Re:ゼロから始める異世界生活 : 長月達平による…」)."""
    if markers.endswith(";") and ":" in body:
        split = _TERM_COLON.search(body) or re.search(":", body)
        return [(markers, body[:split.start()]), (markers + ":", body[split.end():])]
    return [(markers, body)]


def rendered_lines(text, every_item=True):
    """The body lines of rendered markup, before the prose filter: headings, tables and the trailing
    reference sections are gone, entities resolved, editorial notes dropped, and a `;term : definition`
    line is two lines. Each line is a plain tuple (markers, text, list_number); a NamedTuple cost 5% of the
    cleaning:
    - markers: "" for a paragraph; "*", "#:", ";" ... for a list or definition item;
    - text: without the markers (None for an item that cannot be prose, with every_item=False);
    - list_number: which list of the article an item belongs to (items without a break between).
    With every_item=False, an item that cannot be prose (prose_items.could_be_prose) is not cleaned (which
    saves most of the work) and is yielded with None for its text, even where cleaning would leave nothing,
    so that it still counts among its list's items."""
    table_depth = 0
    skipping_section = False
    list_number, in_list = 0, False
    for raw in text.split("\n"):
        line = raw.strip()
        if table_depth:  # (a table's last line, |}, ends any list in it)
            if line.startswith("{|"):
                table_depth += 1
            elif line.startswith("|}"):
                table_depth -= 1
            continue
        first = line[:1]
        if first not in _MARKUP_LINE_STARTS:
            in_list = False  # a paragraph (most lines are), or a blank line
            if line and not skipping_section:
                if cleaned := _cleaned("", line, list_number):
                    yield cleaned
        elif first in _LIST_MARKER_STARTS:
            markers = _LIST_MARKERS.match(line).group()
            if not in_list:
                list_number += 1
            in_list = True
            if skipping_section:
                continue
            for part_markers, part in _item_parts(markers, line[len(markers):]):
                if not every_item and not could_be_prose(part.strip()):
                    yield part_markers, None, list_number  # (counted among its list's items)
                    continue
                if cleaned := _cleaned(part_markers, part, list_number):
                    yield cleaned
        else:
            in_list = False
            if line.startswith("{|"):
                table_depth += 1
                continue
            heading = _HEADING.match(line) if first == "=" else None
            if heading:
                skipping_section = heading.group(2).strip() in TRAILING_SECTIONS or (
                    skipping_section and len(heading.group(1)) > 2)
            elif not (skipping_section or _is_table_line(line) or line.startswith("----")):
                if cleaned := _cleaned("", line, list_number):  # ("=", "-" or "{" that starts no heading, rule...)
                    yield cleaned


def _cleaned(markers, part, list_number):
    """The rendered line of a part, or None where cleaning leaves nothing (or what is left of a table)."""
    if "&" in part:
        part = html.unescape(part)
    part = _clean_line(drop_editorial_notes(part))
    if part and not part.startswith(("|", "!", "{", "}")):
        return markers, part, list_number
    return None


def _is_paragraph(line):
    return len(line) >= MIN_FRAGMENT_CHARS or (
        line.endswith(SENTENCE_END) and not line.startswith(HEADLESS_START))


def _prose_lines(text):
    kept = []  # (line, None) of a paragraph, (line, its list and level) of a prose item, in order
    items, prose_items = collections.defaultdict(int), collections.defaultdict(int)
    for markers, line, list_number in rendered_lines(text, every_item=False):
        if not markers:
            if _is_paragraph(line):
                kept.append((line, None))
            continue
        level = (list_number, markers)
        items[level] += 1
        if line is not None and is_prose_item(line):
            prose_items[level] += 1
            kept.append((line, level))
    for line, level in kept:
        # The one rule that looks beyond the item: an item that could as well be a title, among items
        # at its level that are mostly names, is taken for one more name (「なにかが闇で見ている」 in a
        # list of works).
        if level is not None and items[level] >= 3 and 2 * prose_items[level] < items[level] and (
                looks_like_title(line)):
            continue
        yield line


def drop_editorial_notes(line):
    """The line without the notes that send the reader elsewhere (「詳細は〜を参照。」,
    「〜はリンク先の各記事を参照。」, 「（〜も参照）」): they are not text of the article."""
    if "参照" not in line and "→" not in line and "詳" not in line:  # (what every note holds)
        return line
    line = _POINTER_PARENTHESIS.sub("", line)
    return "".join(s for s in _SENTENCE_PIECE.findall(line) if not is_editorial_note(s))


def is_editorial_note(sentence):
    return _POINTER_SENTENCE.search(sentence.strip()) is not None


def is_disambiguation(wikitext):
    return DISAMBIGUATION_TEMPLATES.search(wikitext) is not None


CLEANER_VERSION = "3"  # 2: prose list items kept, editorial notes dropped; 3: list items decided better
# What each version of the cleaning does, in the words of the model and dataset cards.
CLEANING = {
    "1": "Wiki markup became plain prose, one paragraph a line: templates, tables, references, files, "
         "categories, headings and lists removed, links kept as their visible text.",
    "2": "Wiki markup became plain prose, one paragraph a line: links kept as their visible text and the "
         "words of inline templates kept; list and definition items kept where they are sentences; "
         "infobox and other templates, tables, references, files, categories, headings, list items that "
         "are names or titles, editorial notes that send the reader elsewhere (「詳細は〜を参照。」) and "
         "the trailing reference sections removed.",
}
CLEANING["3"] = CLEANING["2"]  # the same rules, applied with fewer mistakes

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
    return "\n".join(_prose_lines(render_markup(wikitext)))


def render_markup(wikitext):
    """Inline markup rendered (links, templates, tags; entities are resolved line by line later);
    the line structure is left as is."""
    text = _COMMENT.sub("", wikitext)
    text = _NOWIKI.sub(_escape_nowiki, text)
    text = _SELF_CLOSING_DROPPED.sub("", text)
    text = _PAIRED_DROPPED.sub("", text)
    text = _UNCLOSED_DROPPED.sub("", text)
    text = _render_links(text)
    text = _replace_innermost(_INNERMOST_TEMPLATE, _render_template, text)
    text = _drop_balanced(text, "{{", "}}")
    text = _EXTERNAL_LINK.sub(lambda m: m.group(1) or "", text)
    text = _BARE_URL.sub("", text)
    text = _ANY_TAG.sub("", text)
    text = _BROKEN_TAG.sub("", text)
    text = _BOLD_ITALIC.sub("", text)
    text = _BEHAVIOUR_SWITCH.sub("", text)
    return text.replace("[[", "").replace("]]", "")

