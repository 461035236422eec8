"""Which list and definition items are prose: the decision gpt2ja.wikitext makes for each item.

List and definition items ("*", "#", ":", ";") hold both names, titles and links (lists of works,
members, related articles), which are dropped, and full sentences (anecdotes, history, symptoms,
definitions, chronology), which are prose and kept. What an item is shows in its grammar: a sentence
has a full stop after kana, or ends on a predicate: a verb, adjective or copula in kana (「路線がある」),
or a verbal noun after a clause or a date (「1924年 - 市制施行」, 「眉山から送信」); a name or a title
ends on a noun, on "!", or on a note of place, date or publisher. A parenthesis is read apart: a
clause inside one (「サイレントヒル（…「静岡県」に由来している）」) makes the item prose.

The rules were tuned by hand on labelled samples of the excerpt's items
(benchmarks/data/list_items_seed*.tsv); benchmarks/prose_recall_bench.py measures them.
"""

import re
from typing import NamedTuple

MIN_ITEM_CHARS = 8
MIN_CLAUSE_CHARS = 12  # a parenthesis this long that ends on a predicate is a clause of its own
MAX_TITLE_CHARS = 25
# A short line that starts with a particle lost its head (a formula or list that was cut out).
HEADLESS_START = ("。", "、", "が", "を", "に", "は", "へ", "と", "など", "で", "も")
HEADLESS_MAX_CHARS = 20

_KANA_OR_QUOTE = re.compile(r"[\u3041-\u309f』」”\"]")
_QUOTES = re.compile(r"[『「“\"]")
_PARENTHESIS_MARK = re.compile(r"[（()）]")
_QUOTED = re.compile(r"『[^『』]*』|「[^「」]*」|“[^“”]*”|\"[^\"]*\"")
_TRAILING_PARENTHESES = re.compile(r"(?:\s*[（(](?:[^（）()]|[（(][^（）()]*[）)])*[）)])+$")
# A full stop ends a sentence where kana other than the の of a noun phrase precedes it
# (「インボイス制度の反対。」 is a noun phrase), or after a head it defines: 「ラッソーリニク - ピクルスのスープ。」.
_SENTENCE_IN_ITEM = re.compile(r"[\u3041-\u306d\u306f-\u309f][^。．]*[。．]|^[^。．]{1,40}?(?: - |：)[^。．]*の[^。．]*[。．]")


class _Ending(NamedTuple):
    """A pattern that ends an item ($), with the length of its longest match and a pattern of the characters a
    match can end on. _search_end starts where the longest match can (one character earlier, as $ also matches
    before a final line break), in an item that ends on one of those characters (or a line break); tried at every
    character, their long alternations were most of the time the rules took. (The bounds go with the pattern
    rather than in a dict keyed by it: a Pattern hashes its whole compiled code at every lookup, up to 2 µs.)"""
    pattern: re.Pattern
    longest: int  # characters
    last_char: re.Pattern


# a verb or adjective after its kanji stem (結ぶ, 向かう, 多い), or an auxiliary ending (〜している, 〜された)
_KANA_PREDICATE = _Ending(re.compile(
    r"(?:[\u4e00-\u9fff々][\u3041-\u309f]{0,2}[るたすずうくぬぶむつぐい]|する|した|される|された|させる|いる|いた|"
    r"ある|あった|ない|なる|なった|れる|れた|った|んだ|である|だった|です|ます|ました|という|ず|ぬ|あり|なし|"
    r"[\u3041-\u309f]か[？?])$"), 4, re.compile(r"[\u3041-\u309f？?\n]"))  # a kana, or the ？ of 〜か？
