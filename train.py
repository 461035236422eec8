"""Train GPT-2 small on the prepared articles with Trainer; evaluate; save the final model.

    accelerate launch --config_file accelerate_config.yaml train.py                   # the reference recipe
    accelerate launch --config_file accelerate_config.yaml train.py configs/fast.yaml # our GPU recipe
    python train.py configs/tiny.yaml --data_dir D --tokenizer_dir T --output_dir O  # minutes on a CPU

A recipe (YAML) gives the defaults and flags override them; with no recipe,
configs/reference.yaml is used. Everything goes under --output_dir:
checkpoints/ (Trainer's, resumable), logs/ (TensorBoard), model/ (the final
model with its tokenizer and *_results.json). Rerunning the same command
resumes from the last complete checkpoint.
"""

import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist
import transformers
from accelerate import PartialState
from transformers import (GenerationConfig, GPT2Config, GPT2LMHeadModel, ProgressCallback, Trainer, TrainerCallback,
                          TrainingArguments, default_data_collator, set_seed)

from gpt2ja.cli import RECIPE_SUFFIXES, UserError, parse_args, run_main
from gpt2ja.fingerprints import input_fingerprints
from gpt2ja.run_folder import (OOD_PREFIX, RESULT_FILES, RESULT_PREFIXES, RUN_IDENTITY, RUN_INFO, TRAINER_STATE,
                               RunFolder, RunInfo, holds_own_output, is_finished_model, last_complete_checkpoint,
                               move_into_place, read_json, remove_incomplete_checkpoints, space_errors, writing)
from gpt2ja.settings import DEFAULT_RUN_DIR, REFERENCE_CONTEXT, REFERENCE_RECIPE, REPO_ROOT, SAMPLING, SPECIAL_IDS
from gpt2ja.splits import Preparation, load_split
from gpt2ja.tokens import TokenBlocks, load_tokenizer, prepare_tokens, read_tokenizer_report

logger = logging.getLogger("train")

EVAL_METRIC = REPO_ROOT / "metrics" / "causal_lm_eval"
OUT_OF_DOMAIN_TEXT = REPO_ROOT / "metrics" / "out_of_domain" / "soseki_bocchan.txt"
# The TrainingArguments that make the recipe, recorded in run_info.json for the model card and, but for the
# ones that do not change the weights (IDENTITY_EXEMPT), compared when a run is resumed or reused.
RECIPE_KEYS = ("num_train_epochs", "max_steps", "learning_rate", "lr_scheduler_type", "lr_scheduler_kwargs",
               "warmup_steps", "optim", "optim_args", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
               "max_grad_norm", "label_smoothing_factor", "bf16", "fp16", "torch_compile", "seed")
IDENTITY_EXEMPT = ("torch_compile", "attn_implementation", "vocab_size")  # speed, or already in the config

# Dense bf16 peak FLOP/s of one device, for MFU. Matched against torch.cuda.get_device_name().
PEAK_BF16_FLOPS = {"H200": 989e12, "H100 SXM": 989e12, "H100 NVL": 835e12, "H100 PCIe": 756e12, "H100": 989e12,
                   "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10G": 70e12, "RTX 4090": 165e12,
                   "RTX 3090": 71e12}


# --- arguments --------------------------------------------------------------------------------

