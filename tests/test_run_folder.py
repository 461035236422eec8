"""gpt2ja.run_folder: the run folder's layout, checkpoints, and the records of a training run."""

from pathlib import Path

from gpt2ja.rerun import read_json
from gpt2ja.run_folder import (RunFolder, RunIdentity, RunInfo, last_complete_checkpoint,
                               remove_incomplete_checkpoints)
from gpt2ja.sources.wikipedia import wikipedia_record
from gpt2ja.splits import Preparation
from gpt2ja.tokenizer_folder import TokenizerReport


def test_every_step_has_its_folder_under_the_run():
    run = RunFolder("runs/x")
    assert run.root == Path("runs/x")
    assert [p.name for p in (run.data, run.tokenizer, run.token_cache, run.checkpoints, run.logs, run.model,
                             run.hub)] == ["data", "tokenizer", "token_cache", "checkpoints", "logs", "model", "hub"]
    assert all(p.parent == run.root for p in (run.data, run.model, run.hub))


def test_the_last_complete_checkpoint_is_chosen_and_cut_ones_removed(tmp_path):
    assert last_complete_checkpoint(tmp_path / "none") is None
    for step, complete in ((5, True), (10, True), (12, False), (9, True)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")  # by number, not by name
    remove_incomplete_checkpoints(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10", "checkpoint-5", "checkpoint-9"]


def test_folders_that_only_look_like_checkpoints_are_left_alone(tmp_path):
    (tmp_path / "checkpoint-best").mkdir()
    (tmp_path / "checkpoint-best" / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path) is None


def test_run_info_round_trips_with_its_data_and_tokenizer_records(tmp_path):
    preparation = Preparation(identity={"max_articles": None}, sources=["/d/jawiki-20210301-pages-articles.xml.bz2"],
                              dump_date="20210301", pages_read=3, dropped={}, articles=3, splits={"train": 3},
                              characters={"train": 30}, fingerprint="f",
                              source=wikipedia_record("20210301", ["jawiki-20210301-pages-articles.xml.bz2"], "3"))
    report = TokenizerReport(identity={"vocab_size": 8}, sentences_trained_on=5, training_seconds=0.1,
                             peak_memory_mib=1)
    info = RunInfo(identity={"data": "f"}, preparation=preparation, tokenizer_report=report,
                   tokens={"train": {"articles": 3, "tokens": 9, "characters": 30}},
                   recipe={"n_positions": 1024}, hardware={"processes": 1, "devices": ["CPU"]}, versions={"torch": "x"})
    info.save(tmp_path)
    loaded = RunInfo.load(tmp_path)
    assert loaded == info and loaded.tokenizer_report.tokens_per_character is None
    assert loaded.dump_date == "20210301" and loaded.sources == preparation.sources
    no_data = RunInfo(identity={}, preparation=None, tokens={}, tokenizer_report=None, recipe={}, hardware={},
                      versions={})
    no_data.save(tmp_path)
    assert RunInfo.load(tmp_path).dump_date is None and RunInfo.load(tmp_path).sources == []


def test_records_of_the_previous_version_are_read(tmp_path):
    # run_info.json as the previous version wrote it: "data" and "tokenizer", each record with "settings"
    info = RunInfo(identity={"data": "f"}, preparation=None, tokens={}, tokenizer_report=None, recipe={},
                   hardware={}, versions={})
    info.save(tmp_path)
    fields = read_json(tmp_path / "run_info.json")
    fields["data"] = {"settings": {"cleaner": 3}, "sources": [], "dump_date": None, "pages_read": 1, "dropped": {},
                      "articles": 1, "splits": {}, "characters": {}, "fingerprint": "f"}
    fields["tokenizer"] = {"settings": {"seed": 42}, "sentences_trained_on": 5, "training_seconds": 0.1,
                           "peak_memory_mib": 1}
    del fields["preparation"], fields["tokenizer_report"]
    (tmp_path / "run_info.json").write_text(__import__("json").dumps(fields))
    loaded = RunInfo.load(tmp_path)
    assert loaded.preparation.identity == {"cleaner": 3} and loaded.tokenizer_report.identity == {"seed": 42}
    (tmp_path / "run_identity.json").write_text('{"data": "f", "recipe": {"seed": 1}}')  # the bare identity
    assert RunIdentity.load(tmp_path).identity == {"data": "f", "recipe": {"seed": 1}}
    RunIdentity({"data": "g"}).save(tmp_path)
    assert RunIdentity.load(tmp_path).identity == {"data": "g"}


def test_a_run_info_whose_nested_record_has_another_shape_reads_as_none(tmp_path):
    info = RunInfo(identity={"data": "f"}, preparation=None, tokens={}, tokenizer_report=None, recipe={},
                   hardware={}, versions={})
    info.save(tmp_path)
    fields = read_json(tmp_path / "run_info.json")
    for preparation in ({"identity": {}, "unknown_field": 1}, "a string", [1, 2]):
        fields["preparation"] = preparation
        (tmp_path / "run_info.json").write_text(__import__("json").dumps(fields))
        assert RunInfo.load(tmp_path) is None
