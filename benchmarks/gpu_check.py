"""The GPU check: one command, under 8 minutes on one GPU, that shows the full-size recipes run here.

    python -m benchmarks.gpu_check --run_dir runs/demo --out gpu_check.json
    python -m benchmarks.gpu_check --cpu --run_dir runs/demo   # a tiny model on the CPU (the tests)

--run_dir is a run folder holding data/ and tokenizer/ (runs/demo after `make
demo`); the check trains on its token cache (token_cache/, made from them if
absent). Nothing is downloaded and ../shared is not read,
so the check runs on a GPU machine with no network. It needs torch with CUDA,
transformers, accelerate, datasets and sentencepiece (requirements.txt), and
runs in three parts:

1. speed: GPT-2 small (32,000-entry vocabulary, random tokens, no dataloader
   workers) under configs/reference.yaml and configs/fast.yaml through
   train.py's Trainer: the median step time after the first step, its tokens/s
   and MFU, the first step apart (it holds torch.compile's warm-up), and peak
   GPU memory, allocated by tensors and reserved by PyTorch's allocator (add
   about 0.5 GiB for the CUDA context to know the card a recipe needs).
2. training: the fast recipe's flags (torch.compile, bf16, TF32, fused AdamW,
   its cosine schedule, dataloader workers) for 200 steps on the given tokens,
   at a global batch of 16 blocks of 1,024 tokens (the demo's excerpt holds
   about 840 such blocks) and the tokenizer's vocabulary. At step 100 the
   run gets SIGTERM, as a preempting scheduler sends it: it must save a
   checkpoint and exit 143; run again, it must resume there and finish. The
   losses must fall.
3. generation: pipeline("text-generation") with the trained model, on the GPU.

It prints one table and writes it as JSON (--out); it exits 1 if a check fails.
--cpu runs the same parts with a tiny model and a few steps on the CPU, without
TF32 (GPU-only) and torch.compile (over a minute a process on a small CPU).
"""

import argparse
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


import transformers
from transformers import GPT2LMHeadModel, pipeline, set_seed

import train
from gpt2ja.training_run import checkpoint_to_resume, recipe as run_recipe
from gpt2ja.cli import run_main
from gpt2ja.preemption import PreemptionCallback, RecordEveryCheckpoint, SignalAtStep
from gpt2ja.rerun import read_json
from gpt2ja.run_folder import TRAINER_STATE, RunFolder, last_complete_checkpoint
from gpt2ja.settings import REPO_ROOT
from gpt2ja.speed import device_peak_flops, flops_per_token
from gpt2ja.tokenizer_folder import load_tokenizer
from gpt2ja.tokens import TokenBlocks, prepare_tokens
from benchmarks.train_bench import StepClock, recipe_args, step_seconds, synthetic_blocks

RECIPES = (REPO_ROOT / "configs" / "reference.yaml", REPO_ROOT / "configs" / "fast.yaml")
PROMPT = "日本の首都は"

# What changes between the GPU and the CPU mode: the model's size, the steps, and the flags a CPU cannot take.
MODES = {
    "gpu": {"speed_vocab": 32000, "speed_steps": {"reference": 40, "fast": 6}, "speed_flags": [],
            "train_steps": 200, "kill_at": 100, "train_batch": 16, "eval_steps": 50, "new_tokens": 60,
            "flags": []},
    "cpu": {"speed_vocab": 1000, "speed_steps": {"reference": 6, "fast": 4},
            "speed_flags": ["--global_batch_size", "8", "--per_device_train_batch_size", "4"],
            "train_steps": 12, "kill_at": 6, "train_batch": 4, "eval_steps": 4, "new_tokens": 20,
            "flags": ["--use_cpu", "true", "--tf32", "false", "--torch_compile", "false", "--n_layer", "2",
                      "--n_embd", "64", "--n_head", "2", "--n_positions", "64"]},
}


# --- 1. speed -------------------------------------------------------------------------------------

