"""gpt2ja.wikitext: wiki markup to prose, and which pages are articles."""

import hashlib
import random
import re

import pytest

from dumps import MARKUP_PAGES
from gpt2ja import wikitext
from gpt2ja.dump import Page, iter_pages
from benchmarks.markup_residue import residue_share, short_line_share
from gpt2ja.wikitext import CLEANER_VERSION, CLEANING, article_text, clean_wikitext, drop_editorial_notes

# What the cleaner makes of the fixture dump, by CLEANER_VERSION (see test_any_change_of_output_...).
CLEANED_FIXTURE_SHA256 = {"3": "c8b599f3d239030db42deb931e4cb871f78abbc61b8edd5af0565fb11324ed79"}


def page_text(page_id):
    for page in iter_pages(str(MARKUP_PAGES)):
        if page.id == page_id:
            return page.wikitext
    raise KeyError(page_id)


def test_markup_becomes_prose():
    text = clean_wikitext(page_text("101"))
    lines = text.split("\n")
    assert lines[0] == "記号テスト（symbol test、記号（きごう））は、記号のテストである。仮名と約物を含む。"
    assert "この段落は 実体参照とHTMLタグを含み、外部リンクとも含む。数式は消える。" in lines
    assert "歴史の段落は、出典のない記述を含む文である。" in lines
    # nowiki shows its content literally, as MediaWiki renders it
    assert "表記[[リンクではない]]はそのまま残る文である。" in lines
    assert len(lines) == 4


@pytest.mark.parametrize("gone", [
    "Infobox", "約物\n", "出典サイト名", "注釈の本文", "コメント", "NOTOC", "Sample", "画像", "E = mc",
    "表の行", "出来事", "箇条書き", "番号付き", "定義", "ギャラリー", "Navbox", "Reflist",
    "公式サイト", "きこうてすと", "Category", "Symbol test", "https", "&", "<", "'''", "脚注", "関連項目",
    "歴史\n",
])
def test_markup_is_removed(gone):
    assert gone not in clean_wikitext(page_text("101")) + "\n"


def test_list_items_that_are_sentences_stay_as_paragraphs_and_names_go():
    assert clean_wikitext(page_text("107")).split("\n") == [
        "リストの記事は、本文の多くが箇条書きに書かれた記事である。",
        "幼少期から絵を描くことが好きで、学校のノートにも漫画を描いていたという。",  # a bulleted anecdote
        "1995年 - 『最初の作品』で新人賞を受賞。",  # a line of a chronology
        "鼻や喉に炎症が起きる病気の総称である。",  # ;term / :definition, the term gone
        "一行に書かれた定義も、文であれば本文として残る。",  # ;term : definition on one line
        "その後、東京に移り住み、新しい雑誌で連載を始めた。",  # an indented paragraph, its pointer gone
        "近江牛（湖東地方が主産地）",  # a name and a clause about it, among names
    ]
    # gone: the editorial note, the list of works (「なにかが闇で見ている」 is a title among titles),
    # the names, a list of places with a full stop (「産地 - 御坊市および美浜町。」), and the sentence under
    # 関連項目, a trailing section


@pytest.mark.parametrize("line, kept", [
    ("詳細は著作権の準拠法を参照。", ""),
    ("前の文である。イタリア語の日本語表記を参照。次の文も残る。", "前の文である。次の文も残る。"),
    ("この海域は重要である（詳細は「ナトゥナ諸島」を参照）。", "この海域は重要である。"),
    ("移民の多い郊外で治安が悪化した（→パリ症候群を参照のこと）。", "移民の多い郊外で治安が悪化した。"),
    ("参照：音楽家、音楽家の一覧（クラシックを除く）", ""),
    ("詳細は該当ページへ。", ""),
    # 参照 as a word of the sentence, a quoted pointer, and a parenthesis that holds a sentence stay
    ("PHPでは、参照渡しを行うことができる。", "PHPでは、参照渡しを行うことができる。"),
    ("「Xを参照。」と書かれていた。", "「Xを参照。」と書かれていた。"),
    ("この変数はオブジェクトへの参照。", "この変数はオブジェクトへの参照。"),
    ("Perl（参照カウント方式のGCを持つ）は便利である。", "Perl（参照カウント方式のGCを持つ）は便利である。"),
    ("大気は変わった（ただし、生物だけによるものではない。地球の大気も参照のこと）。",
     "大気は変わった（ただし、生物だけによるものではない。地球の大気も参照のこと）。"),
    ("詳細は不明だが、1945年に一家は満州へ。", "詳細は不明だが、1945年に一家は満州へ。"),
])
def test_editorial_notes_that_send_the_reader_elsewhere_are_dropped(line, kept):
    assert drop_editorial_notes(line) == kept


