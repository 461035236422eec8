"""gpt2ja.sources: each source read into the same documents (the whole command: test_prepare_data.py)."""

import gzip
import hashlib
import json
from pathlib import Path

import datasets
import pytest

from gpt2ja.errors import UserError
from gpt2ja.cli import parse_args
from gpt2ja.sources.base import FEATURES, USER_FIELDS, Source, document, drop_repeats, read_documents
from gpt2ja.sources.files import TextFiles, fetch_files, file_rows, is_json_lines, open_text, plain_text_documents
from gpt2ja.sources.record import SourceRecord
from prepare_data import check_source_flags


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def test_plain_text_is_documents_between_blank_lines_stripped_whatever_the_line_endings(tmp_path):
    (tmp_path / "a.txt").write_bytes("\ufeff  一つ目。\r\n二行目。 \r\n\r\n \t\r\n\r\n二つ目。\r\n\r\n\n三つ目。".encode())
    with open_text(tmp_path / "a.txt") as lines:
        assert list(plain_text_documents(lines)) == ["一つ目。\n二行目。", "二つ目。", "三つ目。"]


@pytest.mark.parametrize("source, json_lines", [
    ("a.jsonl", True), ("a.json", True), ("dir/A.JSONL.gz", True), ("a.json.gz", True),
    ("https://example.org/data/a.jsonl?download=1", True), ("a.txt", False), ("a.txt.gz", False),
    ("notes", False), ("https://example.org/a.jsonl/raw", False),
])
def test_json_lines_or_plain_text_by_the_name_as_given(source, json_lines):
    assert is_json_lines(source) is json_lines


def test_a_document_takes_its_id_and_title_or_the_hash_of_its_text():
    assert document({"text": " 本文。\r\n次の行。 ", "id": 7, "title": "題"}, "text", "x") == {
        "id": "7", "title": "題", "text": "本文。\n次の行。"}
    assert document({"body": "本文。", "id": None}, "body", "x") == {"id": sha("本文。"), "title": "", "text": "本文。"}
    assert document({"text": None}, "text", "x")["text"] == ""  # a missing value: an empty document


@pytest.mark.parametrize("line, message", [
    ('{"body": "本文"}', r"a.jsonl line 2 has no 'text' field \(its fields: body\); pass --text_column"),
    ('{"text": 12}', "a.jsonl line 2: the 'text' field holds a number, not text; pass --text_column"),
    ('{"text": ["a", "b"]}', "a.jsonl line 2: the 'text' field holds a list, not text"),
    ('{"text": "cut', r"a.jsonl line 2 is not valid JSON \(Unterminated string starting at column 10\); a JSON Lines"),
    ('["text"]', "a.jsonl line 2 is a JSON list, not an object"),
])
def test_a_bad_json_lines_record_is_one_sentence_naming_the_file_and_line(tmp_path, line, message):
    (tmp_path / "a.jsonl").write_text('{"text": "よい行。"}\n' + line + "\n")
    with pytest.raises(UserError, match=message):
        list(file_rows(["a.jsonl"], [tmp_path / "a.jsonl"], "text"))


def test_gzipped_files_read_as_the_plain_ones(tmp_path):
    records = [{"text": "一つ目。"}, {"text": "二つ目。", "id": "b"}]
    plain = "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()
    (tmp_path / "a.jsonl").write_bytes(plain)
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(plain))
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress("一つ目。\n\n二つ目。".encode()))
    expected = list(file_rows(["a.jsonl"], [tmp_path / "a.jsonl"], "text"))
    assert list(file_rows(["a.jsonl.gz"], [tmp_path / "a.jsonl.gz"], "text")) == expected
    assert [r["text"] for r in file_rows(["a.txt.gz"], [tmp_path / "a.txt.gz"], "text")] == ["一つ目。", "二つ目。"]
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(plain)[:-12])
    with pytest.raises(UserError, match="cut.jsonl.gz is not a readable gzip file"):
        list(file_rows(["cut.jsonl.gz"], [tmp_path / "cut.jsonl.gz"], "text"))
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(UserError, match="latin1.txt is not UTF-8 text"):
        list(file_rows(["latin1.txt"], [tmp_path / "latin1.txt"], "text"))


def test_read_drops_and_counts_empty_documents_and_stops_after_max_articles(tmp_path):
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in ["a", " ", "b", "", "c", "d"]))
    corpus = TextFiles([str(tmp_path / "a.jsonl")])
    documents, counts = corpus.read(work_dir=tmp_path / "work")
    assert isinstance(documents, datasets.Dataset) and documents["text"] == ["a", "b", "c", "d"]
    assert counts == {"kept": 4, "empty": 2}
    documents, counts = corpus.read(max_documents=2, work_dir=tmp_path / "work2")
    assert documents["text"] == ["a", "b"] and counts == {"kept": 2, "empty": 1}


