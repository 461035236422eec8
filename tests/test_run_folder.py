"""gpt2ja.run_folder: the run folder's layout, checkpoints, run_info.json."""

import errno
import multiprocessing
from pathlib import Path

import pytest

from gpt2ja.cli import UserError
from gpt2ja.run_folder import (RunFolder, RunInfo, holds_own_output, last_complete_checkpoint, move_into_place,
                               remove_incomplete_checkpoints, space_errors, writing)
from gpt2ja.splits import Preparation


def test_every_step_has_its_folder_under_the_run():
    run = RunFolder("runs/x")
    assert run.root == Path("runs/x")
    assert [p.name for p in (run.data, run.tokenizer, run.checkpoints, run.logs, run.model, run.hub)] == [
        "data", "tokenizer", "checkpoints", "logs", "model", "hub"]
    assert all(p.parent == run.root for p in (run.data, run.model, run.hub))


def test_move_into_place_replaces_the_steps_own_output_whole(tmp_path):
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "record.json").write_text("old")
    (tmp_path / "target" / "old").write_text("old")
    (tmp_path / "finished").mkdir()
    (tmp_path / "finished" / "record.json").write_text("new")
    move_into_place(tmp_path / "finished", tmp_path / "target", "record.json")
    assert [p.name for p in (tmp_path / "target").iterdir()] == ["record.json"] and not (tmp_path / "finished").exists()


@pytest.mark.parametrize("what", ["a user's files", "another step's output", "a run folder", "a file"])
def test_a_folder_holding_anything_else_is_never_replaced(tmp_path, what):
    target = tmp_path / "target"
    if what == "a file":
        target.write_text("notes")
    else:
        target.mkdir()
        {"a user's files": target / "notes.txt", "another step's output": target / "other_record.json",
         "a run folder": target / "data"}[what].write_text("keep me")
    (tmp_path / "finished").mkdir()
    with pytest.raises(UserError, match="--output_dir .*target"):
        move_into_place(tmp_path / "finished", target, "record.json")
    assert target.exists() and (tmp_path / "finished").exists()


def test_an_absent_or_empty_folder_is_free_and_a_recorded_one_is_the_steps_own(tmp_path):
    assert holds_own_output(tmp_path / "absent", "record.json") is False
    (tmp_path / "empty").mkdir()
    assert holds_own_output(tmp_path / "empty", "record.json") is False
    (tmp_path / "empty" / "record.json").write_text("{}")
    assert holds_own_output(tmp_path / "empty", "record.json") is True


def hold_the_lock(target, ready, release):
    with writing(target):
        ready.set()
        release.wait(30)


def test_a_second_writer_is_refused_and_what_a_killed_one_left_is_removed(tmp_path):
    target = tmp_path / "out"
    context = multiprocessing.get_context("fork")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=hold_the_lock, args=(target, ready, release))
    holder.start()
    assert ready.wait(30)
    with pytest.raises(UserError, match="Another run is writing .*out"):
        with writing(target):
            pass
    holder.kill()  # kill -9 while holding the lock: the kernel drops it, the scratch folder stays
    holder.join()
    assert (tmp_path / ".out.partial").is_dir()
    with writing(target) as scratch:
        assert scratch == tmp_path / ".out.partial" and not any(scratch.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no scratch folder, no lock file left


def test_out_of_space_is_one_sentence_naming_the_folder(tmp_path):
    with pytest.raises(UserError, match=r"ran out of space while writing .*out: it needs about 2 MiB, [\d,]+ MiB"):
        with space_errors(tmp_path / "out", needed_bytes=2 * 2**20):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(PermissionError):
        with space_errors(tmp_path / "out"):
            raise PermissionError(errno.EACCES, "denied")


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
    data = Preparation(settings={"max_articles": None}, sources=["/d/jawiki-20210301-pages-articles-multistream.xml.bz2"],
                       dump_date="20210301", pages_read=3, dropped={}, articles=3, splits={"train": 3},
                       characters={"train": 30}, fingerprint="f")
    info = RunInfo(data=data, tokens={"train": {"articles": 3, "tokens": 9, "characters": 30}}, tokenizer=None,
                   recipe={"n_positions": 1024}, hardware={"processes": 1, "devices": ["CPU"]},
                   versions={"torch": "x"}, identity={"data": "f"})
    info.save(tmp_path)
    loaded = RunInfo.load(tmp_path)
    assert loaded == info
    assert loaded.dump_date == "20210301" and loaded.sources == data.sources
    no_data = RunInfo(data=None, tokens={}, tokenizer=None, recipe={}, hardware={}, versions={}, identity={})
    no_data.save(tmp_path)
    assert RunInfo.load(tmp_path).dump_date is None and RunInfo.load(tmp_path).sources == []


def test_a_run_stopped_while_replacing_its_output_loses_nothing(tmp_path):
    # the state a kill between the two renames of move_into_place leaves: old output aside, new one in scratch
    (tmp_path / ".out.old").mkdir()
    (tmp_path / ".out.old" / "record.json").write_text("old")
    (tmp_path / ".out.partial").mkdir()
    with writing(tmp_path / "out"):
        assert (tmp_path / "out" / "record.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_symlinked_output_folder_is_replaced_where_it_points(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "elsewhere")
    with writing(tmp_path / "out") as scratch:
        (scratch / "record.json").write_text("new")
        move_into_place(scratch, tmp_path / "out", "record.json")
    assert (tmp_path / "elsewhere" / "record.json").read_text() == "new"


def test_folders_that_only_look_like_checkpoints_are_left_alone(tmp_path):
    (tmp_path / "checkpoint-best").mkdir()
    (tmp_path / "checkpoint-best" / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path) is None