def test_a_definition_on_the_line_of_its_term_is_split_at_the_colon_that_separates_them():
    text = clean_wikitext(";Re:ゼロから始める異世界生活 : 長月達平によるライトノベルで、アニメ化もされた。\n"
                          ";比率1:2の長方形 : 白銀比と並んでよく知られる形である。\n"
                          ";用語:定義の文であり、本文として残る。")
    assert text.split("\n") == ["長月達平によるライトノベルで、アニメ化もされた。",
                                 "白銀比と並んでよく知られる形である。", "定義の文であり、本文として残る。"]


def test_a_short_sentence_is_dropped_among_names_only():
    names = "* A社\n* B社\n* C社\n"
    assert clean_wikitext(names + "* 本社は東京の港区に置かれている") == ""  # could be one more name
    assert clean_wikitext("* A社\n* 本社は東京の港区に置かれている") == "本社は東京の港区に置かれている"  # too few
    assert clean_wikitext(names + "* 本社は東京の港区に置かれている。") == "本社は東京の港区に置かれている。"
    # terms do not count among the definitions: three of these four are sentences, and stay
    definitions = "".join(f";{name}社 : 東京の港区に本社がある\n" for name in "ABC") + ";D社 : 港区\n"
    assert clean_wikitext(definitions).split("\n") == ["東京の港区に本社がある"] * 3


def test_every_cleaner_version_is_described_for_the_cards():
    assert CLEANER_VERSION in CLEANING and all(CLEANING[version] for version in map(str, range(1, 4)))


def test_any_change_of_output_comes_with_a_new_cleaner_version():
    """prepare_data.py reuses a data folder only when CLEANER_VERSION is the one it was made with; a
    change to what the cleaner writes must change the version too (and record the new digest here).
    This catches the changes that show on the fixture pages, which hold a case of each rule."""
    cleaned = "\n\n".join(clean_wikitext(page.wikitext) for page in iter_pages(str(MARKUP_PAGES)))
    assert hashlib.sha256(cleaned.encode()).hexdigest() == CLEANED_FIXTURE_SHA256.get(CLEANER_VERSION)


def test_plain_links_render_in_one_substitution_as_every_link_does_by_its_callback():
    """Plain links ([[target]], [[target|label]]) skip _render_link; the text must be the same as when every
    innermost link goes through it, round after round: random nestings of plain links, file, category,
    language and section links, pipes, colons and letters after a link (which a file link drops)."""
    innermost = re.compile(r"\[\[([^\[\]]*)\]\]([a-zA-Z]*)")

    def by_callback(text):
        while True:
            text, count = innermost.subn(wikitext._render_link, text)
            if not count:
                return text

    pieces = ["[[", "]]", "[", "]", "|", ":", "#", "File", "ファイル", "Category", "en", "a", "B", " ", "\u3000",
              "文", "{{", ":en", "ja:", "\n"]
    rng = random.Random(0)
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 25))) for _ in range(20000)]
    texts += ["[[File:x.jpg]][[a]]bc", "[[ 本文 ]]と[[記事|表示]]s", "[[記事#節]]", "[[記事|]]", "[[a|b|c]]"]
    for text in texts:
        assert wikitext._render_links(text) == by_callback(text), text


def test_unbalanced_markup_leaves_no_residue():
    text = clean_wikitext("本文の始まりである。{{未完の テンプレート|{{入れ子}}\n次の段落も本文である文章だ。}} 後ろ。\n"
                          "閉じない&lt;ref&gt;脚注")
    assert residue_share(text.split("\n")) == 0


@pytest.mark.parametrize("page, outcome", [
    (Page("1", 0, "本文", False, "これは記事の本文であり、十分な長さの一文である。"), "kept"),
    (Page("2", 4, "Wikipedia:方針", False, "これは記事の本文であり、十分な長さの一文である。"), "not_article"),
    (Page("3", 0, "転送", True, "#REDIRECT [[本文]]"), "redirect"),
    (Page("4", 0, "曖昧", False, "'''曖昧'''とは\n* [[一]]\n* [[二]]\n{{aimai}}"), "disambiguation"),
    (Page("5", 0, "表だけ", False, "{|\n| セル || セル\n|}\n* 項目"), "empty"),
])
def test_article_text_keeps_articles_and_names_why_others_go(page, outcome):
    text, got = article_text(page)
    assert got == outcome
    assert (text is not None) == (outcome == "kept")


def test_quality_figures_count_lines():
    assert residue_share(["本文", "{{残り}}", "[[リンク]]", "本文"]) == 0.5
    assert short_line_share(["短い", "これは十分に長い一行の本文です"]) == 0.5
    assert residue_share([]) == 0 and short_line_share([]) == 0