@pytest.mark.parametrize("content, found", [("", "no document in it"), ('{"text": ""}\n{"text": "  "}',
                                                                         "2 documents read, all empty")])
def test_a_corpus_without_text_is_one_sentence(tmp_path, content, found):
    (tmp_path / "a.jsonl").write_text(content)
    with pytest.raises(UserError, match=f"a.jsonl holds no document with text \\({found}\\)"):
        read_documents(TextFiles([str(tmp_path / "a.jsonl")]), work_dir=tmp_path / "work")


def test_a_file_is_named_by_its_content(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "notes.txt").write_text("同じ文書。")
    assert (TextFiles([str(tmp_path / "a" / "notes.txt")]).identity
            == TextFiles([str(tmp_path / "b" / "notes.txt")]).identity)
    assert TextFiles([str(tmp_path / "a" / "notes.txt")]).identity["files"] == [
        {"name": "notes.txt", "sha256": hashlib.sha256("同じ文書。".encode()).hexdigest()}]


def test_files_by_url_come_through_the_datasets_download_cache(tmp_path, mirror, monkeypatch):
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", tmp_path / "downloads")
    (tmp_path / "mirror" / "notes.jsonl").write_text('{"text": "遠くの文書。"}\n')
    corpus = TextFiles([f"{mirror}/notes.jsonl"])
    assert corpus.identity["files"][0]["name"] == "notes.jsonl"
    assert corpus.read(work_dir=tmp_path / "work")[0]["text"] == ["遠くの文書。"]
    assert list((tmp_path / "downloads").rglob("*"))
    with pytest.raises(UserError, match=r"Could not download --train_file .*/absent.txt \(.*\); check the URL"):
        fetch_files([f"{mirror}/absent.txt"])
    with pytest.raises(UserError, match="--train_file .*missing.txt does not exist; pass a plain-text or JSON"):
        fetch_files([str(tmp_path / "missing.txt")])


@pytest.mark.parametrize("flags, message", [
    (dict(dump=["d.xml"], train_file=["a.txt"]), "--dump and --train_file name two sources; pass one"),
    (dict(train_file=["a.txt"], dataset_name="u/d"), "--train_file and --dataset_name name two sources"),
    (dict(train_file=["a.txt"], date="20200101"), "--date and --mirror choose a Wikipedia dump; leave them out "
                                                  "with --train_file"),
    (dict(dataset_name="u/d", mirror="https://m"), "leave them out with --dataset_name"),
    (dict(text_column="body"), "--text_column names the field of your own text"),
    (dict(dump=["d.xml"], text_column="body"), "not with a dump"),
    (dict(train_file=["a.txt"], dataset_split="train"), "--dataset_config_name and --dataset_split .* go with "
                                                        "--dataset_name"),
    (dict(dataset_config_name="ja"), "go with --dataset_name"),
    (dict(train_file=["a.txt", "b.txt.gz"], text_column="body"), "plain-text files hold no fields"),
])
def test_one_source_and_only_its_flags(flags, message):
    given = dict(dump=[], train_file=[], dataset_name=None, date=None, mirror=None, text_column=None,
                 dataset_config_name=None, dataset_split=None)
    with pytest.raises(ValueError, match=message):
        check_source_flags(**{**given, **flags})
    check_source_flags(**{**given, "dataset_name": "u/d", "dataset_split": "test", "text_column": "body"})
    check_source_flags(**{**given, "dump": ["d.xml"], "date": "20200101"})


def test_repeats_by_the_sources_rule_a_dumps_first_page_or_the_same_text_once(tmp_path):
    documents = datasets.Dataset.from_dict({"id": ["1", "2", "1", "2"], "title": [""] * 4,
                                            "text": ["a", "b", "c", "b"]}, features=FEATURES)
    first, dropped = drop_repeats(documents, keep_first_of_an_id=True)
    assert first["text"] == ["a", "b"] and dropped == 2
    with pytest.raises(UserError, match="Two different documents have the id '1'"):
        drop_repeats(documents, keep_first_of_an_id=False)
    same, dropped = drop_repeats(documents.select([0, 1, 3]), keep_first_of_an_id=False)
    assert same["text"] == ["a", "b"] and dropped == 1


class Proverbs(Source):
    """A toy source the library has never heard of, defined here: a new kind of source is one new type."""

    def __init__(self, texts):
        self.texts, self.sources = list(texts), ["proverbs"]
        self.identity = {"proverbs": hashlib.sha256("\n".join(self.texts).encode()).hexdigest()}

    def rows(self):
        for number, text in enumerate(self.texts):
            yield {"id": f"proverb-{number}", "title": "", "text": text}

    def record(self):
        return SourceRecord(title="Toy proverbs", named="a toy collection of proverbs", named_ja="ことわざ集",
                            described="A toy collection of proverbs", unit="documents", unit_one="a document",
                            read_as="proverbs", dropped_as={"empty": "empty proverbs"}, made_from="the toy's list",
                            fields=USER_FIELDS, license="cc0-1.0", attribution="the proverbs are anonymous",
                            dataset_name="Toy proverbs",
                            dataset_ref={"dataset_type": "toy-proverbs", "dataset_name": "Toy proverbs"})