def measure_speed(recipe, mode, work, variant=()):
    """tokens/s, MFU and peak memory of one recipe (and a variant's flags) on random tokens, the first step apart."""
    steps = mode["speed_steps"][recipe.stem]
    work.mkdir(parents=True)
    model_args, args = recipe_args(str(recipe), steps, work, ["--vocab_size", str(mode["speed_vocab"]),
                                                              *mode["flags"], *mode["speed_flags"], *variant])
    config = train.build_config(model_args, mode["speed_vocab"])
    blocks_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
    blocks = synthetic_blocks(Path(work, "train.bin"), config.vocab_size, config.n_positions, blocks_per_step * steps)
    torch._dynamo.reset()  # a fresh compile for each run: one for another shape would be a dynamic-shape graph
    on_gpu = torch.cuda.is_available() and not args.use_cpu
    if on_gpu:
        gc.collect()  # the previous run's model, held in reference cycles, must not count in this one's peak
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    set_seed(args.seed)
    clock = StepClock(keep_batches=False)
    trainer = train.make_trainer(config, model_args.attn_implementation, args, blocks, callbacks=[clock])
    trainer.train()
    seconds = step_seconds(clock.ends, clock.start, warmup=1)
    tokens_per_second = trainer.tokens_per_step / seconds
    peak = device_peak_flops() if on_gpu else None
    result = {"recipe": " ".join([recipe.name, *variant]), "tokens_per_step": trainer.tokens_per_step, "steps_timed": steps - 1,
              "first_step_s": round(clock.ends[0] - clock.start, 2), "median_step_s": round(seconds, 4),
              "tokens_per_s": round(tokens_per_second), "parameters": trainer.model.num_parameters(),
              "mfu": round(tokens_per_second * flops_per_token(config) / peak, 4) if peak else None,
              "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_gpu else None,
              "reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2) if on_gpu else None}
    del trainer
    return result


# --- 2. training, killed and resumed --------------------------------------------------------------

def training_run(cli, mode, output_dir, kill_at):
    """One process of the training part: train.py's Trainer, preemption handling and resume logic on the run
    folder's tokens (train.train()'s checks of the data and tokenizer folders, and its export, are left out)."""
    run_dir = RunFolder(cli.run_dir)
    cache, meta = prepare_tokens(run_dir.data, run_dir.tokenizer, run_dir.token_cache)
    tokenizer = load_tokenizer(run_dir.tokenizer)
    batch = mode["train_batch"]
    model_args, data_args, given = train.parse_arguments(
        [str(RECIPES[1]), "--output_dir", str(output_dir), "--max_steps", str(mode["train_steps"]),
         "--global_batch_size", str(batch), "--per_device_train_batch_size", str(batch),
         "--per_device_eval_batch_size", str(batch), "--warmup_steps", str(mode["train_steps"] // 10),
         "--eval_steps", str(mode["eval_steps"]), "--save_steps", str(mode["eval_steps"]),
         "--logging_steps", str(max(1, mode["train_steps"] // 20)), "--max_eval_blocks", "64",
         "--vocab_size", str(len(tokenizer)), "--report_to", "none", "--disable_tqdm", "true", *mode["flags"]])
    run = RunFolder(output_dir)
    config = train.build_config(model_args, len(tokenizer))
    set_seed(given.seed)
    train_blocks = TokenBlocks(cache / "train.bin", config.n_positions, meta.dtype)
    eval_blocks = TokenBlocks(cache / "validation.bin", config.n_positions, meta.dtype, data_args.max_eval_blocks)
    args = train.training_arguments(given, run, evaluate=len(eval_blocks) > 0)
    identity = {"config": config.to_diff_dict(), "recipe": run_recipe(model_args, args)}
    checkpoint = checkpoint_to_resume(args, json.loads(json.dumps(identity, default=str)))
    callbacks = [SignalAtStep(kill_at)] if kill_at else []
    trainer = train.make_trainer(config, model_args.attn_implementation, args, train_blocks, eval_blocks,
                                 [*callbacks, PreemptionCallback(), RecordEveryCheckpoint()])
    print(f"resuming from {Path(checkpoint).name}" if checkpoint else "starting", flush=True)
    train.fit(trainer, checkpoint)


def run_training(cli, mode, work):
    """Train until SIGTERM at kill_at, then rerun to the end; the losses and what each process did."""
    output_dir = Path(work, "run")
    checkpoints = RunFolder(output_dir).checkpoints
    command = [sys.executable, "-m", "benchmarks.gpu_check", "--training_run", "--run_dir", str(cli.run_dir),
               *(["--cpu"] if cli.cpu else [])]
    processes = []
    for kill_at in (mode["kill_at"], 0):
        start = time.perf_counter()
        done = subprocess.run([*command, "--output_dir", str(output_dir), "--kill_at", str(kill_at)],
                              capture_output=True, text=True, cwd=REPO_ROOT)
        said = [line for line in done.stdout.splitlines() if line.startswith(("starting", "resuming"))]
        processes.append({"exit": done.returncode, "seconds": round(time.perf_counter() - start, 1),
                          "began": said[0] if said else None,
                          "last_checkpoint": Path(last_complete_checkpoint(checkpoints) or "-").name})
        if done.returncode not in (0, 128 + signal.SIGTERM):
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-8000:])
            break
    final = last_complete_checkpoint(checkpoints)
    history = read_json(Path(final, TRAINER_STATE))["log_history"] if final else []
    train_losses = [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]
    eval_losses = [(entry["step"], entry["eval_loss"]) for entry in history if "eval_loss" in entry]
    speeds = [entry["tokens_per_second"] for entry in history if "tokens_per_second" in entry]
    return {"steps": mode["train_steps"], "kill_at": mode["kill_at"], "processes": processes,
            "train_loss": train_losses, "eval_loss": eval_losses, "final_checkpoint": str(final) if final else None,
            "tokens_per_s_median": statistics.median(speeds) if speeds else None}


# --- 3. generation --------------------------------------------------------------------------------

def generate(checkpoint, cli, mode):
    model = GPT2LMHeadModel.from_pretrained(checkpoint)
    model.config.use_cache = True
    tokenizer = load_tokenizer(RunFolder(cli.run_dir).tokenizer, model_max_length=model.config.n_positions)
    device = "cuda" if torch.cuda.is_available() and not cli.cpu else "cpu"
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer, device=device)
    set_seed(0)
    generator(PROMPT, max_new_tokens=5)  # warm-up
    start = time.perf_counter()
    text = generator(PROMPT, max_new_tokens=mode["new_tokens"], min_new_tokens=mode["new_tokens"])[0]["generated_text"]
    seconds = time.perf_counter() - start
    return {"device": str(generator.device), "new_tokens": mode["new_tokens"], "seconds": round(seconds, 3),
            "text": text}


# --- the check ------------------------------------------------------------------------------------

def checks(report, mode):
    training = report["training"]
    first, second = (training["processes"] + [{}, {}])[:2]
    train_losses = [loss for _, loss in training["train_loss"]]
    eval_losses = [loss for _, loss in training["eval_loss"]]
    return {
        "killed run saved its checkpoint and exited 143": first.get("exit") == 128 + signal.SIGTERM
        and first.get("last_checkpoint") == f"checkpoint-{mode['kill_at']}",
        "rerun resumed there and finished": second.get("exit") == 0
        and second.get("began") == f"resuming from checkpoint-{mode['kill_at']}"
        and second.get("last_checkpoint") == f"checkpoint-{mode['train_steps']}",
        "train loss fell": len(train_losses) > 1 and train_losses[-1] < train_losses[0],
        "validation loss fell": len(eval_losses) > 1 and eval_losses[-1] < eval_losses[0],
        "generation produced new text": bool(report["generation"])
        and len(report["generation"]["text"]) > len(PROMPT),
    }


def print_table(report):
    print(f"\nGPU check on {report['device']}: torch {report['versions']['torch']}, transformers "
          f"{report['versions']['transformers']}")
    print(f"{'recipe':<16}{'params':>8}{'tokens/step':>12}{'first step s':>14}{'s/step':>9}{'tokens/s':>11}"
          f"{'MFU':>7}{'GiB allocated':>15}{'reserved':>10}")
    for row in report["speed"]:
        mfu = f"{row['mfu']:.1%}" if row["mfu"] is not None else "-"
        peak = f"{row['peak_gib']:.1f}" if row["peak_gib"] is not None else "-"
        reserved = f"{row['reserved_gib']:.1f}" if row["reserved_gib"] is not None else "-"
        print(f"{row['recipe']:<16}{row['parameters'] / 1e6:>7.1f}M{row['tokens_per_step']:>12,}"
              f"{row['first_step_s']:>14.1f}{row['median_step_s']:>9.3f}{row['tokens_per_s']:>11,}{mfu:>7}"
              f"{peak:>15}{reserved:>10}")
    if "training" not in report:
        return
    training = report["training"]
    losses = training["train_loss"]
    if losses:
        picks = [losses[0], losses[len(losses) // 2], losses[-1]]
        print("training, fast flags: train loss " + ", ".join(f"{loss:.2f} (step {step})" for step, loss in picks)
              + "; validation loss " + ", ".join(f"{loss:.2f} (step {step})" for step, loss in training["eval_loss"]))
    for number, process in enumerate(training["processes"], 1):
        print(f"  process {number}: {process['began']}, exit {process['exit']}, last checkpoint "
              f"{process['last_checkpoint']}, {process['seconds']:.0f} s (start-up and compile included)")
    if training["tokens_per_s_median"]:
        print(f"  median logged speed {training['tokens_per_s_median']:,.0f} tokens/s")
    generation = report["generation"]
    if generation:
        print(f"generation on {generation['device']}: {generation['new_tokens']} tokens in "
              f"{generation['seconds']:.2f} s: {generation['text']!r}")
    for name, passed in report["checks"].items():
        print(f"{'PASS' if passed else 'FAIL'}  {name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_dir", type=Path, required=True,
                        help="a run folder holding data/ and tokenizer/ (runs/demo after make demo)")
    parser.add_argument("--out", type=Path, help="write the report here as JSON")
    parser.add_argument("--cpu", action="store_true", help="a tiny model on the CPU: the test suite's mode")
    parser.add_argument("--fast_variant", action="append", default=[], metavar="FLAGS",
                        help='also time the fast recipe with these flags, side by side (e.g. '
                             '"--per_device_train_batch_size 64"); repeatable')
    parser.add_argument("--speed_only", action="store_true", help="part 1 only (to compare variants)")
    parser.add_argument("--training_run", action="store_true", help=argparse.SUPPRESS)  # one process of part 2
    parser.add_argument("--output_dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--kill_at", type=int, default=0, help=argparse.SUPPRESS)
    cli = parser.parse_args()
    mode = MODES["cpu" if cli.cpu else "gpu"]
    if cli.training_run:
        return run_main(lambda: training_run(cli, mode, cli.output_dir, cli.kill_at))
    if not cli.cpu and not torch.cuda.is_available():
        sys.exit("error: no CUDA device; pass --cpu for the CPU mode.")
    run_dir = RunFolder(cli.run_dir)
    if not (run_dir.data / "dataset_dict.json").is_file() or not (run_dir.tokenizer / "spiece.model").is_file():
        sys.exit(f"error: {cli.run_dir} holds no data/ and tokenizer/ of prepare_data.py and tokenizer.py: pass a "
                 "run folder (runs/demo after make demo).")
    prepare_tokens(run_dir.data, run_dir.tokenizer, run_dir.token_cache)  # once, before the training processes
    report = {"device": torch.cuda.get_device_name() if not cli.cpu else f"CPU ({os.cpu_count()} cores)",
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}
    with tempfile.TemporaryDirectory() as work:
        runs = [(recipe, ()) for recipe in RECIPES] + [(RECIPES[1], tuple(v.split())) for v in cli.fast_variant]
        report["speed"] = []
        for number, (recipe, variant) in enumerate(runs):
            report["speed"].append(measure_speed(recipe, mode, Path(work, f"speed{number}"), variant))
            print(json.dumps(report["speed"][-1]), flush=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if not cli.speed_only:
            report["training"] = run_training(cli, mode, work)
            final = report["training"]["final_checkpoint"]
            report["generation"] = generate(final, cli, mode) if final else None
    report["checks"] = {} if cli.speed_only else checks(report, mode)
    if cli.out:
        cli.out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    print_table(report)
    sys.exit(0 if all(report["checks"].values()) else 1)


if __name__ == "__main__":
    main()
