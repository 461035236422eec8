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

import hashlib
import json
import logging
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from itertools import chain
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist
import transformers
from tqdm.auto import tqdm
from transformers import (GenerationConfig, GPT2Config, GPT2LMHeadModel, ProgressCallback, Trainer, TrainerCallback,
                          TrainingArguments, default_data_collator, set_seed)

from common import (DEFAULT_RUN_DIR, RECIPE_SUFFIXES, REPO_ROOT, UserError, move_into_place, parse_args,
                    run_main)
from tokenizer import FastEncoder, load_split, load_tokenizer

logger = logging.getLogger("train")

REFERENCE_RECIPE = REPO_ROOT / "configs" / "reference.yaml"
TOKEN_CACHE = "token_cache"
EVAL_METRIC = REPO_ROOT / "metrics" / "causal_lm_eval"
RUN_INFO = "run_info.json"
# The TrainingArguments that make the recipe, recorded in run_info.json for the model card.
RECIPE_KEYS = ("num_train_epochs", "max_steps", "learning_rate", "lr_scheduler_type", "warmup_steps", "optim",
               "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "bf16", "fp16",
               "torch_compile", "seed")
SIGTERM_EXIT_CODE = 143  # 128 + SIGTERM: what schedulers expect of a job stopped by its signal

# Dense bf16 peak FLOP/s of one device, for MFU. Matched against torch.cuda.get_device_name().
PEAK_BF16_FLOPS = {"H200": 989e12, "H100 SXM": 989e12, "H100 NVL": 835e12, "H100 PCIe": 756e12, "H100": 989e12,
                   "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10G": 70e12, "RTX 4090": 165e12,
                   "RTX 3090": 71e12}


@dataclass
class ModelArguments:
    n_positions: int = field(default=1024, metadata={"help": "Context length, and the length of a training block."})
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
    data_dir: str = field(default=str(DEFAULT_RUN_DIR / "data"), metadata={
        "help": "The DatasetDict from prepare_data.py."})
    tokenizer_dir: str = field(default=str(DEFAULT_RUN_DIR / "tokenizer"), metadata={
        "help": "The tokenizer folder from tokenizer.py."})
    global_batch_size: Optional[int] = field(default=None, metadata={
        "help": "Sequences per optimizer step over all processes. The recipe fixes it; per-device batch (at most "
                "--per_device_train_batch_size) and accumulation steps are derived from the number of processes."})
    max_eval_blocks: Optional[int] = field(default=None, metadata={
        "help": "Blocks of validation used by the evaluations during training (all of them when unset); the "
                "final evaluation always uses the whole validation and test splits."})
    final_eval_batch_size: int = field(default=8, metadata={"help": "Batch size of the final evaluation."})


# --- data: the splits as one flat array of token ids each, cut into blocks --------------------------