_DATE = r"(?:\d{1,4}年|\d{1,2}月|明治|大正|昭和|平成|令和)"
_HEAD_MARK = re.compile(r" - | -|- |：|: ")
_HEAD = re.compile(rf"{_HEAD_MARK.pattern}|^{_DATE}")  # (split at; _has_head tests for one sooner)
# A head or a date after one is looked for as a match at the start and a search for a literal apart (_has_head,
# _has_date_head): a pattern that starts with a literal lets `re` skip to its next occurrence, where one with a
# ^ among its alternatives is tried at every character.
_DATE_AT_START = re.compile(_DATE)
_DATE_AFTER_HEAD = re.compile(rf"(?: - |：|: ){_DATE}")
_PARENTHESIS = re.compile(r"[（(]([^（）()]*)[）)]")  # an innermost one, and its content
# a case particle, or a quoted title as the object (「アートにエールを！東京プロジェクト」選出), but not
# one that heads the item, its subject: 『アリエスの乙女たち』1973連載
_PARTICLE = re.compile(r"(?:を|に|で|が|は|へ|と|から|まで|より|(?<!^『)』)[^、をにでがはへと』]*$")
# が or は after a noun, marking its subject (but not the が inside a place name: 自由が丘, 霞が関)
_SUBJECT_MARKER = r"[\u4e00-\u9fff\u30a0-\u30ffA-Za-z0-9々）)」』][がは]"
_SUBJECT_MARK = re.compile(rf"{_SUBJECT_MARKER}(?!(?<=が)[丘関])")
# a subject and what is said of it: 湖東地方が主産地, 掲載はない
_SUBJECT = re.compile(rf"{_SUBJECT_MARKER}[^をにでがはと、]{{2,}}$")
# a subject and a predicate noun without kana after it (not a relative clause: 塩分濃度が高い川)
_NOUN_PREDICATE = re.compile(rf"{_SUBJECT_MARK.pattern}[^\u3041-\u309f、]{{2,}}$")
# a note of what a name covers or was, not a clause: （…、ただしICは含まず）, （…美川地域を除く）, （現在は廃止）
_SCOPE_NOTE = re.compile(r"(?:除く|除き|含まず|含まない|含む)$|^(?:現在は|現在、|現・|旧称は?|旧・)")
# a role and the person in it: （2010年、主演：宮崎あおい）
_ROLE = re.compile(r"[：:][^、，,（）()：:]+$")
_LAST_PARENTHESIS = re.compile(r"[（(]((?:[^（）()]|[（(][^（）()]*[）)])*)[）)]$")
_ALTERNATIVES = re.compile(r"\s[/／]\s")
# Verbal nouns that end a sentence in chronologies and short descriptions (体言止め).
_VERBAL_NOUNS = """
    開業 開通 開始 開館 開局 開校 開港 開設 開催 開発 開幕 閉幕 閉店 閉校 閉鎖 閉園 完成 竣工
    着工 落成 施行 設立 設置 発足 発売 発表 発行 発生 発見 刊行 創刊 廃刊 廃止 廃線 移転 移行
    移管 就任 退任 辞任 受賞 選出 連載 放送 放映 公開 上演 初演 出版 収録 掲載 制定 昇格 降格
    合併 統合 編入 改称 改名 改組 誕生 死去 結成 解散 加盟 脱退 創建 創設 創業 建立 成立 勃発
    終結 締結 調印 独立 焼失 落城 築城 延伸 全通 採用 導入 実施 運行 運航 営業 活動 出場 優勝
    昇進 当選 担当 出演 監修 指定 登録 認定 分離 消滅 復活 再開 撤退 進出 参入 上陸 到着 送信
    配信 予定 決定 参加 所属 在籍 卒業 入学 入社 退社 引退 移籍 デビュー 登場 再編 分割 譲渡
    買収 上場 稼働 運用 竣功 完了 終了 中止 休止 復旧 被災 襲来 提携 突破 達成 記録 獲得 樹立
    更新 公演 来日 訪問 完結 発効 批准 通過 可決 成功 失敗 必要 可能 不要 盛ん 閉山 開園 建設
    再建 改築 移築 即位 退位 逝去 結婚 入団 退団 就職 退職 留学 帰国 来航 噴火 流行 逮捕 占領
    陥落 併合 再置 認可 公布 改正 隣接 供給 接続 直結 経由 整備 入選 作画 主演 制作 製作 作曲
    作詞 執筆 発掘 任命 創立 新設 併設 廃部 投下
""".split()
_VERBAL_NOUN_END = _Ending(re.compile(rf"(?:{'|'.join(_VERBAL_NOUNS)}|[^\s、・]化)$"), 4,
                           re.compile(f"[{''.join(sorted({noun[-1] for noun in _VERBAL_NOUNS}))}化\n]"))
