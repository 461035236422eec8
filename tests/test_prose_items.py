"""gpt2ja.prose_items: which list and definition items are sentences (kept) and which are names (dropped).

The cases are items of the real excerpt (benchmarks/data/list_items_*.tsv holds labelled samples)."""

import importlib
import re
from pathlib import Path

import pytest

from gpt2ja.prose_items import _ENDINGS, is_prose_item, looks_like_title

SAMPLES = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "data").glob("list_items_seed*.tsv"))


@pytest.mark.parametrize("item", [
    "伊予灘では、漁船漁業が中心である。小魚中心。",  # sentences with full stops
    "岩国寿司 - 岩国市などで作られる押し寿司の一種。",  # a definition after its head
    "ラッソーリニク - ピクルスのスープ。",
    "近江鉄道 - 県内の広範囲に路線がある",  # a verb, no full stop
    "1991年（平成3年） - 東北新幹線 上野 - 東京駅間開業",  # a dated verbal noun
    "デジタルテレビ放送 眉山から送信",  # a verbal noun after its clause
    "1985年（昭和60年） - 「超機動員ヴァンダー」連載開始（- 1986年（昭和61年））。",
    "サイレントヒル（厳密には舞台ではないが、タイトルおよび町名が「静岡県」に由来している）",  # a clause in a note
    "かがつう（金沢市が創業地）",  # subject and predicate in a note
    "「前提や形式もまた経験的に形成・獲得されたものではないのか？」",  # a quoted question
    "清武町を宮崎市へ編入（2010年3月23日）",  # an event's verbal noun after its object, and its date
    "県内に、原子炉は15基設置されている（敦賀市：4基、美浜町：3基）。",  # a full stop after the note
    "マジンガーZ（光子力研究所が富士山麓の静岡県側に所在）",  # a subject and its predicate in a note
    "古畑任三郎 （1999年 CX） - ロケ地が浜松市・アクトシティ",  # the same after the head
    "佐川町（高吾北地域に区分する場合もある）",  # a short clause in a note
    "藩主に就任（1600年）",  # 藩主 is a noun before its particle, not the adverb 主に
])
def test_items_that_are_sentences_are_prose(item):
    assert is_prose_item(item)


@pytest.mark.parametrize("item", [
    "『ドラゴンボール』（1984年 - 1995年、週刊少年ジャンプ）",  # a work, its years and magazine
    "古在由重著『マルクス主義の思想と方法』剄草書房、1964年。",  # a bibliographic entry
    "高速自動車国道に並行する一般国道自動車専用道路",  # a noun phrase
    "明通寺 - 本堂、三重塔",  # a name and its gloss
    "農業生産額（2016年） - 629億円",  # a figure
    "しゅごキャラエッグ!",  # a title ending on "!"
    "殿様は空のお城に住んでいる （花とゆめ 1990年4、9、14号）",  # a sentence-shaped title and its issue
    "公益財団法人JKAのテレビコマーシャル（2022年5月） - イラスト描きおろし",
    "インボイス制度の反対。",  # a noun phrase with a full stop
    "3月 - 雛まつり、卒業",  # a verbal noun alone in its clause: a list of events
    "せ〜ふくもの【絶版】 - 主婦と生活社（ミッシィコミックスDX）→宙出版（同）",  # 宙出版 is a publisher
    "さくらのはながさく / サクラの花が咲く / 桜の花が咲く",  # forms side by side
    "熊本港～本渡港（天草市）：熊本フェリー（2009年（平成21年）3月31日に廃止）",  # a name and a data note
    "など。",  # too short to be a sentence
    "AIR - 御坊市および美浜町。",  # a list of places, with a full stop
    "飛鳥時代から奈良時代",  # a span of time: から before a noun, not a verb
    "She's Rain（1993年） - 神戸〜芦屋〜西宮、主に阪急沿線",  # 主に is an adverb, not a particle
    "サーイルーン‐54 (宗教法学者ムクタダ・サドルが率いる政治潮流サドル派)",  # a relative clause in a note
    "塩川 - 日本で唯一塩分濃度が高い川",  # the same after the head
    "近畿自動車道名古屋神戸線（新名神高速道路）（甲賀土山IC以東、ただしICは含まず）",  # what a name covers
    "宮崎交通（現在は廃止）",  # what a name is now: a data note
    "東急東横線 - 自由が丘駅",  # が in a place name is no subject
    "映画『ソラニン』（2010年、主演：宮崎あおい）",  # a role and the person in it
])
def test_names_titles_and_fragments_are_not(item):
    assert not is_prose_item(item)


def test_a_title_shape_is_short_headless_and_without_full_stop():
    assert looks_like_title("なにかが闇で見ている")
    assert not looks_like_title("1995年 - 『最初の作品』で新人賞を受賞")  # a dated entry
    assert not looks_like_title("新潟駅を中心とした大都市近郊区間が設定されている。")
    assert not looks_like_title("スクリーントーンは貼り始めるときりがなく時間がかかるため、ほとんど使わない")
    assert not looks_like_title("近江牛（湖東地方が主産地）")  # a name and a clause about it


def test_the_labelled_samples_are_whole_and_draw_no_item_twice():
    seen = set()
    for path in SAMPLES:
        rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()
                if not line.startswith("#")]
        assert rows[0] == ["label", "page_id", "markers", "text"], path.name
        assert len(rows) == 601 and {row[0] for row in rows[1:]} == {"prose", "other"}, path.name
        items = {(page_id, text) for _, page_id, _, text in rows[1:]}
        assert not items & seen, path.name
        seen |= items
    assert len(SAMPLES) == 9


def test_the_patterns_searched_near_the_end_match_no_more_characters_than_their_bound():
    """_search_end looks for these patterns only in the last characters of an item, where their longest
    match fits: a longer word added to one of them must raise its bound, or items ending on it change."""
    parser = getattr(re, "_parser", None) or importlib.import_module("sre_parse")  # the widths re computes
    for pattern, chars, _ in _ENDINGS:
        assert parser.parse(pattern.pattern).getwidth()[1] <= chars, pattern.pattern


def test_the_last_character_tests_refuse_no_ending_their_pattern_matches():
    """_search_end tries a pattern only on an item that ends on a character its matches can end on: a word
    added to a pattern that ends on another character must widen the test, or items ending on it change.
    Every prefix of every labelled item ends on some character; none that a pattern matches is refused."""
    texts = {line.split("\t")[3] for path in SAMPLES for line in path.read_text(encoding="utf-8").splitlines()
             if not line.startswith(("#", "label\t"))}
    prefixes = {text[:end] for text in texts for end in range(1, len(text) + 1)}
    for pattern, _, last_char in _ENDINGS:
        matched = [prefix for prefix in prefixes if pattern.search(prefix)]
        assert len(matched) > 100, pattern.pattern  # (the test sees the pattern at work)
        assert [prefix for prefix in matched if not last_char.match(prefix, len(prefix) - 1)] == [], pattern.pattern