def token_cache_dir(data_dir, tokenizer_dir):
    """A cache folder keyed by the prepared data and the tokenizer model."""
    key = hashlib.sha256()
    for path in sorted(Path(data_dir).rglob("*")):
        if TOKEN_CACHE in path.relative_to(data_dir).parts:
            continue  # the cache itself must not change its key
        if path.is_file() and path.suffix in (".arrow", ".json"):
            stat = path.stat()
            key.update(f"{path.relative_to(data_dir)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    key.update(Path(tokenizer_dir, "spiece.model").read_bytes())
    return Path(data_dir) / TOKEN_CACHE / key.hexdigest()[:16]


def token_dtype(vocab_size):
    return np.uint16 if vocab_size <= 2**16 else np.uint32


def tokenize_split(dataset, encoder, eos_id, path, dtype):
    """Encode every article, append </s>, write the ids end to end to `path`; return the counts."""
    partial = path.with_suffix(".partial")
    tokens = characters = 0
    with open(partial, "wb") as out, tqdm(total=len(dataset), desc=f"Tokenizing {path.stem}",
                                          unit=" articles") as progress:
        for batch in dataset.iter(batch_size=1000):
            ids = encoder(batch["text"])
            count = sum(len(x) for x in ids) + len(ids)
            flat = np.fromiter(chain.from_iterable(x + [eos_id] for x in ids), dtype=dtype, count=count)
            out.write(flat.tobytes())
            tokens += count
            characters += sum(len(t) for t in batch["text"])
            progress.update(len(ids))
    os.replace(partial, path)
    return {"articles": len(dataset), "tokens": tokens, "characters": characters}


def prepare_tokens(data_dir, tokenizer_dir, tokenizer):
    """Tokenize train / validation / test once; a rerun or a resumed run reads the cache."""
    cache = token_cache_dir(data_dir, tokenizer_dir)
    meta_path = cache / "meta.json"
    if meta_path.is_file():
        logger.info("Reusing the token cache %s", cache)
        return cache, json.loads(meta_path.read_text())
    cache.mkdir(parents=True, exist_ok=True)
    encoder = FastEncoder(tokenizer_dir)
    dtype = token_dtype(len(tokenizer))
    meta = {"dtype": np.dtype(dtype).name, "eos_token_id": tokenizer.eos_token_id, "splits": {}}
    for split in ("train", "validation", "test"):
        articles = load_split(data_dir, split, allow_empty=split != "train")
        meta["splits"][split] = tokenize_split(articles, encoder, tokenizer.eos_token_id, cache / f"{split}.bin",
                                               dtype)
    meta_path.write_text(json.dumps(meta, indent=2))
    return cache, meta


class TokenBlocks(torch.utils.data.Dataset):
    """Consecutive blocks of block_size tokens of a flat token file; the last partial block is dropped.
    Articles run on across blocks, separated by </s>: no padding, nothing lost but that tail."""

    def __init__(self, path, block_size, dtype, max_blocks=None):
        empty = Path(path).stat().st_size == 0  # numpy cannot map an empty file (an empty split)
        self.tokens = np.zeros(0, dtype=dtype) if empty else np.memmap(path, dtype=dtype, mode="r")
        self.block_size = block_size
        self.blocks = len(self.tokens) // block_size
        if max_blocks is not None:
            self.blocks = min(self.blocks, max_blocks)

    def __len__(self):
        return self.blocks

    def __getitem__(self, index):
        start = index * self.block_size
        ids = torch.from_numpy(self.tokens[start:start + self.block_size].astype(np.int64))
        labels = ids.clone()
        # The first token is never a target (the model shifts labels by one). Marking it -100 makes
        # Trainer's token count, which divides the summed loss, the number of real targets.
        labels[0] = -100
        return {"input_ids": ids, "labels": labels}


# --- model ------------------------------------------------------------------------------------

def build_config(model_args, tokenizer):
    if model_args.vocab_size is not None and model_args.vocab_size != len(tokenizer):
        raise UserError(f"The tokenizer holds {len(tokenizer)} entries but the recipe's vocab_size is "
                        f"{model_args.vocab_size}; train the tokenizer with --vocab_size {model_args.vocab_size} "
                        "or change vocab_size.")
    return GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=model_args.n_positions,
        n_embd=model_args.n_embd,
        n_layer=model_args.n_layer,
        n_head=model_args.n_head,
        resid_pdrop=model_args.dropout,
        embd_pdrop=model_args.dropout,
        attn_pdrop=model_args.dropout,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        unk_token_id=tokenizer.unk_token_id,
        tokenizer_class="BertGenerationTokenizer",
    )


def generation_config(tokenizer):
    # What the published model samples with: top-k 50 within nucleus 0.95.
    return GenerationConfig(do_sample=True, top_k=50, top_p=0.95, max_new_tokens=100,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)


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

def derive_batch(args, run_args):
    """Per-device batch and accumulation from the recipe's global batch and the number of processes."""
    world = args.world_size
    if run_args.global_batch_size is None:
        return
    total = run_args.global_batch_size
    most = args.per_device_train_batch_size
    accumulation = max(1, math.ceil(total / (world * most)))
    while accumulation <= total and total % (world * accumulation):
        accumulation += 1
    if total % (world * accumulation):
        raise UserError(f"A global batch of {total} sequences cannot be split evenly over {world} processes; "
                        "change --global_batch_size or the number of processes.")
    args.per_device_train_batch_size = total // (world * accumulation)
    args.gradient_accumulation_steps = accumulation
    logger.info("Global batch %d sequences = %d processes x %d per device x %d accumulation steps.",
                total, world, args.per_device_train_batch_size, accumulation)


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


