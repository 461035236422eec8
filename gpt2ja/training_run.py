"""What a training run is made of, and what a rerun of it does: resume, reuse, refuse or start over.

A run's identity is its inputs by content (the data and the tokenizer), the model config and the recipe.
checkpoints/run_identity.json records it from the first step on and model/run_info.json with the finished
model; a rerun with the same identity resumes from the last complete checkpoint or reuses the model, and
one with another identity is refused, naming what differs, unless --overwrite_output_dir.
"""

import json
import logging
import os
import shutil
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist
import transformers
from accelerate import PartialState

from .base_model import pinning_hint
from .errors import UserError
from .rerun import building, check_output_folder, differences, read_json, reuse_or_refuse, same_identity
from .run_folder import (STAGING_RECORD, TRAINER_STATE, RunIdentity, RunInfo, checkpoint_step,
                         last_complete_checkpoint, remove_incomplete_checkpoints)
from .splits import Preparation
from .tokenizer_folder import TokenizerReport
from .tokens import OWN_ENCODING, input_fingerprints

logger = logging.getLogger(__name__)

# The settings that cannot change the trained weights: every other field of ModelArguments and of the
# TrainingArguments is the run's recipe, compared when a run is resumed or reused (a setting added to train.py,
# or by a new transformers, is compared until it is named here; tests/test_training_run.py pins the fields it knows).
INERT = frozenset({
    # where the run writes, what it logs and reports, and where it publishes
    "output_dir", "overwrite_output_dir", "logging_strategy", "logging_steps", "logging_first_step",
    "log_on_each_node", "logging_nan_inf_filter", "include_num_input_tokens_seen", "log_level", "log_level_replica",
    "disable_tqdm", "report_to", "run_name", "project", "trackio_space_id", "trackio_bucket_id",
    "trackio_static_space_id", "skip_memory_metrics", "debug", "push_to_hub", "hub_token", "hub_private_repo",
    "hub_model_id", "hub_strategy", "hub_always_push", "hub_revision",
    # when it saves, and what it resumes from (a resume is compared apart)
    "save_strategy", "save_steps", "save_on_each_node", "save_total_limit",
    "enable_jit_checkpoint", "resume_from_checkpoint", "restore_callback_states_from_checkpoint",
    # when and how it evaluates (train.py decides do_train, do_eval and do_predict itself)
    "eval_strategy", "eval_steps", "eval_delay", "per_device_eval_batch_size", "prediction_loss_only",
    "eval_on_start", "eval_do_concat_batches", "eval_use_gather_object", "eval_accumulation_steps",
    "include_for_metrics", "batch_eval_metrics", "bf16_full_eval", "fp16_full_eval", "do_train", "do_eval",
    "do_predict", "use_cache",
    # workers, devices and processes: the global batch is compared, not its split over processes, so a run goes
    # on with another number of GPUs
    "per_device_train_batch_size", "gradient_accumulation_steps", "dataloader_num_workers", "dataloader_pin_memory",
    "dataloader_persistent_workers", "dataloader_prefetch_factor", "dataloader_multiprocessing_context", "use_cpu",
    "local_rank", "ddp_find_unused_parameters", "ddp_bucket_cap_mb", "ddp_broadcast_buffers", "ddp_static_graph",
    "ddp_backend", "ddp_timeout",
    # kernels and memory: the same math, computed faster or in less memory (tf32 is compared: it rounds matmuls)
    "torch_compile", "torch_compile_backend", "torch_compile_mode", "attn_implementation", "sdpa_backends",
    "use_liger_kernel",
    "liger_kernel_config", "gradient_checkpointing", "gradient_checkpointing_kwargs", "activation_checkpointing",
    "activation_checkpointing_kwargs", "torch_empty_cache_steps",
    # when to stop: a run stopped early goes on with a lower threshold
    "stop_at_eval_loss",
    # the base model is an identity of its own (run_identity's base_model); the vocabulary is in the config
    "model_name_or_path", "model_revision", "vocab_size",
})
# Inert settings run_info.json records all the same: the model card describes how the run was made.
RECORDED_INERT = ("torch_compile", "torch_compile_mode", "attn_implementation", "sdpa_backends", "use_cpu",
                  "stop_at_eval_loss", "per_device_train_batch_size", "gradient_accumulation_steps")


