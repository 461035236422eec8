"""gpt2ja.splits: split assignment, reading a prepared split, preparation.json."""

import os
import subprocess
import sys

import datasets
import pytest

from gpt2ja.errors import UserError
from gpt2ja.sources.base import FEATURES
from gpt2ja.sources.hub_dataset import dataset_record
from gpt2ja.sources.wikipedia import wikipedia_record
from gpt2ja.splits import Preparation, count_characters, load_split, split_of



def test_split_is_a_stable_hash_of_the_page_id():
    ids = [str(i) for i in range(1, 2001)]
    here = [split_of(i) for i in ids]
    # another interpreter with another string-hash seed must agree (no use of hash())
    code = ("from gpt2ja.splits import split_of; "
            "print(','.join(split_of(str(i)) for i in range(1, 2001)))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout.strip().split(",")
    assert here == other


def test_split_shares_follow_the_percentages():
    ids = [str(i) for i in range(200_000)]
    names = [split_of(i, validation_percent=1, test_percent=2) for i in ids]
    assert abs(names.count("validation") / len(ids) - 0.01) < 0.001
    assert abs(names.count("test") / len(ids) - 0.02) < 0.001


def saved(tmp_path, texts_by_split):
    def split(texts):
        rows = texts or ["placeholder"]  # an empty split is made as prepare_data makes one: by a filter
        dataset = datasets.Dataset.from_dict({"id": [str(i) for i in range(len(rows))], "title": ["t"] * len(rows),
                                              "text": rows}, features=FEATURES)
        return dataset if texts else dataset.filter(lambda row: False)

    data = datasets.DatasetDict({name: split(texts) for name, texts in texts_by_split.items()})
    data.save_to_disk(str(tmp_path / "data"))
    return tmp_path / "data"


def test_load_split_reads_and_refuses_what_is_not_there(tmp_path):
    folder = saved(tmp_path, {"train": ["日本語の文。", "二つ目"], "validation": [], "test": ["試験"]})
    assert list(load_split(folder, "train")["text"]) == ["日本語の文。", "二つ目"]
    assert len(load_split(folder, "validation", allow_empty=True)) == 0
    with pytest.raises(UserError, match="validation split of .* is empty"):
        load_split(folder, "validation")
    with pytest.raises(UserError, match="holds no prepared data; run prepare_data.py"):
        load_split(tmp_path / "nothing", "train")


def test_characters_are_counted_batch_by_batch(tmp_path):
    texts = ["日本語の文。" * (i % 7) for i in range(25_000)]  # more than one Arrow batch
    folder = saved(tmp_path, {"train": texts})
    assert count_characters(load_split(folder, "train")) == sum(len(t) for t in texts)


def test_preparation_record_round_trips(tmp_path):
    record = Preparation(identity={"max_articles": None}, sources=["a.xml.bz2"], dump_date="20210301",
                         pages_read=10, dropped={"redirect": 2}, articles=8, splits={"train": 8},
                         characters={"train": 100}, fingerprint="0" * 64,
                         source=wikipedia_record("20210301", ["a.xml.bz2"], "3"))
    record.save(tmp_path)
    assert Preparation.load(tmp_path) == record
    assert Preparation.load(tmp_path / "absent") is None
    (tmp_path / "preparation.json").write_text('{"settings": {}, "articles": 3}')  # an older shape
    assert Preparation.load(tmp_path) is None


def test_a_record_of_the_users_own_text_round_trips(tmp_path):
    corpus = {"kind": "dataset", "name": "tester/corpus", "config": None, "split": "train", "revision": "c" * 40,
              "text_column": "text"}
    record = Preparation(identity={"dataset": corpus}, sources=["tester/corpus"], dump_date=None, pages_read=3,
                         dropped={"empty": 1, "duplicate": 0}, articles=2, splits={"train": 2},
                         characters={"train": 10}, fingerprint="0" * 64,
                         source=dataset_record(**{k: v for k, v in corpus.items() if k != "kind"}))
    record.save(tmp_path)
    assert Preparation.load(tmp_path) == record and record.source.title == "tester/corpus"
