"""gpt2ja.cards: the model folder as the cards read it, and the model, Space and dataset cards."""

import dataclasses
import shutil

import pytest
from huggingface_hub import DatasetCard, SpaceCard

from gpt2ja.model_folder import ModelFolder
from gpt2ja.cards import (Example, Links, check_card_metadata, dataset_card, describe_time, example_output,
                          model_card, model_license, plot_curve, size_category, stage_space_files)
from gpt2ja.licenses import hub_license, wikipedia_license
from gpt2ja.errors import UserError
from gpt2ja.splits import Preparation
from gpt2ja.sources.files import files_record
from gpt2ja.sources.hub_dataset import dataset_record
from gpt2ja.sources.wikipedia import wikipedia_record
from gpt2ja.wikitext import CLEANER_VERSION

PREPARATION = Preparation(
    identity={"dumps": [{"name": "jawiki-20220720-pages-articles.xml.bz2", "sha256": "a" * 64}], "max_articles": None,
              "validation_percent": 5.0, "test_percent": 5.0, "cleaner": CLEANER_VERSION},
    sources=["/data/jawiki-20220720-pages-articles.xml.bz2"], dump_date="20220720", pages_read=262,
    dropped={"not_article": 40, "redirect": 20, "disambiguation": 2, "empty": 2}, articles=198,
    splits={"train": 180, "validation": 10, "test": 8}, characters={"train": 900_000, "validation": 50_000,
                                                                  "test": 40_000}, fingerprint="b" * 64,
    source=wikipedia_record("20220720", ["jawiki-20220720-pages-articles.xml.bz2"], CLEANER_VERSION,
                            [{"name": "jawiki-20220720-pages-articles.xml.bz2", "sha256": "a" * 64}]))
# the user's own text, as prepare_data.py --train_file / --dataset_name records it
FILES = {"kind": "files", "files": ["/home/me/corpus/novels.jsonl", "https://example.org/data/blog.txt?sig=1"],
         "text_column": "text"}
HUB_DATASET = {"kind": "dataset", "name": "someone/ja-corpus", "config": "web", "split": "train",
               "revision": "d" * 40, "text_column": "text"}
BASE = {"name": "tester/base", "revision": "a" * 40, "fingerprint": "c" * 64, "license": "cc-by-sa-4.0"}


def own_text(preparation, corpus):
    """The record of `preparation`'s counts as prepared from the user's own text."""
    identity = {key: value for key, value in preparation.identity.items() if key not in ("cleaner", "dumps")}
    sources = corpus.get("files") or [corpus["name"]]
    source = (files_record(corpus["files"], corpus["text_column"]) if "files" in corpus else
              dataset_record(corpus["name"], corpus["config"], corpus["split"], corpus["revision"], corpus["text_column"]))
    return dataclasses.replace(preparation, source=source, dump_date=None, sources=sources, identity=identity,
                               dropped={"empty": 3, "duplicate": 2})


def dated(preparation, dump_date):
    """`preparation` as if prepared from the dump of `dump_date`."""
    return dataclasses.replace(preparation, dump_date=dump_date,
                               source=wikipedia_record(dump_date, preparation.sources, CLEANER_VERSION,
                                                       preparation.identity["dumps"]))


def continued(model, corpus=FILES, base=BASE):
    """The tests' model as if train.py --model_name_or_path had continued `base` on the user's text."""
    model.info.preparation = own_text(model.info.preparation, corpus) if corpus else model.info.preparation
    model.info.base_model, model.info.tokenizer_report = base, None
    return model


