"""gpt2ja.run_folder: the run folder's layout, checkpoints, run_info.json."""

from pathlib import Path

from gpt2ja.run_folder import (RunFolder, RunInfo, last_complete_checkpoint, move_into_place,
                               remove_incomplete_checkpoints)
from gpt2ja.splits import Preparation


def test_every_step_has_its_folder_under_the_run():
    run = RunFolder("runs/x")
    assert run.root == Path("runs/x")
    assert [p.name for p in (run.data, run.tokenizer, run.checkpoints, run.logs, run.model, run.hub)] == [
        "data", "tokenizer", "checkpoints", "logs", "model", "hub"]
    assert all(p.parent == run.root for p in (run.data, run.model, run.hub))


def test_move_into_place_replaces_the_target_whole(tmp_path):
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "old").write_text("old")
    (tmp_path / "finished").mkdir()
    (tmp_path / "finished" / "new").write_text("new")
    move_into_place(tmp_path / "finished", tmp_path / "target")
    assert [p.name for p in (tmp_path / "target").iterdir()] == ["new"] and not (tmp_path / "finished").exists()


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


def test_run_info_round_trips_with_its_data_record(tmp_path):
    data = Preparation(settings={"sources": ["/d/jawiki-20210301-pages-articles-multistream.xml.bz2"]},
                       dump_date="20210301", pages_read=3, dropped={}, articles=3, splits={"train": 3},
                       characters={"train": 30})
    info = RunInfo(data=data, tokens={"train": {"articles": 3, "tokens": 9, "characters": 30}}, tokenizer=None,
                   recipe={"n_positions": 1024}, hardware={"processes": 1, "devices": ["CPU"]},
                   versions={"torch": "x"})
    info.save(tmp_path)
    loaded = RunInfo.load(tmp_path)
    assert loaded == info
    assert loaded.dump_date == "20210301" and loaded.sources == data.sources
    no_data = RunInfo(data=None, tokens={}, tokenizer=None, recipe={}, hardware={}, versions={})
    no_data.save(tmp_path)
    assert RunInfo.load(tmp_path).dump_date is None and RunInfo.load(tmp_path).sources == []