def settings(model_args, args, config=None):
    """Every setting of the run as JSON holds it (secrets redacted by TrainingArguments.to_dict), the architecture
    as `config` has it (a base model's), and the global batch, whatever the number of processes."""
    model = asdict(model_args)
    if config is not None:
        model.update({name: getattr(config, name) for name in ("n_positions", "n_embd", "n_layer", "n_head")})
    every = {**args.to_dict(), **model,
             "global_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps
             * args.world_size,
             # an accelerate config's mixed precision (ACCELERATE_MIXED_PRECISION), which is not a field
             "mixed_precision": getattr(args, "mixed_precision", None)}
    return json.loads(json.dumps(every, default=str))


def recipe(model_args, args, config=None):
    """The settings that shape the trained weights: every setting but the INERT ones."""
    return {key: value for key, value in settings(model_args, args, config).items() if key not in INERT}


def run_identity(model_args, args, config, data_dir, tokenizer_dir, base=None):
    """What makes this run this run, by content: the data, the tokenizer, the model config and the recipe, and
    the base model it started from, if any (as JSON holds it, so that it compares equal with the one recorded)."""
    identity = {
        **input_fingerprints(data_dir, tokenizer_dir),
        "config": {k: v for k, v in config.to_diff_dict().items()
                   if k not in ("transformers_version", "use_cache", "_name_or_path")},
        "recipe": recipe(model_args, args, config),
        **({"base_model": base.identity} if base else {}),
    }
    if args.max_steps > 0:  # Trainer ignores the epochs then
        del identity["recipe"]["num_train_epochs"]
    return json.loads(json.dumps(identity, default=str))


def identity_defaults(model_args, args, identity):
    """What a recorded identity that lacks a setting of `identity` reads it as: that setting's default (a record
    written before the setting was compared still reads, and still matches a run that leaves it as it was)."""
    defaults = recipe(type(model_args)(), type(args)(output_dir=args.output_dir, use_cpu=args.use_cpu))  # same device
    # Before the encoding was compared, a run from scratch had tokenizer.py's; a base pinned at a Hub commit has the
    # encoding of that commit, which the record names already. A folder base's is unknown: compared as ours.
    pinned = (identity.get("base_model") or {}).get("revision")
    return {"recipe": {key: value for key, value in defaults.items() if key in identity["recipe"]},
            "tokenizer_encoding": identity["tokenizer_encoding"] if pinned else OWN_ENCODING}


def check_run_folder(run):
    """train.py owns checkpoints/, logs/ and model/ of its run folder: refuse a run folder that is another
    step's output folder, or is (or lies in) another run's model/, checkpoints/ or checkpoint (whose
    --overwrite_output_dir would delete this run), and folders of those names that hold anything else (a
    checkpoints/ of its own holds run_identity.json from its first step on)."""
    for record in (Preparation.FILE, TokenizerReport.FILE, STAGING_RECORD):
        if (run.root / record).is_file():
            raise UserError(f"--output_dir {run.root} is another step's output folder (it holds {record}); pass "
                            "the run folder above it, or a new one.")
    for folder in (run.root, *run.root.resolve().parents):
        if (folder / RunInfo.FILE).is_file() or (folder / RunIdentity.FILE).is_file() or (
                checkpoint_step(folder) is not None and (folder / TRAINER_STATE).is_file()) or (
                folder.name == "logs" and (folder.parent / "checkpoints" / RunIdentity.FILE).is_file()):
            where = "is" if folder == run.root else f"lies in {folder}, which is"
            raise UserError(f"--output_dir {run.root} {where} a model, checkpoints, checkpoint or logs folder of "
                            "another run; pass a run folder of its own, outside any other run's.")
    check_output_folder(run.checkpoints, RunIdentity)
    check_output_folder(run.model, RunInfo)
    if run.logs.exists() and any(run.logs.iterdir()) and not (run.checkpoints / RunIdentity.FILE).is_file():
        raise UserError(f"--output_dir {run.root} holds a logs/ folder that train.py did not write; pass a new "
                        "or empty run folder.")