@pytest.mark.slow
def test_the_model_card_reports_the_runs_own_files_and_refuses_results_that_are_not_numbers(tiny_model):
    model = ModelFolder.check(tiny_model)
    assert model.parameter_count() == sum(p.numel() for p in __import__("transformers").AutoModelForCausalLM
                                          .from_pretrained(tiny_model).parameters())
    card = model_card(model, Links("tester/m"), example=Example("近年の機械学習は…", 50), seed=1)
    check_card_metadata(card)
    metrics = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert metrics[("test", "loss")] == round(model.results["test_loss"], 4)
    assert f"{model.info.tokenizer_report.tokens_per_character:.3f} tokens per character" in card.text
    summary = card.text.split("\n## ")[0]  # a Japanese summary above the first section
    assert (f"**日本語の概要**: 日本語の GPT-2 言語モデル（{model.parameter_count():,} パラメータ）です。日本語版ウィキペディア"
            f"（{model.info.dump_date} のダンプ）で、語彙 8,000 の SentencePiece トークナイザーとともにゼロから学習しました。"
            f"\nライセンスは CC BY-SA 3.0 です。") in summary
    model.results["test_loss"] = float("nan")
    with pytest.raises(UserError, match=r"not all finite numbers \(test loss nan\)"):
        check_card_metadata(model_card(model, Links("tester/m"), example=Example("x", 50), seed=1))


def test_the_dataset_card_gives_the_counts_license_and_source(tmp_path):
    card = dataset_card(Links("tester/m", dataset_repo_id="tester/jawiki"), PREPARATION, eos_id=3)
    data = card.data.to_dict()
    assert data["license"] == "cc-by-sa-3.0" and data["size_categories"] == ["n<1K"]
    assert "| test | 8 | 40,000 |" in card.text and "Of 262 pages read" in card.text
    assert "a" * 64 in card.text and 'load_dataset("tester/jawiki", split="test")' in card.text
    card.save(tmp_path / "README.md")
    assert DatasetCard.load(tmp_path / "README.md").data.to_dict() == data