def last_complete_checkpoint(checkpoints_dir):
    """The newest checkpoint-N holding trainer_state.json (Trainer writes it last, so a checkpoint
    cut short by a kill lacks it and is skipped)."""
    folder = Path(checkpoints_dir)
    if not folder.is_dir():
        return None
    complete = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return str(max(complete, key=lambda p: int(p.name.split("-")[1]))) if complete else None


def remove_incomplete_checkpoints(checkpoints_dir):
    for path in Path(checkpoints_dir).glob("checkpoint-*"):
        if not (path / "trainer_state.json").is_file():
            logger.warning("Removing %s: a checkpoint cut short (no trainer_state.json).", path)
            shutil.rmtree(path, ignore_errors=True)


def evaluate_final(model_dir, data_dir, split, batch_size):
    """Loss, perplexity and bits per character of the saved model on a whole split."""
    import evaluate
    metric = evaluate.load(str(EVAL_METRIC))
    texts = load_split(data_dir, split)["text"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return metric.compute(predictions=list(texts), model_id=str(model_dir), batch_size=batch_size, device=device)


def make_trainer(config, attn_implementation, args, train_dataset, eval_dataset=None, callbacks=()):
    """A fresh GPT-2 of `config` in an LMTrainer: the training path of train.py (and of its benchmark)."""
    model = GPT2LMHeadModel._from_config(config, attn_implementation=attn_implementation)
    tokens_per_step = (args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
                       * config.n_positions)
    return LMTrainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                     data_collator=default_data_collator, callbacks=list(callbacks), tokens_per_step=tokens_per_step,
                     flops_per_token=flops_per_token(config), peak_flops=device_peak_flops())


def run_info(model_args, run_args, args, token_meta):
    """What the model card reports of this run: data, tokenizer, recipe, hardware."""
    def read(path):
        return json.loads(Path(path).read_text(encoding="utf-8")) if Path(path).is_file() else None

    recipe = {key: getattr(args, key) for key in RECIPE_KEYS}
    recipe.update(asdict(model_args), global_batch_size=args.per_device_train_batch_size
                  * args.gradient_accumulation_steps * args.world_size,
                  per_device_train_batch_size=args.per_device_train_batch_size,
                  gradient_accumulation_steps=args.gradient_accumulation_steps)
    devices = ([torch.cuda.get_device_name()] * args.world_size if torch.cuda.is_available()
               else [f"CPU ({os.cpu_count()} cores)"] * args.world_size)
    return {
        "data": read(Path(run_args.data_dir, "preparation.json")),
        "tokens": token_meta["splits"],
        "tokenizer": read(Path(run_args.tokenizer_dir, "tokenizer_report.json")),
        "recipe": recipe,
        "hardware": {"processes": args.world_size, "devices": devices},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }


def train(model_args, run_args, args, run_dir, callbacks=()):
    model_dir = run_dir / "model"
    if (model_dir / "all_results.json").is_file():
        logger.info("%s already holds the trained model; reusing it (train again with another --output_dir, "
                    "or delete %s).", model_dir, run_dir)
        return model_dir
    tokenizer = load_tokenizer(run_args.tokenizer_dir)
    config = build_config(model_args, tokenizer)
    derive_batch(args, run_args)
    set_seed(args.seed)

    with args.main_process_first(desc="tokenizing"):
        cache, meta = prepare_tokens(run_args.data_dir, run_args.tokenizer_dir, tokenizer)
    for split, counts in meta["splits"].items():
        logger.info("%s: %d articles, %d tokens, %d characters", split, counts["articles"], counts["tokens"],
                    counts["characters"])
    block = model_args.n_positions
    train_blocks = TokenBlocks(cache / "train.bin", block, meta["dtype"])
    eval_blocks = TokenBlocks(cache / "validation.bin", block, meta["dtype"], run_args.max_eval_blocks)
    if len(train_blocks) == 0:
        raise UserError(f"The train split holds fewer than {block} tokens; prepare more articles.")
    if len(eval_blocks) == 0 and args.eval_strategy != "no":
        logger.warning("The validation split holds fewer than %d tokens: no evaluation during training.", block)
        args.eval_strategy = "no"

    if args.process_index == 0:
        remove_incomplete_checkpoints(args.output_dir)
    if args.world_size > 1:
        dist.barrier()
    resume = last_complete_checkpoint(args.output_dir)
    if resume:
        saved = GPT2Config.from_pretrained(resume)
        if saved.vocab_size != len(tokenizer):
            raise UserError(f"{resume} was trained with a vocabulary of {saved.vocab_size}, but {run_args.tokenizer_dir}"
                            f" holds {len(tokenizer)} entries; point --tokenizer_dir at the run's tokenizer.")
        logger.info("Resuming from %s", resume)

    preemption = PreemptionCallback()
    trainer = make_trainer(config, model_args.attn_implementation, args, train_blocks,
                           eval_blocks if len(eval_blocks) else None, [preemption, *callbacks])
    trainer.model.generation_config = generation_config(tokenizer)
    logger.info("%s parameters, %d tokens a step, %d steps an epoch", f"{trainer.model.num_parameters():,}",
                trainer.tokens_per_step, len(train_blocks) // (trainer.tokens_per_step // block))

    with preemption:
        result = trainer.train(resume_from_checkpoint=resume)
    if preemption.received:
        if args.world_size > 1:
            # Each rank writes its own RNG state into the checkpoint; once one rank exits, torchrun
            # stops the others with SIGTERM, which kills them outside training: all must finish writing first.
            dist.barrier()
        logger.warning("Stopped by SIGTERM at step %d with a checkpoint saved; rerun the same command to resume.",
                       trainer.state.global_step)
        sys.exit(SIGTERM_EXIT_CODE)

    metrics = dict(result.metrics, train_tokens=meta["splits"]["train"]["tokens"])
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    staging = run_dir / ".model.partial"
    if args.process_index == 0:
        shutil.rmtree(staging, ignore_errors=True)
        trainer.model.config.use_cache = True  # Trainer turns the KV cache off for training; generation wants it
        trainer.save_model(str(staging))
        tokenizer.save_pretrained(str(staging))
        shutil.copy(Path(run_args.tokenizer_dir, "tokenizer.json"), staging / "tokenizer.json")
        shutil.copy(Path(args.output_dir, "trainer_state.json"), staging / "trainer_state.json")
        (staging / RUN_INFO).write_text(json.dumps(run_info(model_args, run_args, args, meta), indent=2,
                                                   ensure_ascii=False, default=str), encoding="utf-8")
    if args.world_size > 1:
        dist.barrier()

    if args.process_index == 0:
        for split in ("validation", "test"):
            if meta["splits"][split]["articles"]:
                scores = evaluate_final(staging, run_args.data_dir, split, run_args.final_eval_batch_size)
                prefix = "eval" if split == "validation" else "test"
                trainer.save_metrics(prefix, {f"{prefix}_{k}": v for k, v in scores.items()})
                logger.info("%s: %s", split, scores)
        for name in ("train_results.json", "eval_results.json", "test_results.json", "all_results.json"):
            if Path(args.output_dir, name).is_file():
                shutil.copy(Path(args.output_dir, name), staging / name)
        move_into_place(staging, model_dir)
        logger.info("Wrote %s", model_dir)
    return model_dir


def main(argv=None, callbacks=()):
    """Train as the command line says; `callbacks` are extra TrainerCallbacks (for tests and tools)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not (argv and argv[0].endswith(RECIPE_SUFFIXES)):
        argv.insert(0, str(REFERENCE_RECIPE))
    model_args, run_args, args = parse_args([ModelArguments, RunArguments, TrainingArguments], argv,
                                            description=__doc__)
    run_dir = Path(args.output_dir or DEFAULT_RUN_DIR)
    args.output_dir = str(run_dir / "checkpoints")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "logs")  # Trainer's TensorBoard callback reads it
    if "tensorboard" in (args.report_to or []):
        Path(os.environ["TENSORBOARD_LOGGING_DIR"]).mkdir(parents=True, exist_ok=True)
    args.logging_nan_inf_filter = False  # a non-finite loss must stop the run, not be averaged away
    return train(model_args, run_args, args, run_dir, callbacks)


if __name__ == "__main__":
    run_main(main)