@contextmanager
def run_lock(run, args):
    """The main process holds the model folder's lock for the whole job and yields its Build (None in the
    other processes); a second run on this folder is refused in one sentence by every process."""
    with ExitStack() as stack:
        refusal, build = [None], None
        if args.process_index == 0:
            try:
                build = stack.enter_context(building(run.model))
            except UserError as error:
                refusal = [str(error)]
        if args.world_size > 1:
            dist.broadcast_object_list(refusal, src=0)
        if refusal[0]:
            raise UserError(refusal[0])
        yield build


def reuse_finished(run, identity, defaults, overwrite, stop_at_eval_loss=None):
    """Whether the run folder holds the finished model of this very run; another run's is refused. A model
    of a run that --stop_at_eval_loss ended is finished only for a threshold it reached."""
    try:
        finished = reuse_or_refuse(run.model, RunInfo, identity, overwrite, defaults=defaults)
    except UserError as refusal:  # of another run: a base model's branch that moved on names its commit
        recorded = RunInfo.load(run.model)
        raise UserError(f"{refusal}{pinning_hint(recorded.identity, identity) if recorded else ''}") from None
    if finished is None:
        return False
    if finished_training(run.model, stop_at_eval_loss):
        return True
    logger.info("%s stopped before its last step, at a validation loss above --stop_at_eval_loss %s: training "
                "goes on.", run.model, stop_at_eval_loss)
    return False


def start_over(run):
    """--overwrite_output_dir: remove what train.py wrote in the run folder, and nothing else (the main
    process, holding the run's lock). The token cache stays: it is keyed by its content."""
    for folder in (run.checkpoints, run.logs, run.model):
        shutil.rmtree(folder, ignore_errors=True)
    logger.info("--overwrite_output_dir: removed %s, %s and %s.", run.checkpoints, run.logs, run.model)


def checkpoint_to_resume(args, identity, defaults=None):
    """The checkpoint this run goes on from, None for a fresh run: the run folder's last complete checkpoint
    (the main process removes any cut short first), or --resume_from_checkpoint. A checkpoint of another run
    (other data, tokenizer, config or recipe) is refused. The run folder records its identity from its first
    step on, and the named checkpoint it went on from."""
    if args.process_index == 0:
        remove_incomplete_checkpoints(args.output_dir)
    PartialState().wait_for_everyone()
    last = last_complete_checkpoint(args.output_dir)
    recorded = RunIdentity.load(args.output_dir)
    same, read = same_identity(recorded.identity, identity, defaults) if recorded else (False, None)
    if last and not same:
        changed = differences(read, identity) if recorded else "no record of its run"
        pinned = pinning_hint(recorded.identity, identity) if recorded else ""
        raise UserError(f"{last} belongs to another run ({changed}); pass --overwrite_output_dir to start "
                        f"over, or another --output_dir.{pinned}")
    resume = last
    if args.resume_from_checkpoint:
        resume = named_checkpoint_to_resume(args.resume_from_checkpoint, identity, defaults, last, recorded)
    if last is None and args.process_index == 0:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        RunIdentity(identity, resumed_from=str(Path(resume).resolve()) if resume else None).save(args.output_dir)
    if resume:
        logger.info("Resuming from %s", resume)
    return resume


def named_checkpoint_to_resume(checkpoint, identity, defaults, last, recorded):
    """--resume_from_checkpoint where the run folder has no checkpoint yet, or is at that very one. A rerun of
    the command that named it goes on from the run folder's last checkpoint, which it reached from there (the
    named one may have been rotated away since). Any other name beside the folder's own checkpoints is refused:
    they are of another course of the run, and a crash would resume the newest of them."""
    if last and recorded and recorded.resumed_from == str(Path(checkpoint).resolve()):
        logger.info("%s went on from --resume_from_checkpoint %s: going on from it.", last, checkpoint)
        return last
    named = check_named_checkpoint(checkpoint, identity, defaults)
    if last is None:
        return named
    if Path(named).resolve() == Path(last).resolve():
        return last
    raise UserError(f"--resume_from_checkpoint {checkpoint} is not where {Path(last).parent} stands (it holds "
                    f"{Path(last).name}): to go back to an earlier checkpoint of this folder, remove the ones "
                    "after it and rerun without the flag; to go on from another folder's, pass "
                    "--overwrite_output_dir (which removes this folder's checkpoints) or another --output_dir.")


