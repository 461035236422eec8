"""Train GPT-2 small on the prepared articles with Trainer; evaluate; save the final model.

    accelerate launch --config_file accelerate_config.yaml train.py                   # the reference recipe
    accelerate launch --config_file accelerate_config.yaml train.py configs/fast.yaml # our GPU recipe
    python train.py configs/tiny.yaml --data_dir D --tokenizer_dir T --output_dir O  # minutes on a CPU
    python train.py configs/continue.yaml --model_name_or_path USER/MODEL --data_dir D # continue a published model

A recipe (YAML) gives the defaults and flags override them; with no recipe,
configs/reference.yaml is used. Everything goes under --output_dir:
token_cache/ (the splits as token ids), checkpoints/ (Trainer's, resumable),
logs/ (TensorBoard), model/ (the final model with its tokenizer and
*_results.json). Rerunning the same command resumes from the last complete
checkpoint.
"""

import gpt2ja.interrupts  # noqa: F401  (first: Ctrl-C while the libraries below load ends in one line)
import dataclasses
import logging
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from accelerate import PartialState
from transformers import (GenerationConfig, GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments,
                          default_data_collator, set_seed)

from gpt2ja import base_model, cpu_memory, precision, training_run
from gpt2ja.cli import RECIPE_SUFFIXES, flags_named, parse_args, run_main
from gpt2ja.errors import UserError
from gpt2ja.preemption import NonFiniteWatch, PreemptionCallback, RecordEveryCheckpoint, StopAtEvalLoss
from gpt2ja.rerun import disk_space_errors, read_json
from gpt2ja.model_folder import OOD_PREFIX, RESULT_FILES, RESULT_PREFIXES, final_scores_to_tensorboard
from gpt2ja.run_folder import TRAINER_STATE, RunFolder, last_complete_checkpoint, logged_seconds, train_metrics
from gpt2ja.settings import DEFAULT_RUN_DIR, REFERENCE_CONTEXT, REFERENCE_RECIPE, SAMPLING, SPECIAL_IDS, bundled
from gpt2ja.speed import attention_backends, device_peak_flops, flops_per_token, sdpa_order
from gpt2ja.splits import load_split
from gpt2ja.tokenizer_folder import load_tokenizer, tokenizers_twin
from gpt2ja.tokens import load_blocks, prepare_tokens

logger = logging.getLogger("train")

EVAL_METRIC = bundled("metrics") / "causal_lm_eval"
OUT_OF_DOMAIN_TEXT = bundled("metrics") / "out_of_domain" / "soseki_bocchan.txt"


# Trainer's settings that train.py decides itself: hidden from --help, refused when given.
NOT_TAKEN = {
    "do_train": "train.py always trains (or resumes, or reuses a finished run)",
    "do_eval": "train.py evaluates every --eval_steps when the validation split holds a block, and scores the "
               "whole validation and test splits at the end",
    "do_predict": "train.py scores the test split at the end",
    "logging_nan_inf_filter": "a loss that is not finite stops the run; it is never averaged away",
    "hub_token": "a token given as a flag would be pickled into every checkpoint (training_args.bin); set HF_TOKEN "
                 "or run `hf auth login` instead",
    "save_only_model": "a checkpoint without the optimizer, scheduler and random states cannot go on as the same run, "
                       "and every checkpoint of train.py is one to resume from",
}


# --- arguments --------------------------------------------------------------------------------

