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
from .rerun import building, check_output_folder, differences, read_json, reuse_or_refuse
from .run_folder import (STAGING_RECORD, TRAINER_STATE, RunIdentity, RunInfo, last_complete_checkpoint,
                         remove_incomplete_checkpoints)
from .splits import Preparation
from .tokenizer_folder import TokenizerReport
from .tokens import input_fingerprints

logger = logging.getLogger(__name__)

# The TrainingArguments that make the recipe, recorded in run_info.json for the model card and, but for the
# ones that do not change the weights (IDENTITY_EXEMPT), compared when a run is resumed or reused.
RECIPE_KEYS = ("num_train_epochs", "max_steps", "learning_rate", "lr_scheduler_type", "lr_scheduler_kwargs",
               "warmup_steps", "optim", "optim_args", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
               "max_grad_norm", "label_smoothing_factor", "bf16", "fp16", "torch_compile", "seed",
               "stop_at_eval_loss")
# speed, or already in the config, or when to stop (a run stopped early goes on with a lower threshold)
IDENTITY_EXEMPT = ("torch_compile", "attn_implementation", "vocab_size", "stop_at_eval_loss")
# ModelArguments that are not the recipe: the base model is an identity of its own (run_identity's base_model)
NOT_RECIPE = ("model_name_or_path", "model_revision", "flags_on_command_line")


def recipe(model_args, args):
    """The settings that shape the training, whatever the number of processes (the global batch, not its split)."""
    model = {key: value for key, value in asdict(model_args).items() if key not in NOT_RECIPE}
    return {**{key: getattr(args, key) for key in RECIPE_KEYS}, **model,
            "global_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps
            * args.world_size}


def run_identity(model_args, data_args, args, config, base=None):
    """What makes this run this run, by content: the data, the tokenizer, the model config and the recipe, and
    the base model it started from, if any (as JSON holds it, so that it compares equal with the one recorded)."""
    identity = {
        **input_fingerprints(data_args.data_dir, data_args.tokenizer_dir),
        "config": {k: v for k, v in config.to_diff_dict().items()
                   if k not in ("transformers_version", "use_cache", "_name_or_path")},
        "recipe": {k: v for k, v in recipe(model_args, args).items() if k not in IDENTITY_EXEMPT},
        **({"base_model": base.identity} if base else {}),
    }
    if args.max_steps > 0:  # Trainer ignores the epochs then
        del identity["recipe"]["num_train_epochs"]
    return json.loads(json.dumps(identity, default=str))


def check_run_folder(run):
    """train.py owns checkpoints/, logs/ and model/ of its run folder: refuse a run folder that is another
    step's output folder, and folders of those names that hold anything else (a checkpoints/ of its own
    holds run_identity.json from its first step on)."""
    for record in (Preparation.FILE, TokenizerReport.FILE, STAGING_RECORD):
        if (run.root / record).is_file():
            raise UserError(f"--output_dir {run.root} is another step's output folder (it holds {record}); pass "
                            "the run folder above it, or a new one.")
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


def reuse_finished(run, identity, overwrite, stop_at_eval_loss=None):
    """Whether the run folder holds the finished model of this very run; another run's is refused. A model
    of a run that --stop_at_eval_loss ended is finished only for a threshold it reached."""
    if reuse_or_refuse(run.model, RunInfo, identity, overwrite) is None:
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


def checkpoint_to_resume(args, identity):
    """The checkpoint this run goes on from, None for a fresh run: the run folder's last complete checkpoint
    (the main process removes any cut short first), or --resume_from_checkpoint. A checkpoint of another run
    (other data, tokenizer, config or recipe) is refused. The run folder records its identity from its first
    step on, and the named checkpoint it went on from."""
    if args.process_index == 0:
        remove_incomplete_checkpoints(args.output_dir)
    PartialState().wait_for_everyone()
    last = last_complete_checkpoint(args.output_dir)
    recorded = RunIdentity.load(args.output_dir)
    if last and (recorded is None or recorded.identity != identity):
        changed = differences(recorded.identity, identity) if recorded else "no record of its run"
        pinned = pinning_hint(recorded.identity, identity) if recorded else ""
        raise UserError(f"{last} belongs to another run ({changed}); pass --overwrite_output_dir to start "
                        f"over, or another --output_dir.{pinned}")
    resume = last
    if args.resume_from_checkpoint:
        resume = named_checkpoint_to_resume(args.resume_from_checkpoint, identity, last, recorded)
    if last is None and args.process_index == 0:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        RunIdentity(identity, resumed_from=str(Path(resume).resolve()) if resume else None).save(args.output_dir)
    if resume:
        logger.info("Resuming from %s", resume)
    return resume


def named_checkpoint_to_resume(checkpoint, identity, last, recorded):
    """--resume_from_checkpoint where the run folder has no checkpoint yet, or is at that very one. A rerun of
    the command that named it goes on from the run folder's last checkpoint, which it reached from there (the
    named one may have been rotated away since). Any other name beside the folder's own checkpoints is refused:
    they are of another course of the run, and a crash would resume the newest of them."""
    if last and recorded and recorded.resumed_from == str(Path(checkpoint).resolve()):
        logger.info("%s went on from --resume_from_checkpoint %s: going on from it.", last, checkpoint)
        return last
    named = check_named_checkpoint(checkpoint, identity)
    if last is None:
        return named
    if Path(named).resolve() == Path(last).resolve():
        return last
    raise UserError(f"--resume_from_checkpoint {checkpoint} is not where {Path(last).parent} stands (it holds "
                    f"{Path(last).name}): to go back to an earlier checkpoint of this folder, remove the ones "
                    "after it and rerun without the flag; to go on from another folder's, pass "
                    "--overwrite_output_dir (which removes this folder's checkpoints) or another --output_dir.")


def check_named_checkpoint(checkpoint, identity):
    """--resume_from_checkpoint: a complete checkpoint of this same run (its folder's run_identity.json says
    so), wherever it was moved; anything else is refused."""
    path = Path(checkpoint)
    if not (path / TRAINER_STATE).is_file():
        raise UserError(f"--resume_from_checkpoint {checkpoint} is not a complete checkpoint (it holds no "
                        f"{TRAINER_STATE}); pass a checkpoint-N folder of this run, or leave the flag out to "
                        "resume from the run folder's last one.")
    recorded = RunIdentity.load(path.parent)
    if recorded is None or recorded.identity != identity:
        changed = differences(recorded.identity, identity) if recorded else (
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


def run_info(model_args, data_args, args, token_counts, identity, base=None):
    """What the model card reports of this run: data, tokenizer, recipe, hardware."""
    devices = ([torch.cuda.get_device_name()] * args.world_size if torch.cuda.is_available()
               else [f"CPU ({os.cpu_count()} cores)"] * args.world_size)
    return RunInfo(
        identity=identity,
        preparation=Preparation.load(data_args.data_dir),
        tokens=token_counts,
        tokenizer_report=TokenizerReport.load(data_args.tokenizer_dir),
        recipe={**recipe(model_args, args), "per_device_train_batch_size": args.per_device_train_batch_size,
                "gradient_accumulation_steps": args.gradient_accumulation_steps, "tf32": args.tf32,
                "mixed_precision": args.mixed_precision, "use_cpu": args.use_cpu},
        hardware={"processes": args.world_size, "devices": devices},
        versions={"torch": torch.__version__, "transformers": transformers.__version__},
        base_model=base.record() if base else None,
    )