def test_the_space_runs_the_model_it_names(tmp_path):
    stage_space_files(tmp_path, "tester/m", "tester/m-demo", wikipedia_license("20220720"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "app.py", "requirements.txt"]
    data = SpaceCard.load(tmp_path / "README.md").data
    assert data.models == ["tester/m"] and data.sdk == "gradio" and data.app_file == "app.py"


def test_the_curve_is_a_picture_of_both_losses(tmp_path):
    plot_curve({"log_history": [{"step": 1, "loss": 9.0}, {"step": 2, "loss": 8.0}, {"step": 2, "eval_loss": 8.5}]},
               tmp_path / "curve.png", tokens_per_step=524_288, vocab_size=32000)
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sizes_and_times_read_as_the_hub_and_people_read_them():
    assert [size_category(n) for n in (999, 1000, 1_500_000, 10**9)] == ["n<1K", "1K<n<10K", "1M<n<10M", "100M<n<1B"]
    assert describe_time(65) == "1 min 5 s" and describe_time(3 * 3600 + 120) == "3 h 2 min"


@pytest.mark.slow
def test_the_example_asks_for_no_more_tokens_than_the_context_holds_and_the_card_says_so(tiny_model):
    example = example_output(tiny_model, seed=0, wanted=500)  # the tiny model's context is 128 tokens
    assert 100 < example.new_tokens < 128 and example.text.startswith("近年の機械学習は")
    model = ModelFolder.check(tiny_model)
    assert "new tokens, not 50" not in model_card(model, Links("tester/m"), example, seed=0).text
    card = model_card(model, Links("tester/m"), Example("近年の機械学習は…", 20), seed=0)  # a 25-token context's
    assert "20 new tokens, not 50: the model's context of 128 tokens" in " ".join(card.text.split())
    assert "max_new_tokens=20," in card.text


@pytest.mark.slow
@pytest.mark.parametrize("dump_date, license", [("20230620", "cc-by-sa-4.0"), ("20230601", "cc-by-sa-3.0"),
                                                (None, "cc-by-sa-4.0")])
def test_the_license_of_every_card_follows_the_dumps_date(tiny_model, tmp_path, dump_date, license):
    model = ModelFolder.check(tiny_model)
    model.info.preparation = dated(model.info.preparation, dump_date)
    card = model_card(model, Links("tester/m"), Example("近年の機械学習は…", 50), seed=0)
    assert card.data.license == license and f"CC BY-SA {license[-3:]}" in card.text
    dataset = dataset_card(Links("tester/m", dataset_repo_id="tester/jawiki"),
                           dated(PREPARATION, dump_date), eos_id=3)
    assert dataset.data.license == license and f"CC BY-SA {license[-3:]}" in dataset.text
    stage_space_files(tmp_path, "tester/m", "tester/m-demo", wikipedia_license(dump_date))
    assert SpaceCard.load(tmp_path / "README.md").data.license == license


def test_the_space_takes_cpu_wheels_on_cpu_hardware_and_zerogpus_torch_on_zerogpu(tmp_path):
    for hardware, cpu_wheels in ((None, True), ("cpu-basic", True), ("zero-a10g", False), ("t4-small", False)):
        stage_space_files(tmp_path, "tester/m", "tester/m-demo", wikipedia_license("20220720"), hardware)
        requirements = (tmp_path / "requirements.txt").read_text()
        assert ("download.pytorch.org/whl/cpu" in requirements) == cpu_wheels, hardware
        assert "torch==" in requirements and "sentencepiece" in requirements


def test_the_dataset_card_of_the_users_text_describes_it_without_wikipedia(tmp_path):
    for corpus, source in ((FILES, "the text files `novels.jsonl`, `blog.txt`"),
                           (HUB_DATASET, "[someone/ja-corpus](https://huggingface.co/datasets/someone/ja-corpus)")):
        links = Links("tester/m", dataset_repo_id="tester/ds", license=hub_license("apache-2.0"))
        card = dataset_card(links, own_text(PREPARATION, corpus), eos_id=3)
        data = card.data.to_dict()
        assert data["license"] == "apache-2.0" and data["tags"] == ["japanese"]
        text = " ".join(card.text.split())
        assert source in text and "| test | 8 | 40,000 |" in text and "Of 262 documents read, 198 documents were kept" in text
        assert "3 empty documents, 2 documents given more than once" in text and "the license `apache-2.0`" in text
        assert "Wikipedia" not in card.text and "wikipedia" not in str(data) and "/home/" not in card.text
        card.save(tmp_path / "README.md")
        assert DatasetCard.load(tmp_path / "README.md").data.to_dict() == data
    with pytest.raises(UserError, match="--license is required"):
        dataset_card(Links("tester/m", dataset_repo_id="tester/ds"), own_text(PREPARATION, FILES), eos_id=3)


def test_the_space_of_a_model_of_other_text_does_not_say_wikipedia(tmp_path):
    stage_space_files(tmp_path, "tester/m", "tester/m-demo", hub_license("mit"))
    data = SpaceCard.load(tmp_path / "README.md").data
    assert data.license == "mit" and "Wikipedia" not in data.short_description


def test_a_tokenizer_that_appends_eos_is_told_apart(excerpt_tokenizer, tmp_path):
    import json

    from gpt2ja.cards import adds_special_tokens
    from gpt2ja.tokenizer_folder import load_tokenizer
    shutil.copy(excerpt_tokenizer / "spiece.model", tmp_path / "spiece.model")  # as rinna's load: T5Tokenizer
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "T5Tokenizer", "extra_ids": 0, "eos_token": "</s>", "unk_token": "<unk>"}))
    assert adds_special_tokens(load_tokenizer(tmp_path))  # the card's snippet then passes add_special_tokens=False
    assert not adds_special_tokens(load_tokenizer(excerpt_tokenizer))


