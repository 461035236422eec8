"""Throughput of train.py's Trainer path against a bare PyTorch step on the same batches.

    python -m benchmarks.train_bench                          # configs/tiny.yaml, Trainer vs bare step

The Trainer of train.py (LMTrainer, with its callbacks, dataloader over
a token file, logging) trains --steps steps of the recipe on synthetic tokens
while a hook records every batch it sees; then a bare loop (forward, backward,
clip, AdamW, scheduler) trains a model with the same initial weights on exactly
those batches. Both print tokens/s over the steps after --warmup; the overhead
is how much slower the Trainer path is. Both also print their losses' largest
difference: zero shows the two really trained on the same batches.

GPT-2 small's speed on a GPU, under both GPU recipes: benchmarks/gpu_check.py.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

from transformers import GPT2LMHeadModel, TrainerCallback, get_scheduler, set_seed

import train
from gpt2ja.run_folder import RunFolder
from gpt2ja.tokens import TokenBlocks


class StepClock(TrainerCallback):
    """Times each optimizer step and keeps every micro-batch the model trains on (unless keep_batches is
    False: on a GPU, where they would fill its memory)."""

    def __init__(self, keep_batches=True):
        self.ends, self.batches, self.losses = [], [], []
        self.start = None
        self.keep_batches = keep_batches

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not self.keep_batches:
            return
        model.register_forward_pre_hook(
            lambda module, positional, keywords: self.batches.append(
                (keywords["input_ids"].detach().cpu().clone(), keywords["labels"].detach().cpu().clone()))
            if module.training else None, with_kwargs=True)
        model.register_forward_hook(
            lambda module, positional, keywords, output: self.losses.append(output.loss.item())
            if module.training else None, with_kwargs=True)

    def on_step_begin(self, args, state, control, **kwargs):
        if self.start is None:
            self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())


def step_seconds(ends, start, warmup):
    times = np.diff([start] + ends)
    return float(statistics.median(times[warmup:]))


def recipe_args(recipe, steps, out_dir, extra=()):
    """The recipe's ModelArguments and the TrainingArguments train.py would build from it."""
    model_args, _, given = train.parse_arguments(
        [recipe, "--output_dir", str(out_dir), "--max_steps", str(steps), "--eval_strategy", "no",
         "--save_strategy", "no", "--report_to", "none", "--logging_steps", "10", "--disable_tqdm", "true",
         "--dataloader_num_workers", "0", *extra])
    return model_args, train.training_arguments(given, RunFolder(out_dir), evaluate=False)


def synthetic_blocks(path, vocab, block, count, seed=0):
    tokens = np.random.default_rng(seed).integers(6, vocab, size=block * count, dtype=np.uint16)
    tokens.tofile(path)
    return TokenBlocks(path, block, "uint16")


def run_trainer(config, model_args, args, blocks):
    set_seed(args.seed)
    clock = StepClock()
    trainer = train.make_trainer(config, model_args.attn_implementation, args, blocks, callbacks=[clock])
    initial = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    return clock, initial, trainer.tokens_per_step


def run_bare(config, model_args, args, initial, batches):
    """forward, backward, clip, AdamW, scheduler: what a training step is, with nothing around it."""
    set_seed(args.seed)
    model = GPT2LMHeadModel._from_config(config, attn_implementation=model_args.attn_implementation)
    model.load_state_dict(initial)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.learning_rate,
                                  betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon)
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=args.warmup_steps,
                              num_training_steps=args.max_steps)
    accumulation = args.gradient_accumulation_steps
    ends, losses = [], []
    start = time.perf_counter()
    for step in range(len(batches) // accumulation):
        for ids, labels in batches[step * accumulation:(step + 1) * accumulation]:
            loss = model(input_ids=ids, labels=labels).loss
            (loss / accumulation).backward()
            losses.append(loss.item())
        if args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        ends.append(time.perf_counter())
    return ends, start, losses


def cpu_mode(cli):
    with tempfile.TemporaryDirectory() as tmp:
        model_args, args = recipe_args(cli.recipe, cli.steps, tmp)
        config = train.build_config(model_args, cli.vocab)
        blocks_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
        blocks = synthetic_blocks(Path(tmp, "train.bin"), cli.vocab, model_args.n_positions,
                                  blocks_per_step * cli.steps)
        print(f"recipe {cli.recipe}: {sum(p.numel() for p in GPT2LMHeadModel(config).parameters()):,} parameters, "
              f"{blocks_per_step} x {model_args.n_positions} tokens a step, {cli.steps} steps "
              f"(the first {cli.warmup} not timed), {torch.get_num_threads()} threads")
        print(f"{'path':<34}{'s/step':>9}{'tokens/s':>11}")
        rates = {"bare": [], "trainer": []}
        for _ in range(cli.repeat):
            clock, initial, tokens_per_step = run_trainer(config, model_args, args, blocks)
            seconds = step_seconds(clock.ends, clock.start, cli.warmup)
            rates["trainer"].append(tokens_per_step / seconds)
            print(f"{'train.py Trainer step':<34}{seconds:>9.4f}{tokens_per_step / seconds:>11.0f}")
            ends, start, losses = run_bare(config, model_args, args, initial, clock.batches)
            seconds = step_seconds(ends, start, cli.warmup)
            rates["bare"].append(tokens_per_step / seconds)
            print(f"{'bare step (fwd, bwd, clip, AdamW)':<34}{seconds:>9.4f}{tokens_per_step / seconds:>11.0f}"
                  f"   losses differ by at most {max(abs(a - b) for a, b in zip(losses, clock.losses)):.2e}")
        bare, trainer = statistics.median(rates["bare"]), statistics.median(rates["trainer"])
        print(f"\nmedian tokens/s: bare {bare:.0f}, Trainer {trainer:.0f}; "
              f"the Trainer path costs {100 * (bare / trainer - 1):+.1f}% over the bare step")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="configs/tiny.yaml", help="the recipe to time")
    parser.add_argument("--vocab", type=int, default=8000, help="vocabulary of the synthetic tokens")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out of the timing")
    parser.add_argument("--repeat", type=int, default=3, help="Trainer/bare pairs; medians are compared")
    cli = parser.parse_args()
    cpu_mode(cli)


if __name__ == "__main__":
    main()
