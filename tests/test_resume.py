"""gpt2ja.resume: a training run's identity, and what a rerun does with the folder it finds."""

import json
import shutil
from types import SimpleNamespace

import pytest

from gpt2ja.errors import UserError
from gpt2ja.resume import check_run_folder, checkpoint_to_resume, finished_training, reuse_finished
from gpt2ja.run_folder import RunFolder, RunIdentity, RunInfo


def args_of(run, resume_from_checkpoint=None):
    return SimpleNamespace(output_dir=str(run.checkpoints), process_index=0,
                           resume_from_checkpoint=resume_from_checkpoint)


def trainer_state(step, max_steps=10, eval_loss=None):
    log_history = [{"step": step, "eval_loss": eval_loss}] if eval_loss is not None else []
    return json.dumps({"global_step": step, "max_steps": max_steps, "log_history": log_history})


def checkpoint(run, step, max_steps=10, eval_loss=None):
    folder = run.checkpoints / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(trainer_state(step, max_steps, eval_loss))
    return str(folder)


def test_a_fresh_run_records_its_identity_and_a_rerun_resumes_only_the_same_run(tmp_path):
    run = RunFolder(tmp_path / "run")
    identity = {"data": "a" * 64, "recipe": {"learning_rate": 0.001}}
    assert checkpoint_to_resume(args_of(run), identity) is None
    assert RunIdentity.load(run.checkpoints).identity == identity
    checkpoint(run, 2)
    (run.checkpoints / "checkpoint-4").mkdir()  # cut short by a kill: no trainer_state.json
    assert checkpoint_to_resume(args_of(run), identity) == str(run.checkpoints / "checkpoint-2")
    assert not (run.checkpoints / "checkpoint-4").exists()
    with pytest.raises(UserError, match=r"checkpoint-2 belongs to another run \(recipe \(learning_rate 0.001 -> "
                                        r"0.01\)\); pass --overwrite_output_dir"):
        checkpoint_to_resume(args_of(run), {**identity, "recipe": {"learning_rate": 0.01}})


def test_the_last_step_goes_straight_to_export(tmp_path):
    run = RunFolder(tmp_path)
    assert not finished_training(None)
    assert not finished_training(checkpoint(run, 5))
    assert finished_training(checkpoint(run, 10))
    reached = checkpoint(run, 6, eval_loss=3.4)
    assert finished_training(reached, stop_at_eval_loss=3.5)
    assert not finished_training(reached, stop_at_eval_loss=3.3)
    assert not finished_training(reached)


@pytest.mark.parametrize("record", ["preparation.json", "tokenizer_report.json", ".staged_by_push_to_hub.json"])
def test_another_steps_folder_is_no_run_folder(tmp_path, record):
    (tmp_path / record).write_text("{}")
    with pytest.raises(UserError, match=f"is another step's output folder \\(it holds {record}\\)"):
        check_run_folder(RunFolder(tmp_path))


def test_a_finished_model_is_reused_by_the_same_run_and_refused_to_another(tmp_path):
    run = RunFolder(tmp_path)
    assert reuse_finished(run, {"seed": 1}, overwrite=False) is False
    run.model.mkdir()
    RunInfo(identity={"seed": 1}, preparation=None, tokens={}, tokenizer_report=None, recipe={}, hardware={},
            versions={}).save(run.model)
    (run.model / "trainer_state.json").write_text(trainer_state(6, eval_loss=3.4))  # stopped at a loss
    assert reuse_finished(run, {"seed": 1}, overwrite=False, stop_at_eval_loss=3.5) is True
    assert reuse_finished(run, {"seed": 1}, overwrite=False, stop_at_eval_loss=3.0) is False  # goes on
    assert reuse_finished(run, {"seed": 1}, overwrite=False) is False
    assert reuse_finished(run, {"seed": 2}, overwrite=True) is False
    with pytest.raises(UserError, match=r"holds the model of another run \(seed 1 -> 2\)"):
        reuse_finished(run, {"seed": 2}, overwrite=False)


def test_a_named_checkpoint_is_resumed_wherever_it_lies_if_it_is_of_this_run(tmp_path):
    identity = {"data": "a" * 64, "recipe": {"seed": 1}}
    elsewhere = RunFolder(tmp_path / "moved")
    checkpoint_to_resume(args_of(elsewhere), identity)  # the run that wrote it
    moved = checkpoint(elsewhere, 4)
    run = RunFolder(tmp_path / "run")
    assert checkpoint_to_resume(args_of(run, moved), identity) == moved
    assert RunIdentity.load(run.checkpoints).identity == identity  # this folder's checkpoints are of this run
    for named, message in ((str(tmp_path / "absent"), "is not a complete checkpoint"),
                           (moved, r"is not a checkpoint of this run \(recipe \(seed 1 -> 2\)\)")):
        with pytest.raises(UserError, match=f"--resume_from_checkpoint .*{message}"):
            checkpoint_to_resume(args_of(RunFolder(tmp_path / "other"), named), {**identity, "recipe": {"seed": 2}})


def test_a_rerun_of_a_command_that_named_a_checkpoint_goes_on_from_where_the_run_folder_got(tmp_path):
    identity = {"data": "a" * 64}
    elsewhere = RunFolder(tmp_path / "moved")
    checkpoint_to_resume(args_of(elsewhere), identity)
    moved = checkpoint(elsewhere, 4)
    run = RunFolder(tmp_path / "run")
    assert checkpoint_to_resume(args_of(run, moved), identity) == moved
    own = checkpoint(run, 6)  # the run went on from it, then was killed
    assert checkpoint_to_resume(args_of(run, moved), identity) == own
    shutil.rmtree(moved)  # gone since (rotated, or scratch space)
    assert checkpoint_to_resume(args_of(run, moved), identity) == own
    assert checkpoint_to_resume(args_of(run, own), identity) == own  # where the folder stands
    for other in (checkpoint(elsewhere, 8), checkpoint(run, 2)):  # another course of the run
        with pytest.raises(UserError, match=r"--resume_from_checkpoint .* is not where .*run/checkpoints stands "
                                            r"\(it holds checkpoint-6\): to go back .* remove the ones after it"):
            checkpoint_to_resume(args_of(run, other), identity)