@pytest.mark.slow
def test_a_continued_model_names_its_base_its_license_and_the_users_text(tiny_model):
    model = continued(ModelFolder.check(tiny_model))
    license = model_license("cc-by-sa-4.0", model.info)
    card = model_card(model, Links("tester/m", license=license), Example("近年の機械学習は…", 50), seed=0)
    check_card_metadata(card)
    data = card.data.to_dict()
    assert data["base_model"] == "tester/base" and data["base_model_relation"] == "finetune"
    assert data["license"] == "cc-by-sa-4.0" and "datasets" not in data  # files: no Hub dataset to name
    assert {(r.dataset_type, r.dataset_name) for r in card.data.eval_results} == {
        ("novels.jsonl-blog.txt", "novels.jsonl, blog.txt, gpt2-small-ja splits")}
    text = " ".join(card.text.split())
    assert "continued from [tester/base](https://huggingface.co/tester/base) at revision" in text
    assert f"(https://huggingface.co/tester/base/tree/{'a' * 40})" in text
    assert "The text files `novels.jsonl`, `blog.txt`, their `text` field." in text
    assert ("Of 262 documents read, 198 documents were kept. Dropped: 3 empty documents, 2 documents given more "
            "than once.") in text
    assert "The base model's tokenizer, unchanged, 8,000 pieces" in text
    assert "whose license is [CC BY-SA 4.0](https://creativecommons.org/licenses/by-sa/4.0/) (`cc-by-sa-4.0`)" in text
    assert "This model is released under [CC BY-SA 4.0]" in text
    assert "[tester/base](https://huggingface.co/tester/base)" in text.split("を元に、独自のテキストで追加学習しました。")[0]
    assert "ライセンスは CC BY-SA 4.0 です。" in text and "ウィキペディア" not in text
    assert "Wikipedia" not in card.text and "wikipedia" not in str(data)  # nor a dump date, nor cleaning
    assert "dump" not in card.text and "headings" not in card.text and "/home/" not in card.text
    assert "sig=1" not in card.text


@pytest.mark.slow
def test_a_model_continued_from_a_folder_on_a_hub_dataset_names_both_without_local_paths(tiny_model):
    base = {"name": "/home/me/runs/reference/model", "revision": None, "fingerprint": "c" * 64, "license": None}
    model = continued(ModelFolder.check(tiny_model), HUB_DATASET, base)
    links = Links("tester/m", license=hub_license("mit"))
    card = model_card(model, links, Example("近年の機械学習は…", 50), seed=0)
    check_card_metadata(card)
    data = card.data.to_dict()
    assert "base_model" not in data and "base_model_relation" not in data  # the Hub takes repo ids only
    assert data["datasets"] == ["someone/ja-corpus"] and data["license"] == "mit"
    assert {(r.dataset_type, r.dataset_config, r.dataset_revision) for r in card.data.eval_results} == {
        ("someone/ja-corpus", "web", "d" * 40)}
    text = " ".join(card.text.split())
    assert f"continued from the model folder `reference/model` (weights SHA-256 `{'c' * 64}`)" in text
    assert "/home/" not in card.text
    assert ("The `train` split of the Hub dataset [someone/ja-corpus](https://huggingface.co/datasets/someone/"
            f"ja-corpus) (config `web`) at revision `{'d' * 40}`, its `text` column.") in text
    assert "whose license is unknown" in text and "check the base model's terms" in text
    assert "released under the license `mit`" in text and "Wikipedia" not in card.text
    with_dataset = model_card(model, Links("tester/m", dataset_repo_id="tester/ds", license=hub_license("mit")),
                              Example("近年の機械学習は…", 50), seed=0)
    assert {(r.dataset_type, r.dataset_name) for r in with_dataset.data.eval_results} == {
        ("tester/ds", "someone/ja-corpus")}
    assert with_dataset.data.to_dict()["datasets"] == ["tester/ds"]
    model.info.base_model = {**base, "name": "runs/model"}  # a folder given as a relative path, like a repo id
    assert "base_model" not in model_card(model, links, Example("近年の機械学習は…", 50), seed=0).data.to_dict()


@pytest.mark.slow
def test_a_model_continued_on_a_dump_keeps_the_dumps_wording_and_gives_both_licenses(tiny_model):
    model = continued(ModelFolder.check(tiny_model), corpus=None, base={**BASE, "license": "mit"})
    card = model_card(model, Links("tester/m"), Example("近年の機械学習は…", 50), seed=0)
    assert card.data.license == "cc-by-sa-3.0" and card.data.to_dict()["datasets"] == ["wikimedia/wikipedia"]
    text = " ".join(card.text.split())
    assert "on Japanese Wikipedia (the dump of 20220720), with the base model's tokenizer" in text
    assert "whose license is `mit`" in text
    assert "The training text is that of Japanese Wikipedia (the dump of 20220720), under [CC BY-SA 3.0]" in text