@dataclass
class ModelArguments:
    model_name_or_path: Optional[str] = field(default=None, metadata={
        "help": "Continue a published GPT-2 with a SentencePiece tokenizer (a Hub repo id or a model folder): its "
                "architecture and tokenizer are used. Default: random weights of the architecture below."})
    model_revision: Optional[str] = field(default=None, metadata={
        "help": "Branch, tag or commit of --model_name_or_path on the Hub (default: main, recorded as its commit)."})
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
        if self.model_name_or_path is not None and not self.model_name_or_path.strip():
            raise ValueError("--model_name_or_path is empty; name a Hub repo id or a model folder, or leave the flag "
                             "out to train from random weights")
        if self.model_revision and not self.model_name_or_path:
            raise ValueError(f"--model_revision {self.model_revision} goes with --model_name_or_path")
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
class DataTrainingArguments:
    data_dir: str = field(default=str(RunFolder(DEFAULT_RUN_DIR).data), metadata={
        "help": "The DatasetDict from prepare_data.py."})
    tokenizer_dir: str = field(default=str(RunFolder(DEFAULT_RUN_DIR).tokenizer), metadata={
        "help": "The tokenizer folder from tokenizer.py."})
    token_cache_dir: Optional[str] = field(default=None, metadata={
        "help": "Where the splits are kept as token ids, in a folder named by the content of the data and the "
                "tokenizer (default: token_cache/ of the run folder); name one folder for several runs on the "
                "same data and tokenizer to tokenize once."})
    max_eval_blocks: Optional[int] = field(default=None, metadata={
        "help": "Blocks of validation used by the evaluations during training (all of them when unset); the "
                "final evaluation always uses the whole validation and test splits."})
    final_eval_batch_size: int = field(default=8, metadata={"help": "Batch size of the final evaluation."})
    out_of_domain_text: str = field(default=str(OUT_OF_DOMAIN_TEXT), metadata={
        "help": "A UTF-8 text scored at the end beside the splits, as out-of-domain figures (ood_* in "
                "all_results.json); by default a public-domain Soseki novel. Pass '' to skip it."})

    def __post_init__(self):
        if self.max_eval_blocks is not None and self.max_eval_blocks < 1:
            raise ValueError(f"--max_eval_blocks must be 1 or more, not {self.max_eval_blocks}")
        if self.final_eval_batch_size < 1:
            raise ValueError(f"--final_eval_batch_size must be 1 or more, not {self.final_eval_batch_size}")
        if self.out_of_domain_text and not Path(self.out_of_domain_text).is_file():
            raise ValueError(f"--out_of_domain_text {self.out_of_domain_text} is not a file (pass '' to skip it)")


@dataclass
class LMTrainingArguments(TrainingArguments):
    """Trainer's arguments, and what train.py adds: the global batch, starting over, stopping early, attention."""

    global_batch_size: Optional[int] = field(default=None, metadata={
        "help": "Sequences per optimizer step over all processes. The recipe fixes it; per-device batch (at most "
                "--per_device_train_batch_size) and accumulation steps are derived from the number of processes."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Start over: remove the checkpoints, logs and model that train.py wrote in --output_dir before. "
                "Without it, a rerun resumes the same run and refuses a run folder of other settings."})
    stop_at_eval_loss: Optional[float] = field(default=None, metadata={
        "help": "End the run, with a checkpoint and the final model, at the first evaluation whose validation "
                "loss is at most this (a run stopped so is finished; a rerun with a lower value goes on)."})
    sdpa_backends: Optional[str] = field(default=None, metadata={
        "help": "The kernels PyTorch's fused attention (sdpa) tries, in this order, as a comma list of cudnn, flash, "
                "efficient, math (e.g. cudnn,flash,efficient,math); default: PyTorch's order. Speed only."})

    def __post_init__(self):
        precision.fit_to_the_machine(self)
        super().__post_init__()
        precision.no_mixed_precision_on_the_cpu(self)
        if self.global_batch_size is not None and self.global_batch_size < 1:
            raise ValueError(f"--global_batch_size must be 1 or more, not {self.global_batch_size}")
        sdpa_order(self.sdpa_backends)  # refuses an unknown name