@dataclass
class ModelArguments:
    n_positions: int = field(default=REFERENCE_CONTEXT, metadata={
        "help": "Context length, and the length of a training block."})
    n_embd: int = field(default=768, metadata={"help": "Hidden size."})
    n_layer: int = field(default=12, metadata={"help": "Transformer blocks."})
    n_head: int = field(default=12, metadata={"help": "Attention heads."})
    vocab_size: Optional[int] = field(default=None, metadata={
        "help": "Vocabulary size; taken from the tokenizer, and if given here it must equal the tokenizer's."})
    dropout: float = field(default=0.1, metadata={"help": "Dropout of embeddings, attention and residuals."})
    attn_implementation: str = field(default="sdpa", metadata={
        "help": "eager, sdpa (PyTorch's fused attention, flash on a recent GPU) or flash_attention_2."})

    def __post_init__(self):
        for name in ("n_positions", "n_embd", "n_layer", "n_head"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be 1 or more, not {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"--n_embd {self.n_embd} must be a multiple of --n_head {self.n_head}")
        if self.vocab_size is not None and self.vocab_size < 1:
            raise ValueError(f"--vocab_size must be 1 or more, not {self.vocab_size}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--dropout must be in [0, 1), not {self.dropout}")


@dataclass
class RunArguments:
    data_dir: str = field(default=str(RunFolder(DEFAULT_RUN_DIR).data), metadata={
        "help": "The DatasetDict from prepare_data.py."})
    tokenizer_dir: str = field(default=str(RunFolder(DEFAULT_RUN_DIR).tokenizer), metadata={
        "help": "The tokenizer folder from tokenizer.py."})
    global_batch_size: Optional[int] = field(default=None, metadata={
        "help": "Sequences per optimizer step over all processes. The recipe fixes it; per-device batch (at most "
                "--per_device_train_batch_size) and accumulation steps are derived from the number of processes."})
    max_eval_blocks: Optional[int] = field(default=None, metadata={
        "help": "Blocks of validation used by the evaluations during training (all of them when unset); the "
                "final evaluation always uses the whole validation and test splits."})
    final_eval_batch_size: int = field(default=8, metadata={"help": "Batch size of the final evaluation."})
    out_of_domain_text: str = field(default=str(OUT_OF_DOMAIN_TEXT), metadata={
        "help": "A UTF-8 text scored at the end beside the splits, as out-of-domain figures (ood_* in "
                "all_results.json); by default a public-domain Soseki novel. Pass '' to skip it."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Start over: remove the checkpoints, logs and model that train.py wrote in --output_dir before. "
                "Without it, a rerun resumes the same run and refuses a run folder of other settings."})

    def __post_init__(self):
        if self.global_batch_size is not None and self.global_batch_size < 1:
            raise ValueError(f"--global_batch_size must be 1 or more, not {self.global_batch_size}")
        if self.max_eval_blocks is not None and self.max_eval_blocks < 1:
            raise ValueError(f"--max_eval_blocks must be 1 or more, not {self.max_eval_blocks}")
        if self.final_eval_batch_size < 1:
            raise ValueError(f"--final_eval_batch_size must be 1 or more, not {self.final_eval_batch_size}")
        if self.out_of_domain_text and not Path(self.out_of_domain_text).is_file():
            raise ValueError(f"--out_of_domain_text {self.out_of_domain_text} is not a file (pass '' to skip it)")


def parse_arguments(argv=None):
    """(ModelArguments, RunArguments, TrainingArguments as given); configs/reference.yaml without a recipe."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not (argv and argv[0].endswith(RECIPE_SUFFIXES)):
        argv.insert(0, str(REFERENCE_RECIPE))
    model_args, run_args, given = parse_args([ModelArguments, RunArguments, TrainingArguments], argv,
                                             description=__doc__)
    if given.max_steps == 0 or given.max_steps < -1:
        raise UserError(f"--max_steps must be 1 or more (or -1: the recipe's epochs), not {given.max_steps}.")
    if given.num_train_epochs <= 0 and given.max_steps == -1:
        raise UserError(f"--num_train_epochs must be more than 0, not {given.num_train_epochs}.")
    return model_args, run_args, given


def split_global_batch(global_batch_size, most_per_device, world_size):
    """(per-device batch, accumulation steps) that make the global batch over world_size processes,
    with as few accumulation steps as a per-device batch of at most most_per_device allows."""
    total = global_batch_size
    accumulation = max(1, math.ceil(total / (world_size * most_per_device)))
    while accumulation <= total and total % (world_size * accumulation):
        accumulation += 1
    if total % (world_size * accumulation):
        raise UserError(f"A global batch of {total} sequences cannot be split evenly over {world_size} processes; "
                        "change --global_batch_size or the number of processes.")
    return total // (world_size * accumulation), accumulation


def training_arguments(given, run_args, run, evaluate):
    """The TrainingArguments the Trainer gets, built once from the user's with what train.py decides:
    the batch split over the processes, the run folder's layout, and whether there is anything to evaluate."""
    batch = {}
    if run_args.global_batch_size is not None:
        per_device, accumulation = split_global_batch(run_args.global_batch_size, given.per_device_train_batch_size,
                                                      given.world_size)
        batch = {"per_device_train_batch_size": per_device, "gradient_accumulation_steps": accumulation}
        logger.info("Global batch %d sequences = %d processes x %d per device x %d accumulation steps.",
                    run_args.global_batch_size, given.world_size, per_device, accumulation)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.logs)  # Trainer's TensorBoard callback reads it
    if "tensorboard" in (given.report_to or []):
        run.logs.mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(
        given, **batch,
        output_dir=str(run.checkpoints),
        eval_strategy=given.eval_strategy if evaluate else "no",
        logging_nan_inf_filter=False,  # a non-finite loss must stop the run, not be averaged away
    )