# verbal nouns that also end the names of companies
_COMPANY_SUFFIXES = {"出版", "放送", "製作", "制作", "開発", "建設", "配信"}
_PARTICLE_BEFORE = re.compile(r"(?:を|に|で|にて|より|から)$")
# a word of kanji right after a case particle ends on its verb: 厳島神社に参拝, 太字で表記
_PARTICLE_VERBAL_NOUN = _Ending(re.compile(
    r"(?:を|へ|で|より|から|にて|(?<!(?<![\u4e00-\u9fff々])[主特共更既常順逆])に)(?![\u4e00-\u9fff]*(?:時代|地方|地域|方面|周辺|沿線|以降|以前))"
    r"[\u4e00-\u9fff]{2,4}$"), 6, re.compile(r"[\u4e00-\u9fff\n]"))
_ENDINGS = (_KANA_PREDICATE, _VERBAL_NOUN_END, _PARTICLE_VERBAL_NOUN)  # (the tests check their bounds)
_LAST_CLAUSE = re.compile(r"[^\s、・：:]*$")
# words that join the items of a list, not the parts of a sentence: 「AIR - 御坊市および美浜町。」
_LISTING_KANA = re.compile(r"および|ならびに|など|とも(?=[。．])")


def is_prose_item(text):
    """A list or definition item worth keeping: one or more full sentences, not a name, a title,
    a link or a fragment ("1995年、連載を開始。" is; "『ドラゴンボール』（1984年 - 1995年）" is not)."""
    if len(text) < MIN_ITEM_CHARS or (len(text) < HEADLESS_MAX_CHARS and text.startswith(HEADLESS_START)):
        return False
    if not could_be_prose(text):
        return False
    if text.startswith("「") and text.endswith("」"):
        text = text[1:-1]  # a quoted statement, not a title
    elif (text.endswith(("!", "！", "?", "？")) and not text.endswith(("か?", "か？"))
          or ("/" in text or "／" in text) and len(_ALTERNATIVES.findall(text)) >= 2):
        return False  # a title, or forms side by side: さくらのはながさく / サクラの花が咲く / 桜の花が咲く
    quoted = _QUOTED.sub("『』", text) if _QUOTES.search(text) else text
    plain = quoted.rstrip("。． ")
    has_parentheses = _PARENTHESIS_MARK.search(quoted) is not None
    if not has_parentheses:
        body, note = plain, ""
    else:
        ends_on_parenthesis = plain.endswith(("）", ")"))  # (what both patterns below need to match)
        body = _TRAILING_PARENTHESES.sub("", plain).rstrip("。． ") if ends_on_parenthesis else plain
        last = _LAST_PARENTHESIS.search(plain) if ends_on_parenthesis else None
        note = last.group(1) if last else ""
    has_head = _has_head(body)
    note_is_clause = bool(note) and not _SCOPE_NOTE.search(note) and bool(
        _ends_on_predicate(note) or _has_sentence(note) or _says_of_subject(note))
    if note and not has_head and len(body) < MAX_TITLE_CHARS and not note_is_clause and not _sentence_shaped(
            quoted, body):
        # a short line before a note of place, date, author or publisher is the title of a work:
        # 殿様は空のお城に住んでいる （花とゆめ 1990年4、9、14号）, ボクはボク、…泳いでいる。（2018年）
        return False
    if _has_full_stop(quoted) and any(_has_sentence(_LISTING_KANA.sub("", part))
                                      for part in _parts(quoted, note, has_parentheses) if _has_full_stop(part)):
        return True
    if _is_clause(note) or (note_is_clause and _SUBJECT_MARK.search(note)):
        # サイレントヒル（厳密には舞台ではないが、町名が「静岡県」に由来している）, かがつう（金沢市が創業地）,
        # マジンガーZ（光子力研究所が富士山麓の静岡県側に所在）
        # (a verbal noun alone is a data note: 熊本フェリー（2009年3月31日に廃止）)
        return True
    if has_head and _NOUN_PREDICATE.search(_HEAD.split(body)[-1]):
        return True  # what is said of a subject after the head: 古畑任三郎 （1999年 CX） - ロケ地が浜松市
    return _ends_on_predicate(body)