def parse_arguments(argv=None):
    """(ModelArguments, DataTrainingArguments, LMTrainingArguments as given); configs/reference.yaml without a
    recipe."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not (argv and argv[0].endswith(RECIPE_SUFFIXES)):
        argv.insert(0, str(REFERENCE_RECIPE))
    model_args, data_args, given = parse_args([ModelArguments, DataTrainingArguments, LMTrainingArguments], argv,
                                              description=__doc__, not_taken=NOT_TAKEN)
    if given.global_batch_size is not None and given.gradient_accumulation_steps != 1:
        raise UserError(f"--gradient_accumulation_steps is derived from --global_batch_size "
                        f"({given.global_batch_size}), the number of processes and --per_device_train_batch_size "
                        "(the most a device takes); change those instead.")
    if given.max_steps == 0 or given.max_steps < -1:
        raise UserError(f"--max_steps must be 1 or more (or -1: the recipe's epochs), not {given.max_steps}.")
    if given.num_train_epochs <= 0 and given.max_steps == -1:
        raise UserError(f"--num_train_epochs must be more than 0, not {given.num_train_epochs}.")
    return model_args, data_args, given


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


def training_arguments(given, run, evaluate):
    """The TrainingArguments the Trainer gets, built once from the user's with what train.py decides:
    the batch split over the processes, the run folder's layout, and whether there is anything to evaluate."""
    batch = {}
    if given.global_batch_size is not None:
        per_device, accumulation = split_global_batch(given.global_batch_size, given.per_device_train_batch_size,
                                                      given.world_size)
        batch = {"per_device_train_batch_size": per_device, "gradient_accumulation_steps": accumulation}
        logger.info("Global batch %d sequences = %d processes x %d per device x %d accumulation steps.",
                    given.global_batch_size, given.world_size, per_device, accumulation)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.logs)  # Trainer's TensorBoard callback reads it
    if "tensorboard" in (given.report_to or []):
        run.logs.mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(
        given, **batch,
        output_dir=str(run.checkpoints),
        eval_strategy=given.eval_strategy if evaluate else "no",
        logging_nan_inf_filter=False,  # a non-finite loss must stop the run, not be averaged away
    )


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


# --- training ---------------------------------------------------------------------------------

class LMTrainer(Trainer):
    """Trainer that stops on a non-finite loss (before any checkpoint of it) and logs tokens/s (and MFU on a known
    GPU), and the training time of the run so far, across resumes (`train_seconds`)."""

    def __init__(self, *args, tokens_per_step, flops_per_token, peak_flops, **kwargs):
        super().__init__(*args, **kwargs)
        self.tokens_per_step = tokens_per_step
        self.flops_per_token = flops_per_token
        self.peak_flops = peak_flops
        self._speed_mark = None
        self._session = None  # (start of this process's training, seconds of the sessions before it)
        self.nonfinite = NonFiniteWatch()

    @property
    def stepped(self):
        """Whether this process has begun a training step (so a resumed checkpoint loaded)."""
        return self._session is not None

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self._session is None:  # the state of a resumed run is restored by now
            self._session = (time.perf_counter(), logged_seconds(self.state.log_history))
        with attention_backends(self.args.sdpa_backends):
            loss = super().training_step(model, inputs, num_items_in_batch)
        self.nonfinite.note(loss, self.state.global_step + 1)  # read at logs and before checkpoints, not here
        return loss

    def prediction_step(self, *args, **kwargs):
        with attention_backends(self.args.sdpa_backends):
            return super().prediction_step(*args, **kwargs)

    def _save_checkpoint(self, model, trial):
        self.nonfinite.stop_if_seen(self.args.output_dir, self.callback_handler.callbacks)  # whoever asked to save
        super()._save_checkpoint(model, trial)

    def log(self, logs, start_time=None):
        self.nonfinite.stop_if_seen(self.args.output_dir, self.callback_handler.callbacks)  # the host waits here
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


def make_trainer(config, attn_implementation, args, train_dataset, eval_dataset=None, callbacks=(), tokenizer=None,
                 weights=None):
    """A GPT-2 of `config` in an LMTrainer, fresh or with a model folder's weights: train.py's training path (and its
    benchmark's). With a tokenizer, every checkpoint holds it, so any checkpoint loads with pipeline()."""
    model = (GPT2LMHeadModel.from_pretrained(weights, config=config, attn_implementation=attn_implementation,
                                             dtype=torch.float32) if weights
             else GPT2LMHeadModel._from_config(config, attn_implementation=attn_implementation))
    model.generation_config = generation_config(config)
    model.loss_type = "ForCausalLM"  # what transformers finds by class name, and GPT2LMHeadModel's is no such name
    tokens_per_step = (args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
                       * config.n_positions)
    return LMTrainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                     processing_class=tokenizer, data_collator=default_data_collator, callbacks=list(callbacks),
                     tokens_per_step=tokens_per_step,
                     flops_per_token=flops_per_token(config), peak_flops=device_peak_flops())


