"""gpt2ja.training_run: a training run's identity, and what a rerun does with the folder it finds."""

import json
import shutil
from types import SimpleNamespace

import pytest

from gpt2ja.errors import UserError
from gpt2ja.training_run import check_run_folder, checkpoint_to_resume, finished_training, reuse_finished
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
    assert checkpoint_to_resume(args_of(run), identity, {}) is None
    assert RunIdentity.load(run.checkpoints).identity == identity
    checkpoint(run, 2)
    (run.checkpoints / "checkpoint-4").mkdir()  # cut short by a kill: no trainer_state.json
    assert checkpoint_to_resume(args_of(run), identity, {}) == str(run.checkpoints / "checkpoint-2")
    assert not (run.checkpoints / "checkpoint-4").exists()
    with pytest.raises(UserError, match=r"checkpoint-2 belongs to another run \(recipe \(learning_rate 0.001 -> "
                                        r"0.01\)\); pass --overwrite_output_dir"):
        checkpoint_to_resume(args_of(run), {**identity, "recipe": {"learning_rate": 0.01}}, {})


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
    assert reuse_finished(run, {"seed": 1}, {}, overwrite=False) is False
    run.model.mkdir()
    RunInfo(identity={"seed": 1}, preparation=None, tokens={}, tokenizer_report=None, recipe={}, hardware={},
            versions={}).save(run.model)
    (run.model / "trainer_state.json").write_text(trainer_state(6, eval_loss=3.4))  # stopped at a loss
    assert reuse_finished(run, {"seed": 1}, {}, overwrite=False, stop_at_eval_loss=3.5) is True
    assert reuse_finished(run, {"seed": 1}, {}, overwrite=False, stop_at_eval_loss=3.0) is False  # goes on
    assert reuse_finished(run, {"seed": 1}, {}, overwrite=False) is False
    assert reuse_finished(run, {"seed": 2}, {}, overwrite=True) is False
    with pytest.raises(UserError, match=r"holds the model of another run \(seed 1 -> 2\)"):
        reuse_finished(run, {"seed": 2}, {}, overwrite=False)


def test_a_named_checkpoint_is_resumed_wherever_it_lies_if_it_is_of_this_run(tmp_path):
    identity = {"data": "a" * 64, "recipe": {"seed": 1}}
    elsewhere = RunFolder(tmp_path / "moved")
    checkpoint_to_resume(args_of(elsewhere), identity, {})  # the run that wrote it
    moved = checkpoint(elsewhere, 4)
    run = RunFolder(tmp_path / "run")
    assert checkpoint_to_resume(args_of(run, moved), identity, {}) == moved
    assert RunIdentity.load(run.checkpoints).identity == identity  # this folder's checkpoints are of this run
    for named, message in ((str(tmp_path / "absent"), "is not a complete checkpoint"),
                           (moved, r"is not a checkpoint of this run \(recipe \(seed 1 -> 2\)\)")):
        with pytest.raises(UserError, match=f"--resume_from_checkpoint .*{message}"):
            checkpoint_to_resume(args_of(RunFolder(tmp_path / "other"), named), {**identity, "recipe": {"seed": 2}}, {})


def test_a_rerun_of_a_command_that_named_a_checkpoint_goes_on_from_where_the_run_folder_got(tmp_path):
    identity = {"data": "a" * 64}
    elsewhere = RunFolder(tmp_path / "moved")
    checkpoint_to_resume(args_of(elsewhere), identity, {})
    moved = checkpoint(elsewhere, 4)
    run = RunFolder(tmp_path / "run")
    assert checkpoint_to_resume(args_of(run, moved), identity, {}) == moved
    own = checkpoint(run, 6)  # the run went on from it, then was killed
    assert checkpoint_to_resume(args_of(run, moved), identity, {}) == own
    shutil.rmtree(moved)  # gone since (rotated, or scratch space)
    assert checkpoint_to_resume(args_of(run, moved), identity, {}) == own
    assert checkpoint_to_resume(args_of(run, own), identity, {}) == own  # where the folder stands
    for other in (checkpoint(elsewhere, 8), checkpoint(run, 2)):  # another course of the run
        with pytest.raises(UserError, match=r"--resume_from_checkpoint .* is not where .*run/checkpoints stands "
                                            r"\(it holds checkpoint-6\): to go back .* remove the ones after it"):
            checkpoint_to_resume(args_of(run, other), identity, {})