# --- data -------------------------------------------------------------------------------------

def load_blocks(cache, meta, block_size, max_eval_blocks):
    """(train blocks, validation blocks for the evaluations during training) from the token cache."""
    for split, counts in meta["splits"].items():
        logger.info("%s: %d articles, %d tokens, %d characters", split, counts["articles"], counts["tokens"],
                    counts["characters"])
    train_blocks = TokenBlocks(cache / "train.bin", block_size, meta["dtype"])
    eval_blocks = TokenBlocks(cache / "validation.bin", block_size, meta["dtype"], max_eval_blocks)
    if len(train_blocks) == 0:
        raise UserError(f"The train split holds fewer than {block_size} tokens; prepare more articles.")
    if len(eval_blocks) == 0:
        logger.warning("The validation split holds fewer than %d tokens: no evaluation during training.", block_size)
    return train_blocks, eval_blocks


# --- model ------------------------------------------------------------------------------------

def build_config(model_args, vocab_size):
    if model_args.vocab_size is not None and model_args.vocab_size != vocab_size:
        raise UserError(f"The tokenizer holds {vocab_size} entries but the recipe's vocab_size is "
                        f"{model_args.vocab_size}; train the tokenizer with --vocab_size {model_args.vocab_size} "
                        "or change vocab_size.")
    return GPT2Config(
        vocab_size=vocab_size,
        n_positions=model_args.n_positions,
        n_embd=model_args.n_embd,
        n_layer=model_args.n_layer,
        n_head=model_args.n_head,
        resid_pdrop=model_args.dropout,
        embd_pdrop=model_args.dropout,
        attn_pdrop=model_args.dropout,
        bos_token_id=SPECIAL_IDS["<s>"],
        eos_token_id=SPECIAL_IDS["</s>"],
        pad_token_id=SPECIAL_IDS["<pad>"],
        unk_token_id=SPECIAL_IDS["<unk>"],
        tokenizer_class="BertGenerationTokenizer",
    )


def generation_config(config):
    return GenerationConfig(**SAMPLING, max_new_tokens=100, bos_token_id=config.bos_token_id,
                            eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id)


def flops_per_token(config):
    """6N + 12·L·d·T (the PaLM / nanoGPT estimate): N counts the parameters that take part in matrix
    products, the tied token embedding once and position embeddings not; the second term is attention."""
    d, L, T = config.n_embd, config.n_layer, config.n_positions
    per_layer = 12 * d * d + 13 * d  # attention (4d² + 4d) and MLP (8d² + 5d) weights and biases, 2 layer norms
    n = config.vocab_size * d + L * per_layer + 2 * d
    return 6 * n + 12 * L * d * T


def device_peak_flops():
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)


# --- training ---------------------------------------------------------------------------------

class NonFiniteLoss(UserError):
    pass