def fit(trainer, checkpoint):
    """trainer.train() from `checkpoint` (None: from the start); on SIGTERM or SIGINT, stop the process with a
    checkpoint (exit 128 + the signal)."""
    preemption = next(c for c in trainer.callback_handler.callbacks if isinstance(c, PreemptionCallback))
    blocks_per_step = trainer.tokens_per_step // trainer.model.config.n_positions
    logger.info("%s parameters, %d tokens a step, %d steps an epoch", f"{trainer.model.num_parameters():,}",
                trainer.tokens_per_step, len(trainer.train_dataset) // blocks_per_step)
    with preemption:
        try:
            trainer.train(resume_from_checkpoint=checkpoint)
        except Exception as error:
            damaged = checkpoint and not trainer.stepped and training_run.damaged_checkpoint(checkpoint, error)
            if damaged:
                raise damaged from None
            raise
    if preemption.received:
        # Each rank writes its own RNG state into the checkpoint; once one rank exits, torchrun
        # stops the others with SIGTERM, which kills them outside training: all must finish writing first.
        PartialState().wait_for_everyone()
        name = signal.Signals(preemption.received).name
        logger.warning("Stopped by %s at step %d with a checkpoint saved; rerun the same command to resume.",
                       name, trainer.state.global_step)
        sys.exit(128 + preemption.received)


# --- the model folder ---------------------------------------------------------------------------

def export_model(checkpoint, tokenizer_dir, staging):
    """The final checkpoint's weights and configs, the tokenizer (its model_max_length the model's context)
    and the run's trainer_state.json: the same folder whether training just ended or ended before a kill."""
    model = GPT2LMHeadModel.from_pretrained(checkpoint)
    model.config.use_cache = True  # Trainer turns the KV cache off for training; generation wants it
    model.save_pretrained(str(staging))
    tokenizer = load_tokenizer(tokenizer_dir, model_max_length=model.config.n_positions)
    tokenizer.save_pretrained(str(staging))
    for name in ("spiece.model", "tokenizer.json"):  # as they are (a base model's tokenizer may save neither)
        if Path(tokenizer_dir, name).is_file():
            shutil.copy(Path(tokenizer_dir, name), staging / name)
    if not (staging / "tokenizer.json").is_file():  # a base without one (a checkpoint's): built as tokenizer.py does
        tokenizers_twin(staging / "spiece.model", tokenizer.all_special_tokens).save(str(staging / "tokenizer.json"))
    shutil.copy(Path(checkpoint, TRAINER_STATE), staging / TRAINER_STATE)


def evaluate_into(trainer, staging, data_args, token_counts):
    """Score the exported model on the whole validation and test splits and on the out-of-domain text (loss,
    perplexity, bits per character, <unk> share); results beside it."""
    import evaluate
    scored = [(prefix, split, load_split(data_args.data_dir, split)["text"])
              for split, prefix in RESULT_PREFIXES.items() if token_counts[split]["articles"]]
    if data_args.out_of_domain_text:
        text = Path(data_args.out_of_domain_text).read_text(encoding="utf-8").replace("\r\n", "\n").strip()
        scored.append((OOD_PREFIX, f"out of domain ({Path(data_args.out_of_domain_text).name})", [text]))
    metric = evaluate.load(str(EVAL_METRIC))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    final = {}
    for prefix, label, texts in scored:
        scores = metric.compute(predictions=list(texts), model_id=str(staging),
                                batch_size=data_args.final_eval_batch_size, device=device)
        final |= {f"{prefix}_{k}": v for k, v in scores.items()}
        trainer.save_metrics(prefix, {f"{prefix}_{k}": v for k, v in scores.items()})
        logger.info("%s: %s", label, scores)
    final_scores_to_tensorboard(trainer.args, read_json(staging / TRAINER_STATE)["global_step"], final)
    for name in RESULT_FILES:
        if Path(trainer.args.output_dir, name).is_file():
            shutil.copy(Path(trainer.args.output_dir, name), staging / name)


# --- the job --------------------------------------------------------------------------------------

def train(model_args, data_args, given, run, callbacks=(), named=frozenset()):
    """The run the arguments describe (never rewritten; `named`: the flags the command line names)."""
    training_run.check_run_folder(run)
    base = base_model.start_from(model_args, named, given, run)  # None: random weights
    tokenizer_dir = str(base.folder) if base else data_args.tokenizer_dir
    if base:
        logger.info("Continuing %s: its weights, its architecture and its tokenizer are the run's; the recipe "
                    "gives the rest.", base.name)
    context = base.config().n_positions if base else model_args.n_positions
    tokenizer = load_tokenizer(tokenizer_dir, model_max_length=context)
    config = base.training_config(model_args.dropout, tokenizer) if base else build_config(model_args, len(tokenizer))
    if given.global_batch_size is not None:  # refuse a batch that cannot be split before any work
        split_global_batch(given.global_batch_size, given.per_device_train_batch_size, given.world_size)
    set_seed(given.seed)
    if given.device.type == "cpu":
        cpu_memory.keep_freed_memory()

    with given.main_process_first(local=False, desc="tokenizing"):
        cache, meta = prepare_tokens(data_args.data_dir, tokenizer_dir, data_args.token_cache_dir or run.token_cache,
                                     "--token_cache_dir" if data_args.token_cache_dir else "--output_dir")
    train_blocks, eval_blocks = load_blocks(cache, meta, config.n_positions, data_args.max_eval_blocks)
    args = training_arguments(given, run, evaluate=len(eval_blocks) > 0)
    identity = training_run.run_identity(model_args, args, config, data_args.data_dir, tokenizer_dir, base)
    defaults = training_run.identity_defaults(model_args, args, identity)

    with training_run.run_lock(run, args) as build, disk_space_errors(run.root):
        if training_run.reuse_finished(run, identity, defaults, given.overwrite_output_dir, given.stop_at_eval_loss):
            return run.model
        if given.overwrite_output_dir and args.process_index == 0:
            training_run.start_over(run)
        checkpoint = training_run.checkpoint_to_resume(args, identity, defaults)
        trainer = make_trainer(config, model_args.attn_implementation, args, train_blocks,
                               eval_blocks if len(eval_blocks) else None,
                               [PreemptionCallback(), RecordEveryCheckpoint(), StopAtEvalLoss(given.stop_at_eval_loss),
                                *callbacks], tokenizer, weights=base and base.folder)
        if training_run.finished_training(checkpoint, given.stop_at_eval_loss):
            logger.info("%s is the last step of this run: exporting it.", checkpoint)
            final = checkpoint
        else:
            fit(trainer, checkpoint)
            final = last_complete_checkpoint(args.output_dir)
        trainer.save_metrics("train", train_metrics(final, meta.splits["train"]["tokens"]))
        if args.process_index == 0:
            training_run.check_inputs_unchanged(identity, data_args.data_dir, tokenizer_dir)
            export_model(final, tokenizer_dir, build.output)
            evaluate_into(trainer, build.output, data_args, meta.splits)
            build.finish(training_run.run_info(model_args, args, config, data_args.data_dir, tokenizer_dir, meta.splits,
                                         identity, base))
            logger.info("Wrote %s", run.model)
    PartialState().wait_for_everyone()
    return run.model


def main(argv=None, callbacks=()):
    """Train as the command line says; `callbacks` are extra TrainerCallbacks (for tests and tools)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    model_args, data_args, given = parse_arguments(argv)
    return train(model_args, data_args, given, RunFolder(given.output_dir or DEFAULT_RUN_DIR), callbacks,
                 named=frozenset(flags_named(argv)))


if __name__ == "__main__":
    run_main(main)