def _sentence_shaped(quoted, body):
    """A full stop after the note, or an event's verbal noun after its object, ends a sentence, not a title:
    「県内に、原子炉は15基設置されている（…）。」, 「清武町を宮崎市へ編入（2010年3月23日）」."""
    return quoted.endswith(("）。", ")。")) or (
        _search_end(_PARTICLE_VERBAL_NOUN, body) is not None and _search_end(_VERBAL_NOUN_END, body) is not None)


def _parts(quoted, note, has_parentheses):
    """The item's own words and each parenthesis apart: a sentence lies wholly in one of them (and each part is
    made of the item's characters, so none holds a full stop where the item holds none)."""
    if not has_parentheses:
        return [quoted]
    return [_without_parentheses(quoted), note, *_PARENTHESIS.findall(quoted)]


def _is_clause(note):
    """A parenthesis that is a clause of its own: long and ending on a predicate, or saying something of a
    subject (湖東地方が主産地); not a data note (熊本フェリー（2009年3月31日に廃止）)."""
    return bool(note) and not _SCOPE_NOTE.search(note) and bool(
        (len(note) >= MIN_CLAUSE_CHARS and _search_end(_KANA_PREDICATE, note) and not _ROLE.search(note))
        or _says_of_subject(note))


def _says_of_subject(words):
    """A subject marked by が or は and what is said of it, a noun (湖東地方が主産地) or a verb or adjective
    (県域版の掲載はない), not a relative clause before a noun (サドルが率いる政治潮流サドル派)."""
    return bool(_NOUN_PREDICATE.search(words) or (_SUBJECT.search(words) and _search_end(_KANA_PREDICATE, words)))


def _ends_on_predicate(words):
    if _search_end(_KANA_PREDICATE, words):
        return True
    if _search_end(_PARTICLE_VERBAL_NOUN, words):
        return True
    verbal_noun = _search_end(_VERBAL_NOUN_END, words)
    if verbal_noun is None or len(_LAST_CLAUSE.search(words).group()) <= len(verbal_noun.group()):
        return False  # no verbal noun, or one alone in its clause: "3月 - 雛まつり、卒業" lists events
    if verbal_noun.group() in _COMPANY_SUFFIXES:
        # 「宙出版」「四国放送」 are names; 「〜で放送」「〜より出版」 are predicates
        return _PARTICLE_BEFORE.search(words[:verbal_noun.start()]) is not None
    return _has_date_head(words) or _PARTICLE.search(words) is not None


def could_be_prose(text):
    """False for most items, names without kana: every rule of is_prose_item needs kana, a quoted
    title or a date (and so does the same text before its markup is rendered)."""
    return _KANA_OR_QUOTE.search(text) is not None or _has_date_head(text)


def looks_like_title(text):
    """Short, without a head ("X - ", "X：", a date) and without a full stop: the shape of a title of a
    work as much as of a sentence (「なにかが闇で見ている」); its list tells which."""
    last = _LAST_PARENTHESIS.search(text) if text.endswith(("）", ")")) else None
    if last and _is_clause(last.group(1)):
        return False  # a name and a clause about it: 近江牛（湖東地方が主産地）
    return len(text) < MAX_TITLE_CHARS and not _has_head(text) and not text.endswith(("。", "．"))


def _has_date_head(text):
    """A date at the start or after a head: 「1924年 - 」, 「開業 - 昭和3年」."""
    return _DATE_AT_START.match(text) is not None or _DATE_AFTER_HEAD.search(text) is not None


def _has_head(text):
    """A head: 「X - 」, 「X：」, or a date at the start."""
    return _HEAD_MARK.search(text) is not None or _DATE_AT_START.match(text) is not None


def _has_full_stop(text):
    return "。" in text or "．" in text


def _has_sentence(text):
    return _has_full_stop(text) and _SENTENCE_IN_ITEM.search(text) is not None  # (every match holds a full stop)


def _search_end(ending, text):
    if not ending.last_char.match(text, len(text) - 1):
        return None
    return ending.pattern.search(text, max(0, len(text) - ending.longest - 1))


def _without_parentheses(text):
    while "（" in text or "(" in text:
        text, count = _PARENTHESIS.subn("", text)
        if not count:
            break
    return text