PROVERBS = ["猿も木から落ちる。", "急がば回れ。", "石の上にも三年。", "七転び八起き。", "花より団子。", "塵も積もれば山となる。"]


@pytest.mark.slow
def test_a_new_kind_of_source_goes_through_prepare_train_and_a_dry_run_push_untouched(excerpt_tokenizer, tmp_path):
    import prepare_data
    import push_to_hub
    import train
    texts = [f"{n}番目の文書です。{PROVERBS[n % 6]}{PROVERBS[(n * 5) % 6]}そう言われています。" * 3 for n in range(80)]
    (args,) = parse_args([prepare_data.PrepareArguments], ["--output_dir", str(tmp_path / "run" / "data"),
                                                           "--validation_percent", "20", "--test_percent", "20"])
    record = prepare_data.prepare(args, source=Proverbs(texts))
    assert record.source.title == "Toy proverbs" and record.articles == 80 and record.pages_read == 80
    assert prepare_data.prepare(args, source=Proverbs(texts)) == record  # reused: its identity is its own
    model = train.main(["configs/tiny.yaml", "--data_dir", str(tmp_path / "run" / "data"), "--tokenizer_dir",
                        str(excerpt_tokenizer), "--output_dir", str(tmp_path / "run"), "--n_positions", "32",
                        "--n_embd", "16", "--n_head", "2", "--n_layer", "1", "--max_steps", "2", "--eval_steps", "1",
                        "--save_steps", "2", "--out_of_domain_text", ""])
    stage, _ = push_to_hub.main(["--model_dir", str(model), "--dry_run", "--stage_dir", str(tmp_path / "hub")])
    from huggingface_hub import ModelCard
    card = ModelCard.load(Path(stage) / "README.md")
    text = " ".join(card.text.split())
    assert "trained from scratch on a toy collection of proverbs" in text and card.data.license == "cc0-1.0"
    assert "A toy collection of proverbs. Of 80 proverbs read, 80 documents were kept." in text
    assert {result.dataset_type for result in card.data.eval_results} == {"toy-proverbs"}


@pytest.mark.parametrize("line, reason", [
    ('{"text": "a", "n": ' + "9" * 5000 + "}", r"line 2 cannot be read as JSON \(Exceeds the limit"),
    ('{"text": ' + "[" * 100_000 + "]" * 100_000 + "}", r"line 2 cannot be read as JSON \(nested too deeply\)"),
])
def test_json_that_python_cannot_hold_is_one_sentence_naming_the_file_and_line(tmp_path, line, reason):
    (tmp_path / "a.jsonl").write_text('{"text": "一つ目。"}\n' + line + "\n")
    with pytest.raises(UserError, match=f"a.jsonl {reason}"):
        read_documents(TextFiles([str(tmp_path / "a.jsonl")]), work_dir=tmp_path / "work")


class Broken(Source):
    """A source whose reader fails in a way nobody foresaw (a test double of a bug)."""
    sources, identity = ["broken"], {"broken": 1}

    def rows(self):
        yield {"id": "1", "title": "", "text": "ok"}
        raise ZeroDivisionError("the cause")


def test_an_unforeseen_error_of_a_reader_keeps_its_cause(tmp_path):
    with pytest.raises(Exception) as raised:
        read_documents(Broken(), work_dir=tmp_path / "work")
    chain, error = [], raised.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(e, ZeroDivisionError) and str(e) == "the cause" for e in chain)


def test_a_file_by_url_that_changed_on_a_server_without_etags_is_read_anew(tmp_path, mirror, monkeypatch):
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", tmp_path / "downloads")
    served = tmp_path / "mirror" / "notes.txt"  # http.server sends Last-Modified and no ETag
    served.write_text("一つ目。\n\n二つ目。\n\n三つ目。\n")
    before = TextFiles([f"{mirror}/notes.txt"])
    served.write_text("一つ目。\n\n二つ目。\n\n三つ目。\n\n四つ目。\n")
    after = TextFiles([f"{mirror}/notes.txt"])
    assert after.identity != before.identity
    assert len(read_documents(after, work_dir=tmp_path / "work")[0]) == 4


def test_a_plain_text_corpus_is_described_without_a_field():
    from gpt2ja.sources.files import files_record
    assert files_record(["/home/me/notes.txt"], "text").described == "The text files `notes.txt`"
    assert files_record(["a.txt", "b.jsonl"], "body").described == "The text files `a.txt`, `b.jsonl`, their `body` field"