class LMTrainer(Trainer):
    """Trainer that stops on a non-finite loss and logs tokens/s (and MFU on a known GPU), and the training
    time of the run so far, across resumes (`train_seconds`)."""

    def __init__(self, *args, tokens_per_step, flops_per_token, peak_flops, **kwargs):
        super().__init__(*args, **kwargs)
        self.tokens_per_step = tokens_per_step
        self.flops_per_token = flops_per_token
        self.peak_flops = peak_flops
        self._speed_mark = None
        self._session = None  # (start of this process's training, seconds of the sessions before it)

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self._session is None:  # the state of a resumed run is restored by now
            self._session = (time.perf_counter(), logged_seconds(self.state.log_history))
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss):
            checkpoint = last_complete_checkpoint(self.args.output_dir)
            for callback in self.callback_handler.callbacks:  # end the progress bar before the message
                if isinstance(callback, ProgressCallback) and callback.training_bar is not None:
                    callback.training_bar.close()
            raise NonFiniteLoss(
                f"The training loss became {loss.item()} at step {self.state.global_step + 1}; stopped without "
                f"saving. The last good checkpoint is {checkpoint or 'none'}: lower --learning_rate or raise "
                "--warmup_steps, then rerun to resume from it.")
        return loss

    def log(self, logs, start_time=None):
        if "loss" in logs:
            now, step = time.perf_counter(), self.state.global_step
            if self._speed_mark is not None and step > self._speed_mark[1]:
                tokens_per_second = (step - self._speed_mark[1]) * self.tokens_per_step / (now - self._speed_mark[0])
                logs["tokens_per_second"] = round(tokens_per_second, 1)
                if self.peak_flops:
                    logs["mfu"] = round(tokens_per_second * self.flops_per_token
                                        / (self.peak_flops * self.args.world_size), 4)
            self._speed_mark = (now, step)
            if self._session is not None:
                logs["train_seconds"] = round(self._session[1] + now - self._session[0], 2)
        super().log(logs, start_time)


def logged_seconds(log_history):
    return next((entry["train_seconds"] for entry in reversed(log_history) if "train_seconds" in entry), 0.0)


class RecordEveryCheckpoint(TrainerCallback):
    """Log the loss at every checkpoint and checkpoint the last step, whatever the recipe's intervals: the
    log history then covers every step exactly (train_loss over all steps, across resumes), and the final
    weights are on disk before the export, so a kill during export or evaluation loses nothing."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_save = True
        if control.should_save:
            control.should_log = True
        return control


class PreemptionCallback(TrainerCallback):
    """Inside `with`: on SIGTERM (a preempted job) or SIGINT (Ctrl-C), save a checkpoint at the end of the
    current step and stop; `received` is the signal's number.

    Leaving the block puts the previous handlers back: a process that goes on to fork workers (datasets'
    num_proc pools stop theirs with SIGTERM) must not hand them a handler that ignores it, or the pool
    waits for them forever."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received = 0
        self._previous_handlers = {}

    def __enter__(self):
        self._previous_handlers = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        return self

    def __exit__(self, *exc_info):
        for number, handler in self._previous_handlers.items():
            signal.signal(number, handler)

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and self.received == signal.SIGINT:  # a second Ctrl-C: a step may be stuck
            signal.signal(signal.SIGINT, self._previous_handlers[signal.SIGINT])
            raise KeyboardInterrupt
        self.received = max(self.received, signum)

    def on_step_end(self, args, state, control, **kwargs):
        stop = self.received
        if dist.is_available() and dist.is_initialized():
            # every process must agree, or one would wait forever for the others at the next step
            flag = torch.tensor([float(stop)], device=args.device if dist.get_backend() == "nccl" else "cpu")
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = int(flag.item())
        if stop:
            self.received = stop
            control.should_save = True
            control.should_training_stop = True
        return control


class SignalAtStep(TrainerCallback):
    """Sends this process a signal (SIGTERM) as step `step` begins, as a scheduler preempting the job would:
    PreemptionCallback then stops the run with checkpoint-`step`, whatever the order of the callbacks. The
    preemption drill of benchmarks/gpu_check.py and of the tests."""

    def __init__(self, step, signum=signal.SIGTERM):
        self.step, self.signum = step, signum

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step - 1:
            os.kill(os.getpid(), self.signum)


def make_trainer(config, attn_implementation, args, train_dataset, eval_dataset=None, callbacks=(), tokenizer=None):
    """A fresh GPT-2 of `config` in an LMTrainer: the training path of train.py (and of its benchmark). With a
    tokenizer, every checkpoint holds it too, so any checkpoint loads with pipeline("text-generation")."""
    model = GPT2LMHeadModel._from_config(config, attn_implementation=attn_implementation)
    model.generation_config = generation_config(config)
    tokens_per_step = (args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
                       * config.n_positions)
    return LMTrainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                     processing_class=tokenizer, data_collator=default_data_collator, callbacks=list(callbacks),
                     tokens_per_step=tokens_per_step,
                     flops_per_token=flops_per_token(config), peak_flops=device_peak_flops())


