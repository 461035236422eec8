"""gpt2ja.rerun: records, reuse-or-refuse, the one-writer lock and building an output folder in place."""

import errno
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from gpt2ja.errors import UserError
from processes import alive
from gpt2ja.rerun import (Record, building, check_output_folder, differences, disk_space_errors, file_fingerprint,
                          move_into_place, reuse_or_refuse)


@dataclass
class Made(Record):
    """A step's record, as every step defines one."""
    FILE = "made.json"
    OTHER = "things made otherwise"
    ENTRIES = frozenset({FILE, "thing.txt"})
    count: int
    note: Optional[str] = None


def made(folder, identity, count=1):
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / "thing.txt").write_text("a thing")
    Made(identity=identity, count=count).save(folder)


def test_a_record_round_trips_and_reads_its_earlier_shape(tmp_path):
    record = Made(identity={"size": 3}, count=2)
    record.save(tmp_path)
    assert Made.load(tmp_path) == record
    assert Made.load(tmp_path / "absent") is None
    (tmp_path / "made.json").write_text('{"settings": {"size": 3}, "count": 2}')  # what earlier versions wrote
    assert Made.load(tmp_path) == record
    for broken in ('{"identity": {}}', '{"identity": {}, "count": 1, "unknown": 0}', "[1, 2]", "{not json",
                   '{"identity": "a string", "count": 1}'):
        (tmp_path / "made.json").write_text(broken)
        assert Made.load(tmp_path) is None, broken


def test_differences_name_what_changed_and_only_that():
    recorded = {"data": "a" * 64, "recipe": {"learning_rate": 0.001, "seed": 1}, "dumps": [{"name": "x"}]}
    current = {"data": "b" * 64, "recipe": {"learning_rate": 0.0005, "seed": 1}, "dumps": [{"name": "y"}]}
    assert differences(recorded, current) == "the data, the dumps, recipe (learning_rate 0.001 -> 0.0005)"
    assert differences(recorded, recorded) == ""


def test_the_same_identity_is_reused_and_another_refused_naming_what_differs(tmp_path):
    folder = tmp_path / "out"
    assert reuse_or_refuse(folder, Made, {"size": 3}, overwrite=False) is None  # nothing there yet
    made(folder, {"size": 3}, count=7)
    assert reuse_or_refuse(folder, Made, {"size": 3}, overwrite=False).count == 7
    with pytest.raises(UserError, match=r"out holds things made otherwise \(size 3 -> 4\); pass "
                                        "--overwrite_output_dir to replace it, or another --output_dir"):
        reuse_or_refuse(folder, Made, {"size": 4}, overwrite=False)
    assert reuse_or_refuse(folder, Made, {"size": 4}, overwrite=True) is None
    (folder / "made.json").write_text('{"identity": {}}')
    with pytest.raises(UserError, match=r"\(written by an older version\)"):
        reuse_or_refuse(folder, Made, {"size": 3}, overwrite=False)


@pytest.mark.parametrize("what", ["a user's files", "another step's output", "a run folder", "a file",
                                  "its own output and another's"])
def test_a_folder_holding_anything_else_is_never_replaced(tmp_path, what):
    target = tmp_path / "target"
    if what == "a file":
        target.write_text("notes")
    else:
        target.mkdir()
        {"a user's files": target / "notes.txt", "another step's output": target / "other_record.json",
         "a run folder": target / "data", "its own output and another's": target / "model"}[what].write_text("keep")
        if what == "its own output and another's":  # a step's folder that another step wrote into
            made(target, {"size": 3})
    before = sorted(p.name for p in tmp_path.rglob("*"))
    (tmp_path / "finished").mkdir()
    for attempt in (lambda: move_into_place(tmp_path / "finished", target, Made),
                    lambda: reuse_or_refuse(target, Made, {"size": 3}, overwrite=True)):
        with pytest.raises(UserError, match="--output_dir .*target"):
            attempt()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.name != "finished") == before


def test_an_absent_or_empty_folder_is_free_and_one_with_its_record_is_the_steps_own(tmp_path):
    assert check_output_folder(tmp_path / "absent", Made) is False
    (tmp_path / "empty").mkdir()
    assert check_output_folder(tmp_path / "empty", Made) is False
    made(tmp_path / "empty", {})
    assert check_output_folder(tmp_path / "empty", Made) is True


