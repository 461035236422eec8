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
import logging
import math
import os
import shutil
import signal
import sys
import time
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
from gpt2ja.run_folder import (RESULT_FILES, RESULT_PREFIXES, TRAINER_STATE, RunFolder, RunInfo, is_finished_model,
                               last_complete_checkpoint, move_into_place, remove_incomplete_checkpoints)
from gpt2ja.settings import DEFAULT_RUN_DIR, REFERENCE_CONTEXT, REFERENCE_RECIPE, REPO_ROOT, SAMPLING, SPECIAL_IDS
from gpt2ja.splits import Preparation, load_split
from gpt2ja.tokens import TokenBlocks, load_tokenizer, prepare_tokens, read_tokenizer_report

logger = logging.getLogger("train")

EVAL_METRIC = REPO_ROOT / "metrics" / "causal_lm_eval"
# The TrainingArguments that make the recipe, recorded in run_info.json for the model card.
RECIPE_KEYS = ("num_train_epochs", "max_steps", "learning_rate", "lr_scheduler_type", "warmup_steps", "optim",
               "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "bf16", "fp16",
               "torch_compile", "seed")
SIGTERM_EXIT_CODE = 143  # 128 + SIGTERM: what schedulers expect of a job stopped by its signal

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


def parse_arguments(argv=None):
    """(ModelArguments, RunArguments, TrainingArguments as given); configs/reference.yaml without a recipe."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not (argv and argv[0].endswith(RECIPE_SUFFIXES)):
        argv.insert(0, str(REFERENCE_RECIPE))
    return parse_args([ModelArguments, RunArguments, TrainingArguments], argv, description=__doc__)


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
    """Trainer that stops on a non-finite loss and logs tokens/s (and MFU on a known GPU)."""

    def __init__(self, *args, tokens_per_step, flops_per_token, peak_flops, **kwargs):
        super().__init__(*args, **kwargs)
        self.tokens_per_step = tokens_per_step
        self.flops_per_token = flops_per_token
        self.peak_flops = peak_flops
        self._speed_mark = None

    def training_step(self, model, inputs, num_items_in_batch=None):
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
        super().log(logs, start_time)


class PreemptionCallback(TrainerCallback):
    """Inside `with`: on SIGTERM (a preempted job), save a checkpoint at the end of the current step and stop.

    Leaving the block puts the previous handler back: a process that goes on to fork workers (datasets'
    num_proc pools stop theirs with SIGTERM) must not hand them a handler that ignores it, or the pool
    waits for them forever."""

    def __init__(self):
        self.received = False
        self._previous_handler = None

    def __enter__(self):
        self._previous_handler = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc_info):
        signal.signal(signal.SIGTERM, self._previous_handler)

    def _handle(self, signum, frame):
        self.received = True

    def on_step_end(self, args, state, control, **kwargs):
        stop = self.received
        if dist.is_available() and dist.is_initialized():
            # every process must agree, or one would wait forever for the others at the next step
            flag = torch.tensor([float(stop)], device=args.device if dist.get_backend() == "nccl" else "cpu")
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        if stop:
            self.received = True
            control.should_save = True
            control.should_training_stop = True
        return control


def make_trainer(config, attn_implementation, args, train_dataset, eval_dataset=None, callbacks=()):
    """A fresh GPT-2 of `config` in an LMTrainer: the training path of train.py (and of its benchmark)."""
    model = GPT2LMHeadModel._from_config(config, attn_implementation=attn_implementation)
    model.generation_config = generation_config(config)
    tokens_per_step = (args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
                       * config.n_positions)
    return LMTrainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                     data_collator=default_data_collator, callbacks=list(callbacks), tokens_per_step=tokens_per_step,
                     flops_per_token=flops_per_token(config), peak_flops=device_peak_flops())


def checkpoint_to_resume(args, vocab_size, tokenizer_dir):
    """The last complete checkpoint of this run, after the main process removed any cut short."""
    if args.process_index == 0:
        remove_incomplete_checkpoints(args.output_dir)
    PartialState().wait_for_everyone()
    resume = last_complete_checkpoint(args.output_dir)
    if resume:
        saved = GPT2Config.from_pretrained(resume)
        if saved.vocab_size != vocab_size:
            raise UserError(f"{resume} was trained with a vocabulary of {saved.vocab_size}, but {tokenizer_dir}"
                            f" holds {vocab_size} entries; point --tokenizer_dir at the run's tokenizer.")
        logger.info("Resuming from %s", resume)
    return resume


def fit(trainer, resume):
    """trainer.train(), stopping the process with a checkpoint (exit 143) when SIGTERM arrives."""
    preemption = PreemptionCallback()
    trainer.add_callback(preemption)
    blocks_per_step = trainer.tokens_per_step // trainer.model.config.n_positions
    logger.info("%s parameters, %d tokens a step, %d steps an epoch", f"{trainer.model.num_parameters():,}",
                trainer.tokens_per_step, len(trainer.train_dataset) // blocks_per_step)
    with preemption:
        result = trainer.train(resume_from_checkpoint=resume)
    if preemption.received:
        # Each rank writes its own RNG state into the checkpoint; once one rank exits, torchrun
        # stops the others with SIGTERM, which kills them outside training: all must finish writing first.
        PartialState().wait_for_everyone()
        logger.warning("Stopped by SIGTERM at step %d with a checkpoint saved; rerun the same command to resume.",
                       trainer.state.global_step)
        sys.exit(SIGTERM_EXIT_CODE)
    return result


# --- the model folder ---------------------------------------------------------------------------

def run_info(model_args, run_args, args, token_counts):
    """What the model card reports of this run: data, tokenizer, recipe, hardware."""
    recipe = {key: getattr(args, key) for key in RECIPE_KEYS}
    recipe.update(asdict(model_args), global_batch_size=args.per_device_train_batch_size
                  * args.gradient_accumulation_steps * args.world_size,
                  per_device_train_batch_size=args.per_device_train_batch_size,
                  gradient_accumulation_steps=args.gradient_accumulation_steps)
    devices = ([torch.cuda.get_device_name()] * args.world_size if torch.cuda.is_available()
               else [f"CPU ({os.cpu_count()} cores)"] * args.world_size)
    return RunInfo(
        data=Preparation.load(run_args.data_dir),
        tokens=token_counts,
        tokenizer=read_tokenizer_report(run_args.tokenizer_dir),
        recipe=recipe,
        hardware={"processes": args.world_size, "devices": devices},
        versions={"torch": torch.__version__, "transformers": transformers.__version__},
    )


def export_model(trainer, model_args, run_args, token_counts, staging):
    """Weights, configs, the tokenizer (its model_max_length the model's context) and run_info.json."""
    shutil.rmtree(staging, ignore_errors=True)
    trainer.model.config.use_cache = True  # Trainer turns the KV cache off for training; generation wants it
    trainer.save_model(str(staging))
    load_tokenizer(run_args.tokenizer_dir, model_max_length=model_args.n_positions).save_pretrained(str(staging))
    shutil.copy(Path(run_args.tokenizer_dir, "tokenizer.json"), staging / "tokenizer.json")
    shutil.copy(Path(trainer.args.output_dir, TRAINER_STATE), staging / TRAINER_STATE)
    run_info(model_args, run_args, trainer.args, token_counts).save(staging)


def evaluate_final(model_dir, data_dir, split, batch_size):
    """Loss, perplexity and bits per character of the saved model on a whole split."""
    import evaluate
    metric = evaluate.load(str(EVAL_METRIC))
    texts = load_split(data_dir, split)["text"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return metric.compute(predictions=list(texts), model_id=str(model_dir), batch_size=batch_size, device=device)


def evaluate_into(trainer, staging, run_args, token_counts):
    """Score the exported model on the whole validation and test splits; results beside it."""
    for split, prefix in RESULT_PREFIXES.items():
        if token_counts[split]["articles"]:
            scores = evaluate_final(staging, run_args.data_dir, split, run_args.final_eval_batch_size)
            trainer.save_metrics(prefix, {f"{prefix}_{k}": v for k, v in scores.items()})
            logger.info("%s: %s", split, scores)
    for name in RESULT_FILES:
        if Path(trainer.args.output_dir, name).is_file():
            shutil.copy(Path(trainer.args.output_dir, name), staging / name)


# --- the job --------------------------------------------------------------------------------------

def train(model_args, run_args, given, run, callbacks=()):
    if is_finished_model(run.model):
        logger.info("%s already holds the trained model; reusing it (train again with another --output_dir, "
                    "or delete %s).", run.model, run.root)
        return run.model
    tokenizer = load_tokenizer(run_args.tokenizer_dir)
    config = build_config(model_args, len(tokenizer))
    set_seed(given.seed)

    with given.main_process_first(desc="tokenizing"):
        cache, meta = prepare_tokens(run_args.data_dir, run_args.tokenizer_dir)
    train_blocks, eval_blocks = load_blocks(cache, meta, model_args.n_positions, run_args.max_eval_blocks)
    args = training_arguments(given, run_args, run, evaluate=len(eval_blocks) > 0)

    resume = checkpoint_to_resume(args, len(tokenizer), run_args.tokenizer_dir)
    trainer = make_trainer(config, model_args.attn_implementation, args, train_blocks,
                           eval_blocks if len(eval_blocks) else None, callbacks)
    result = fit(trainer, resume)
    trainer.save_metrics("train", dict(result.metrics, train_tokens=meta["splits"]["train"]["tokens"]))
    trainer.save_state()

    staging = run.root / ".model.partial"
    if args.process_index == 0:
        export_model(trainer, model_args, run_args, meta["splits"], staging)
    PartialState().wait_for_everyone()
    if args.process_index == 0:
        evaluate_into(trainer, staging, run_args, meta["splits"])
        move_into_place(staging, run.model)
        logger.info("Wrote %s", run.model)
    return run.model


def main(argv=None, callbacks=()):
    """Train as the command line says; `callbacks` are extra TrainerCallbacks (for tests and tools)."""
    model_args, run_args, given = parse_arguments(argv)
    return train(model_args, run_args, given, RunFolder(given.output_dir or DEFAULT_RUN_DIR), callbacks)


if __name__ == "__main__":
    run_main(main)