def run_identity(model_args, run_args, args, config):
    """What makes this run this run, by content: the data, the tokenizer, the model config and the recipe.
    A resume, a reuse of the finished model or a rerun compares it with the one recorded (as JSON holds it)."""
    identity = {
        **input_fingerprints(run_args.data_dir, run_args.tokenizer_dir),
        "config": {k: v for k, v in config.to_diff_dict().items() if k not in ("transformers_version", "use_cache")},
        "recipe": {k: v for k, v in recipe(model_args, args).items() if k not in IDENTITY_EXEMPT},
    }
    if args.max_steps > 0:  # Trainer ignores the epochs then
        del identity["recipe"]["num_train_epochs"]
    return json.loads(json.dumps(identity, default=str))


def recipe(model_args, args):
    """The settings that shape the training, whatever the number of processes (the global batch, not its split)."""
    return {**{key: getattr(args, key) for key in RECIPE_KEYS}, **asdict(model_args),
            "global_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps
            * args.world_size}


def differences(recorded, current):
    """What differs between two run identities, in words: "recipe (learning_rate 0.001 -> 0.0005)"."""
    keys = sorted(set(recorded) | set(current))
    changed = [k for k in keys if recorded.get(k) != current.get(k)]
    details = []
    for key in changed:
        if isinstance(current.get(key), dict) and isinstance(recorded.get(key), dict):
            inner = differences(recorded[key], current[key])
            details.append(f"{key} ({inner})")
        elif key in ("data", "tokenizer"):
            details.append(f"the {key}")
        else:
            details.append(f"{key} {recorded.get(key)!r} -> {current.get(key)!r}")
    return ", ".join(details)


def start_over(run):
    """--overwrite_output_dir: remove what train.py wrote in the run folder, and nothing else (the main
    process, holding the run's lock)."""
    for folder in (run.checkpoints, run.logs, run.model):
        shutil.rmtree(folder, ignore_errors=True)
    logger.info("--overwrite_output_dir: removed %s, %s and %s.", run.checkpoints, run.logs, run.model)


def checkpoint_to_resume(args, identity):
    """The last complete checkpoint of this run, after the main process removed any cut short; a checkpoint
    of another run (other data, tokenizer, config or recipe) is refused. A fresh run records its identity."""
    record = Path(args.output_dir, RUN_IDENTITY)
    if args.process_index == 0:
        remove_incomplete_checkpoints(args.output_dir)
    PartialState().wait_for_everyone()
    resume = last_complete_checkpoint(args.output_dir)
    if resume:
        recorded = read_json(record) if record.is_file() else None
        if recorded != identity:
            changed = differences(recorded or {}, identity) if recorded else "no record of its run"
            raise UserError(f"{resume} belongs to another run ({changed}); pass --overwrite_output_dir to start "
                            "over, or another --output_dir.")
        logger.info("Resuming from %s", resume)
    elif args.process_index == 0:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(identity, indent=2, default=str), encoding="utf-8")
    return resume


def finished_training(checkpoint):
    """Whether a checkpoint is the last step of its run (so a rerun goes straight to export)."""
    if checkpoint is None:
        return False
    state = read_json(Path(checkpoint, TRAINER_STATE))
    return state["global_step"] >= state["max_steps"] > 0


