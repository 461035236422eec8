"""gpt2ja.wikitext: wiki markup to prose, and which pages are articles."""

import pytest

from dumps import MARKUP_PAGES
from gpt2ja.dump import Page, iter_pages
from gpt2ja.wikitext import article_text, clean_wikitext, residue_share, short_line_share


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