# The TrainingArguments fields of transformers 5.24, each either INERT or compared: a field a new version adds
# fails here until it is classified (compared is the default: leave it out of INERT unless it cannot change the
# weights).
KNOWN_TRAINING_ARGUMENTS = frozenset("""
output_dir per_device_train_batch_size num_train_epochs max_steps learning_rate lr_scheduler_type lr_scheduler_kwargs
warmup_steps optim optim_args weight_decay adam_beta1 adam_beta2 adam_epsilon optim_target_modules
gradient_accumulation_steps average_tokens_across_devices max_grad_norm label_smoothing_factor bf16 fp16
bf16_full_eval fp16_full_eval tf32 activation_checkpointing activation_checkpointing_kwargs gradient_checkpointing
gradient_checkpointing_kwargs torch_compile torch_compile_backend torch_compile_mode use_liger_kernel
liger_kernel_config use_cache neftune_noise_alpha torch_empty_cache_steps auto_find_batch_size logging_strategy
logging_steps logging_first_step log_on_each_node logging_nan_inf_filter include_num_input_tokens_seen log_level
log_level_replica disable_tqdm report_to run_name project trackio_space_id trackio_bucket_id trackio_static_space_id
eval_strategy eval_steps eval_delay per_device_eval_batch_size prediction_loss_only eval_on_start
eval_do_concat_batches eval_use_gather_object eval_accumulation_steps include_for_metrics batch_eval_metrics
save_only_model save_strategy save_steps save_on_each_node save_total_limit enable_jit_checkpoint push_to_hub
hub_token hub_private_repo hub_model_id hub_strategy hub_always_push hub_revision load_best_model_at_end
metric_for_best_model greater_is_better ignore_data_skip restore_callback_states_from_checkpoint full_determinism
seed data_seed use_cpu accelerator_config parallelism_config dataloader_drop_last dataloader_num_workers
dataloader_pin_memory dataloader_persistent_workers dataloader_prefetch_factor dataloader_multiprocessing_context
dataloader_in_order remove_unused_columns label_names train_sampling_strategy length_column_name
ddp_find_unused_parameters ddp_bucket_cap_mb ddp_broadcast_buffers ddp_static_graph ddp_backend ddp_timeout fsdp
fsdp_config deepspeed debug skip_memory_metrics do_train do_eval do_predict resume_from_checkpoint local_rank
""".split())


def test_every_training_argument_is_classified_and_the_inert_set_names_only_real_settings():
    import dataclasses

    import train
    from transformers import TrainingArguments

    from gpt2ja.training_run import INERT
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    assert fields == KNOWN_TRAINING_ARGUMENTS, (
        f"TrainingArguments gained {sorted(fields - KNOWN_TRAINING_ARGUMENTS)} and lost "
        f"{sorted(KNOWN_TRAINING_ARGUMENTS - fields)}: classify them in gpt2ja.training_run.INERT (or leave them compared), "
        "then update KNOWN_TRAINING_ARGUMENTS")
    ours = {f.name for t in (train.ModelArguments, train.LMTrainingArguments) for f in dataclasses.fields(t)}
    assert INERT <= ours, sorted(INERT - ours)


def test_the_recipe_compares_every_setting_but_the_inert_ones_and_never_holds_a_token():
    import train
    from gpt2ja.training_run import INERT, recipe
    model_args, _, args = train.parse_arguments(["configs/tiny.yaml", "--hub_token", "hf_secret_token_123",
                                                 "--data_seed", "7", "--neftune_noise_alpha", "5"])
    compared = recipe(model_args, args)
    assert compared["data_seed"] == 7 and compared["neftune_noise_alpha"] == 5 and "average_tokens_across_devices" in compared
    assert not INERT & set(compared) and "logging_steps" not in compared and "per_device_train_batch_size" not in compared
    assert compared["global_batch_size"] == 16
    assert "hf_secret_token_123" not in json.dumps(compared)


# --- hardened continued runs (issue 30) ---------------------------------------------------------

def test_a_run_folder_that_is_or_lies_in_another_runs_model_or_checkpoints_is_refused(tmp_path):
    outer = RunFolder(tmp_path / "outer")
    RunInfo(identity={}, preparation=None, tokens={}, tokenizer_report=None, recipe={}, hardware={},
            versions={}).save(ensure(outer.model))
    RunIdentity({}).save(ensure(outer.checkpoints))
    (ensure(outer.checkpoints / "checkpoint-20") / "trainer_state.json").write_text("{}")
    for inside in (outer.model, outer.model / "run", outer.checkpoints, outer.checkpoints / "checkpoint-20" / "x"):
        with pytest.raises(UserError, match=r"--output_dir .* (is|lies in .*, which is) a model, checkpoints or "
                                            r"checkpoint folder of another run"):
            check_run_folder(RunFolder(inside))
    check_run_folder(outer)  # its own run folder
    check_run_folder(RunFolder(tmp_path / "outer" / "beside"))  # beside model/ and checkpoints/: untouched by them


def ensure(folder):
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_finished_run_of_a_base_whose_branch_moved_names_the_commit_to_pin(tmp_path):
    run = RunFolder(tmp_path / "run")
    recorded = {"recipe": {"seed": 1}, "base_model": {"name": "tester/base", "revision": "a" * 40}}
    RunInfo(identity=recorded, preparation=None, tokens={}, tokenizer_report=None, recipe={}, hardware={},
            versions={}).save(ensure(run.model))
    moved = {**recorded, "base_model": {"name": "tester/base", "revision": "b" * 40}}
    with pytest.raises(UserError, match=f"pass --model_revision {'a' * 40} to go on"):
        reuse_finished(run, moved, {}, overwrite=False)


@pytest.mark.parametrize("flags, message", [
    (["--hub_token", "hf_x"], "--hub_token is not a setting of this script: .*set HF_TOKEN or run `hf auth login`"),
    (["--model_name_or_path", ""], "--model_name_or_path is empty; name a Hub repo id or a model folder"),
])
def test_a_token_as_a_flag_and_an_empty_base_are_refused(flags, message):
    import train
    with pytest.raises(UserError, match=message):
        train.parse_arguments(["configs/tiny.yaml", *flags])