def fit(trainer, resume):
    """trainer.train(); on SIGTERM or SIGINT, stop the process with a checkpoint (exit 128 + the signal)."""
    preemption = next(c for c in trainer.callback_handler.callbacks if isinstance(c, PreemptionCallback))
    blocks_per_step = trainer.tokens_per_step // trainer.model.config.n_positions
    logger.info("%s parameters, %d tokens a step, %d steps an epoch", f"{trainer.model.num_parameters():,}",
                trainer.tokens_per_step, len(trainer.train_dataset) // blocks_per_step)
    with preemption:
        trainer.train(resume_from_checkpoint=resume)
    if preemption.received:
        # Each rank writes its own RNG state into the checkpoint; once one rank exits, torchrun
        # stops the others with SIGTERM, which kills them outside training: all must finish writing first.
        PartialState().wait_for_everyone()
        name = signal.Signals(preemption.received).name
        logger.warning("Stopped by %s at step %d with a checkpoint saved; rerun the same command to resume.",
                       name, trainer.state.global_step)
        sys.exit(128 + preemption.received)


def train_metrics(checkpoint, train_tokens):
    """Loss and time of the whole run from the final checkpoint's log history, which covers every step
    (RecordEveryCheckpoint), across every resume: the same figures as an uninterrupted run's."""
    state = read_json(Path(checkpoint, TRAINER_STATE))
    losses = sorted((entry["step"], entry["loss"]) for entry in state["log_history"] if "loss" in entry)
    total, previous = 0.0, 0
    for step, loss in losses:
        total += loss * (step - previous)
        previous = step
    steps = state["global_step"]
    return {"train_loss": total / steps, "train_steps": steps, "epoch": state["epoch"],
            "train_runtime": logged_seconds(state["log_history"]), "train_tokens": train_tokens}


# --- the model folder ---------------------------------------------------------------------------

def run_info(model_args, run_args, args, token_counts, identity):
    """What the model card reports of this run: data, tokenizer, recipe, hardware."""
    devices = ([torch.cuda.get_device_name()] * args.world_size if torch.cuda.is_available()
               else [f"CPU ({os.cpu_count()} cores)"] * args.world_size)
    return RunInfo(
        data=Preparation.load(run_args.data_dir),
        tokens=token_counts,
        tokenizer=read_tokenizer_report(run_args.tokenizer_dir),
        recipe={**recipe(model_args, args), "per_device_train_batch_size": args.per_device_train_batch_size,
                "gradient_accumulation_steps": args.gradient_accumulation_steps},
        hardware={"processes": args.world_size, "devices": devices},
        versions={"torch": torch.__version__, "transformers": transformers.__version__},
        identity=identity,
    )


def export_model(checkpoint, model_args, run_args, info, staging):
    """The final checkpoint's weights and configs, the tokenizer (its model_max_length the model's context)
    and run_info.json: the same folder whether training just ended or ended before a kill."""
    now = input_fingerprints(run_args.data_dir, run_args.tokenizer_dir)
    replaced = [f"the {name}" for name, fingerprint in now.items() if fingerprint != info.identity[name]]
    if replaced:
        raise UserError(f"{' and '.join(replaced)} of this run changed while it trained (another step rewrote "
                        f"{run_args.tokenizer_dir if 'the tokenizer' in replaced else run_args.data_dir}); the "
                        "weights belong to the old one: put it back, or train again with --overwrite_output_dir.")
    model = GPT2LMHeadModel.from_pretrained(checkpoint)
    model.config.use_cache = True  # Trainer turns the KV cache off for training; generation wants it
    model.save_pretrained(str(staging))
    load_tokenizer(run_args.tokenizer_dir, model_max_length=model_args.n_positions).save_pretrained(str(staging))
    shutil.copy(Path(run_args.tokenizer_dir, "tokenizer.json"), staging / "tokenizer.json")
    shutil.copy(Path(checkpoint, TRAINER_STATE), staging / TRAINER_STATE)
    info.save(staging)


def evaluate_into(trainer, staging, run_args, token_counts):
    """Score the exported model on the whole validation and test splits and on the out-of-domain text (loss,
    perplexity, bits per character, <unk> share); results beside it."""
    import evaluate
    scored = [(prefix, split, load_split(run_args.data_dir, split)["text"])
              for split, prefix in RESULT_PREFIXES.items() if token_counts[split]["articles"]]
    if run_args.out_of_domain_text:
        text = Path(run_args.out_of_domain_text).read_text(encoding="utf-8").replace("\r\n", "\n").strip()
        scored.append((OOD_PREFIX, f"out of domain ({Path(run_args.out_of_domain_text).name})", [text]))
    metric = evaluate.load(str(EVAL_METRIC))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for prefix, label, texts in scored:
        scores = metric.compute(predictions=list(texts), model_id=str(staging),
                                batch_size=run_args.final_eval_batch_size, device=device)
        trainer.save_metrics(prefix, {f"{prefix}_{k}": v for k, v in scores.items()})
        logger.info("%s: %s", label, scores)
    for name in RESULT_FILES:
        if Path(trainer.args.output_dir, name).is_file():
            shutil.copy(Path(trainer.args.output_dir, name), staging / name)


# --- the job --------------------------------------------------------------------------------------

def check_run_folder(run):
    """train.py owns checkpoints/, logs/ and model/ of its run folder: refuse folders of those names that
    hold anything else (a checkpoints/ of its own holds run_identity.json from its first step on)."""
    holds_own_output(run.checkpoints, RUN_IDENTITY, "--output_dir")
    holds_own_output(run.model, RUN_INFO, "--output_dir")
    if run.logs.exists() and any(run.logs.iterdir()) and not (run.checkpoints / RUN_IDENTITY).is_file():
        raise UserError(f"--output_dir {run.root} holds a logs/ folder that train.py did not write; pass a new "
                        "or empty run folder.")


@contextmanager
def run_lock(run, args):
    """The main process holds the model folder's lock for the whole job and yields its scratch folder; a
    second run on this folder is refused in one sentence by every process, not by the main one alone."""
    with ExitStack() as stack:
        refusal, staging = [None], None
        if args.process_index == 0:
            try:
                staging = stack.enter_context(writing(run.model))
            except UserError as error:
                refusal = [str(error)]
        if args.world_size > 1:
            dist.broadcast_object_list(refusal, src=0)
        if refusal[0]:
            raise UserError(refusal[0])
        yield staging


def reuse_finished(run, identity, overwrite):
    """The finished model of this very run, to reuse; another run's needs --overwrite_output_dir."""
    if not is_finished_model(run.model) or overwrite:
        return False
    info = RunInfo.load(run.model)
    if info is not None and info.identity == identity:
        logger.info("%s already holds the model of this run; reusing it (pass --overwrite_output_dir to train "
                    "again).", run.model)
        return True
    changed = differences(info.identity, identity) if info else "written by an older version"
    raise UserError(f"{run.model} holds the model of another run ({changed}); pass --overwrite_output_dir to "
                    "train again, or another --output_dir.")


def train(model_args, run_args, given, run, callbacks=()):
    check_run_folder(run)
    tokenizer = load_tokenizer(run_args.tokenizer_dir, model_max_length=model_args.n_positions)
    config = build_config(model_args, len(tokenizer))
    if run_args.global_batch_size is not None:  # refuse a batch that cannot be split before any work
        split_global_batch(run_args.global_batch_size, given.per_device_train_batch_size, given.world_size)
    set_seed(given.seed)

    with given.main_process_first(local=False, desc="tokenizing"):
        cache, meta = prepare_tokens(run_args.data_dir, run_args.tokenizer_dir)
    train_blocks, eval_blocks = load_blocks(cache, meta, model_args.n_positions, run_args.max_eval_blocks)
    args = training_arguments(given, run_args, run, evaluate=len(eval_blocks) > 0)
    identity = run_identity(model_args, run_args, args, config)

    with run_lock(run, args) as staging, space_errors(run.root):
        if reuse_finished(run, identity, run_args.overwrite_output_dir):
            return run.model
        if run_args.overwrite_output_dir and args.process_index == 0:
            start_over(run)
        resume = checkpoint_to_resume(args, identity)
        trainer = make_trainer(config, model_args.attn_implementation, args, train_blocks,
                               eval_blocks if len(eval_blocks) else None,
                               [PreemptionCallback(), RecordEveryCheckpoint(), *callbacks], tokenizer)
        if finished_training(resume):
            logger.info("%s is the last step of this run: exporting it.", resume)
        else:
            fit(trainer, resume)
        final = last_complete_checkpoint(args.output_dir)
        trainer.save_metrics("train", train_metrics(final, meta["splits"]["train"]["tokens"]))
        if args.process_index == 0:
            export_model(final, model_args, run_args, run_info(model_args, run_args, args, meta["splits"], identity),
                         staging)
            evaluate_into(trainer, staging, run_args, meta["splits"])
            move_into_place(staging, run.model, RUN_INFO)
            logger.info("Wrote %s", run.model)
    PartialState().wait_for_everyone()
    return run.model


def main(argv=None, callbacks=()):
    """Train as the command line says; `callbacks` are extra TrainerCallbacks (for tests and tools)."""
    model_args, run_args, given = parse_arguments(argv)
    return train(model_args, run_args, given, RunFolder(given.output_dir or DEFAULT_RUN_DIR), callbacks)


if __name__ == "__main__":
    run_main(main)