def test_a_build_moves_into_place_only_when_finished_and_replaces_the_steps_output_whole(tmp_path):
    target = tmp_path / "out"
    made(target, {"size": 1})
    (target / "thing.txt").write_text("old")
    with building(target) as build:
        (build.output / "thing.txt").write_text("new")
        build.finish(Made(identity={"size": 2}, count=2))
        assert (target / "thing.txt").read_text() == "new"  # in place at once; the lock is held until the end
    assert Made.load(target).identity == {"size": 2}
    with building(target) as build:
        (build.output / "thing.txt").write_text("never finished")
    with pytest.raises(RuntimeError):
        with building(target) as build:
            (build.output / "thing.txt").write_text("failed")
            raise RuntimeError("the step failed")
    assert (target / "thing.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no scratch folder, no lock file left


def hold_the_lock(target, ready, release):
    with building(target):
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
        with building(target):
            pass
    holder.kill()  # kill -9 while holding the lock: the kernel drops it, the scratch folder stays
    holder.join()
    assert (tmp_path / ".out.partial").is_dir()
    with building(target) as build:
        assert build.work == tmp_path / ".out.partial" and [p.name for p in build.work.iterdir()] == ["output"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_lock_file_removed_by_hand_ends_the_build_normally_and_the_next_writers_lock_stays(tmp_path):
    with building(tmp_path / "out"):
        (tmp_path / ".out.lock").unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    first, second = building(tmp_path / "out"), building(tmp_path / "out")
    first.__enter__()
    (tmp_path / ".out.lock").unlink()
    second.__enter__()  # as a second run would, through the door the user opened
    first.__exit__(None, None, None)
    assert (tmp_path / ".out.lock").exists()  # the first to finish leaves the second's lock alone
    with pytest.raises(UserError, match="Another run is writing"):
        with building(tmp_path / "out"):
            pass
    second.__exit__(None, None, None)


def test_a_mount_point_is_refused_before_any_work_naming_a_folder_inside_it():
    with pytest.raises(UserError, match="/ is a mount point, which cannot be renamed.* such as /output"):
        with building("/"):
            pass


def fork_a_worker_then_wait(target, worker_pid):
    """Hold the lock and fork a worker, as datasets' num_proc pool does, then wait to be killed."""
    with building(target):
        pid = os.fork()
        if pid == 0:  # the worker: it would sleep forever
            time.sleep(600)
            os._exit(0)
        worker_pid.value = pid
        time.sleep(600)


def test_a_worker_forked_under_the_lock_neither_keeps_it_nor_outlives_its_parent(tmp_path):
    context = multiprocessing.get_context("fork")
    worker_pid = context.Value("i", 0)
    parent = context.Process(target=fork_a_worker_then_wait, args=(tmp_path / "out", worker_pid))
    parent.start()
    deadline = time.time() + 30
    while not worker_pid.value:
        assert time.time() < deadline
        time.sleep(0.01)
    parent.kill()  # kill -9 of the process holding the lock, as docker stop or a scheduler does
    parent.join()
    try:
        deadline = time.time() + 10
        while alive(worker_pid.value):
            assert time.time() < deadline, "the worker outlived its parent"
            time.sleep(0.01)
        with building(tmp_path / "out"):  # the lock is free at once
            pass
    finally:
        if alive(worker_pid.value):
            os.kill(worker_pid.value, signal.SIGKILL)


def test_a_run_stopped_while_replacing_its_output_loses_nothing(tmp_path):
    # the state a kill between the two renames of move_into_place leaves: old output aside, new one in scratch
    (tmp_path / ".out.old").mkdir()
    (tmp_path / ".out.old" / "made.json").write_text("old")
    (tmp_path / ".out.partial").mkdir()
    with building(tmp_path / "out"):
        assert (tmp_path / "out" / "made.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_symlinked_output_folder_is_replaced_where_it_points(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "elsewhere")
    with building(tmp_path / "out") as build:
        build.finish(Made(identity={}, count=1))
    assert Made.load(tmp_path / "elsewhere").count == 1


def test_out_of_space_is_one_sentence_naming_the_folder(tmp_path):
    with pytest.raises(UserError, match=r"ran out of space while writing .*out: it needs about 2 MiB, [\d,]+ MiB"):
        with disk_space_errors(tmp_path / "out", needed_bytes=2 * 2**20):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(PermissionError):
        with disk_space_errors(tmp_path / "out"):
            raise PermissionError(errno.EACCES, "denied")


def test_a_file_fingerprint_is_its_content(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * (3 << 20))  # more than one read of 1 MiB
    (tmp_path / "b").write_bytes(b"x" * (3 << 20))
    assert file_fingerprint(tmp_path / "a") == file_fingerprint(tmp_path / "b")
    (tmp_path / "b").write_bytes(b"x" * (3 << 20) + b"y")
    assert file_fingerprint(tmp_path / "a") != file_fingerprint(tmp_path / "b")