def check_named_checkpoint(checkpoint, identity, defaults):
    """--resume_from_checkpoint: a complete checkpoint of this same run (its folder's run_identity.json says
    so), wherever it was moved; anything else is refused."""
    path = Path(checkpoint)
    if not (path / TRAINER_STATE).is_file():
        raise UserError(f"--resume_from_checkpoint {checkpoint} is not a complete checkpoint (it holds no "
                        f"{TRAINER_STATE}); pass a checkpoint-N folder of this run, or leave the flag out to "
                        "resume from the run folder's last one.")
    recorded = RunIdentity.load(path.parent)
    same, read = same_identity(recorded.identity, identity, defaults) if recorded else (False, None)
    if not same:
        changed = differences(read, identity) if recorded else (
            f"no {RunIdentity.FILE} beside it says which run it is of")
        raise UserError(f"--resume_from_checkpoint {checkpoint} is not a checkpoint of this run ({changed}); a "
                        "resume goes on with the same data, tokenizer, model and recipe. To train further from "
                        "another run's weights, start a new run from its model.")
    return str(path)


def damaged_checkpoint(checkpoint, error):
    """A UserError for a checkpoint whose files do not load (written by a process killed mid-write, or on a
    full disk, before complete checkpoints were told apart), or None for any other error."""
    damage = type(error).__name__ in ("SafetensorError", "EOFError", "UnpicklingError") or any(
        sign in str(error) for sign in ("PytorchStreamReader", "zip archive", "incomplete metadata"))
    if not damage:
        return None
    return UserError(f"{checkpoint} is damaged: its files do not load ({type(error).__name__}: "
                     f"{str(error).splitlines()[0][:200]}); remove it and rerun to resume from the checkpoint "
                     "before it, or from the start.")


def finished_training(folder, stop_at_eval_loss=None):
    """Whether a checkpoint (or the model folder, which keeps the final one's trainer_state.json) ends its run,
    so a rerun goes straight to export: its last step, or a step whose validation loss reached
    --stop_at_eval_loss."""
    if folder is None:
        return False
    state = read_json(Path(folder, TRAINER_STATE))
    step = state["global_step"]
    if step >= state["max_steps"] > 0:
        return True
    last_eval = [e["eval_loss"] for e in state["log_history"] if "eval_loss" in e and e["step"] == step]
    return stop_at_eval_loss is not None and bool(last_eval) and last_eval[-1] <= stop_at_eval_loss


def check_inputs_unchanged(identity, data_dir, tokenizer_dir):
    """Refuse to export weights whose data or tokenizer another step rewrote while the run trained."""
    now = input_fingerprints(data_dir, tokenizer_dir)
    replaced = [f"the {name}" for name, fingerprint in now.items() if fingerprint != identity[name]]
    if replaced:
        raise UserError(f"{' and '.join(replaced)} of this run changed while it trained (another step rewrote "
                        f"{tokenizer_dir if 'the tokenizer' in replaced else data_dir}); the weights belong to the "
                        "old one: put it back, or train again with --overwrite_output_dir.")


def run_info(model_args, args, config, data_dir, tokenizer_dir, token_counts, identity, base=None):
    """What the model card reports of this run: data, tokenizer, recipe, hardware."""
    devices = ([torch.cuda.get_device_name()] * args.world_size if torch.cuda.is_available()
               else [f"CPU ({os.cpu_count()} cores)"] * args.world_size)
    every = settings(model_args, args, config)  # the recipe, and the inert settings the card reports beside it
    return RunInfo(
        identity=identity,
        preparation=Preparation.load(data_dir),
        tokens=token_counts,
        tokenizer_report=TokenizerReport.load(tokenizer_dir),
        recipe={key: value for key, value in every.items() if key not in INERT or key in RECORDED_INERT},
        hardware={"processes": args.world_size, "devices": devices},
        versions={"torch": torch.__version__, "transformers": transformers.__version__},
        base_model=base.record() if base else None,
    )
