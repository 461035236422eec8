"""The speed comparison of benchmarks/gpu_check.py --compare: today's settings against each candidate, in one run.

    python -m benchmarks.gpu_check --compare --run_dir runs/demo         # one GPU, about 5 minutes
    python -m benchmarks.gpu_check --compare --cpu --run_dir runs/demo   # the same code, tiny, on the CPU (tests)

Rows: `fast.yaml (before)` and `reference.yaml (before)` are today's recipes as
train.py ran them before the device-side loss check (the host read every
micro-batch's loss); then the candidates in a fixed priority order (CANDIDATES),
each alone on top of its recipe's (before) row, and at the end the fast
candidates that won, together. A row starts only if its estimated cost (its
compile and its timed steps, from the rows measured so far) fits the budget,
less what the loss check needs; the rows left out are listed as skipped.

Every row's Trainer runs in a thread of its own and the rows train in turns of
a few optimizer steps, one row at a time: every row compiles in its first turn,
then the turns alternate over the rows, so that a drift of the GPU's clocks
reaches every row alike. A turn is timed between two device syncs; a row's
figure is the median of its turns' seconds a step, and its spread the range of
those. Peak memory is the row's own: its weights and optimizer state, plus the
most its turns allocated above what was held when they began.

Then one step of the (before) rows and of the best rows is profiled (device time
of matrix products, attention, loss, optimizer, the rest, and the step's time
the device was idle); and the best fast row trains 200 steps on the run folder's
tokens at the GPU check's batch beside the (before) settings: the final losses
must agree within 1%. It writes gpu_compare_<device>.json and .md under --out_dir.
"""

import json
import re
import statistics
import threading
import time
import traceback
from pathlib import Path

import torch
from transformers import PrinterCallback, set_seed

import train
from gpt2ja.errors import NonFiniteLoss
from gpt2ja.run_folder import RunFolder
from gpt2ja.settings import REPO_ROOT
from gpt2ja.speed import device_peak_flops, flops_per_token
from gpt2ja.tokenizer_folder import load_tokenizer
from gpt2ja.tokens import TokenBlocks, prepare_tokens
from benchmarks.gpu_turns import Baton, Turns
from benchmarks.train_bench import recipe_args, synthetic_blocks

# (name, recipe stem, flags per mode, whether the host reads every loss as before); in priority order
CANDIDATES = [
    ("micro-batch {}", "fast", {"gpu": ["--per_device_train_batch_size", "64"],
                                "cpu": ["--per_device_train_batch_size", "8"]}),
    ("device-side NaN check", "fast", {"gpu": [], "cpu": []}),
    ("cuDNN SDPA", "fast", {"gpu": ["--sdpa_backends", "cudnn,flash,efficient,math"],
                            "cpu": ["--sdpa_backends", "cudnn,flash,efficient,math"]}),
    ("non-blocking copies", "fast", {"gpu": ["--accelerator_config", '{"non_blocking": true}']}),
    ("CUDA graphs + fused AdamW", "reference", {"gpu": ["--torch_compile", "true", "--torch_compile_mode",
                                                        "reduce-overhead", "--optim", "adamw_torch_fused"]}),
    ("max-autotune-no-cudagraphs", "fast", {"gpu": ["--torch_compile_mode", "max-autotune-no-cudagraphs"]}),
]
DEVICE_CHECK = "device-side NaN check"
# A compile's cost in a row's first turn, until a row of the recipe has measured one (the 11-27 run: ~42 s fast)
FIRST_TURN_GUESS_S = {"gpu": {"fast": 45.0, "reference": 3.0}, "cpu": {"fast": 3.0, "reference": 3.0}}
COMPILE_COST = {"reduce-overhead": 1.5, "max-autotune-no-cudagraphs": 4.0}  # times the recipe's usual first turn
STEP_GUESS_S = {"gpu": {"fast": 0.35, "reference": 0.05}, "cpu": {"fast": 0.3, "reference": 0.05}}

# What the mode sets: rows' batch and turns, the loss check's steps; on the CPU at most three candidates
COMPARE = {
    "gpu": {"budget_s": 290, "candidates": 6, "flags": [], "fast_batch": 128, "fast_flags": [],
            "warmup": {"fast": 3, "reference": 10}, "timed": {"fast": 20, "reference": 200},
            "turn": {"fast": 2, "reference": 20}, "check_steps": 200, "check_batch": 16},
    "cpu": {"budget_s": 90, "candidates": 3, "flags": [], "fast_batch": 8,
            "fast_flags": ["--per_device_train_batch_size", "4"],
            "warmup": {"fast": 2, "reference": 5}, "timed": {"fast": 20, "reference": 200},
            "turn": {"fast": 2, "reference": 20}, "check_steps": 40, "check_batch": 4},
}

# --- the rows ------------------------------------------------------------------------------------

def read_every_loss(trainer):
    """The (before) rows: train.py's check as it was, the host reading every micro-batch's loss (one sync each)."""
    step = trainer.training_step

    def checked(*args, **kwargs):
        loss = step(*args, **kwargs)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"The training loss became {loss.item()} at step {trainer.state.global_step + 1}.")
        return loss
    trainer.training_step = checked


def build_row(row, mode_name, work, vocab):
    """The row's Trainer on random tokens, with steps enough for its warm-up, a first turn, twice its timed steps (a
    (before) row is timed again beside the winners together) and one to profile."""
    mode = COMPARE[mode_name]
    recipe = row["recipe"]
    steps = mode["warmup"][recipe] + mode["turn"][recipe] + 2 * mode["timed"][recipe] + 1
    folder = Path(work, re.sub(r"\W+", "_", row["name"]))
    folder.mkdir(parents=True)
    model_args, args = recipe_args(str(REPO_ROOT / "configs" / f"{recipe}.yaml"), steps, folder,
                                   ["--vocab_size", str(vocab), *row["mode_flags"], *mode["flags"],
                                    *(["--global_batch_size", str(mode["fast_batch"]), *mode["fast_flags"]]
                                      if recipe == "fast" else []), *row["flags"]])
    config = train.build_config(model_args, vocab)
    blocks_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
    blocks = synthetic_blocks(folder / "train.bin", vocab, config.n_positions, blocks_per_step * steps)
    set_seed(args.seed)
    trainer = train.make_trainer(config, model_args.attn_implementation, args, blocks)
    trainer.remove_callback(PrinterCallback)  # rows' logs would interleave; the table says it all
    if row["host_reads_loss"]:
        read_every_loss(trainer)
    return trainer


def persistent_bytes(trainer):
    """What a row holds between its turns: weights, buffers and optimizer state."""
    tensors = [*trainer.model.parameters(), *trainer.model.buffers()]
    if trainer.optimizer is not None:
        tensors += [value for state in trainer.optimizer.state.values() for value in state.values()
                    if torch.is_tensor(value)]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def start_row(row, mode_name, work, vocab, baton, on_gpu):
    """The row's trainer in a thread of its own, waiting for the baton; its first turn is its warm-up."""
    def run():
        try:
            trainer = build_row(row, mode_name, work, vocab)
            row["trainer"] = trainer
            trainer.add_callback(row["clock"])
            trainer.train()
        except Exception as error:  # a row that fails is reported, not the end of the comparison
            row["error"] = f"{type(error).__name__}: {error}"
            traceback.print_exc()
        finally:
            baton.hand("main")
    row["clock"] = Turns(row, baton, on_gpu)
    row["thread"] = threading.Thread(target=run, name=row["name"], daemon=True)
    baton.hand(row["name"], ("steps", COMPARE[mode_name]["warmup"][row["recipe"]]))  # first: a row that fails at
    started = time.perf_counter()                                                    # once hands it back
    row["thread"].start()
    baton.wait_for("main")
    row["first_turn_s"] = round(time.perf_counter() - started, 2)
    row["clock"].turns.clear()  # the warm-up is not timed
    if "trainer" in row and "error" not in row:  # the trainer's optimizer exists once it has stepped
        row["persistent_bytes"] = persistent_bytes(row["trainer"])


def give_turn(row, baton, order):
    if "error" in row or not row["thread"].is_alive():
        return
    baton.hand(row["name"], order)
    baton.wait_for("main")
    if order[0] == "stop":
        row["thread"].join()


# --- the comparison -----------------------------------------------------------------------------

def flag_value(flags, name):
    return flags[flags.index(name) + 1] if name in flags else None


def estimate_s(row, mode_name, measured):
    """The row's cost: its first turn (a compile where the recipe compiles) and its timed steps, from the rows
    of its recipe measured so far, else from the guesses."""
    recipe, mode = row["recipe"], COMPARE[mode_name]
    compiles_like = "fast" if "--torch_compile" in row["flags"] else recipe
    first = measured.get(("first", compiles_like), FIRST_TURN_GUESS_S[mode_name][compiles_like])
    first *= COMPILE_COST.get(flag_value(row["flags"], "--torch_compile_mode"), 1.0)
    step = measured.get(("step", recipe), STEP_GUESS_S[mode_name][recipe])
    return first + (mode["warmup"][recipe] + mode["timed"][recipe] + 1) * step


def summarize(row, tokens_per_step, peak_flops, flops):
    per_step = sorted(seconds / steps for seconds, steps in row["clock"].turns)
    median = statistics.median(per_step)
    q1, _, q3 = statistics.quantiles(per_step, n=4) if len(per_step) > 1 else (median, median, median)
    row.update(tokens_per_step=tokens_per_step, timed_steps=sum(steps for _, steps in row["clock"].turns),
               turns=len(per_step), median_step_s=round(median, 5), iqr_pct=round(100 * (q3 - q1) / median, 1),
               range_s=[round(per_step[0], 5), round(per_step[-1], 5)], tokens_per_s=round(tokens_per_step / median),
               mfu=round(tokens_per_step / median * flops / peak_flops, 4) if peak_flops else None)
    if row["clock"].extra:
        row["peak_gib"] = round((row["persistent_bytes"] + max(row["clock"].extra)) / 2**30, 2)


def time_rows(rows, mode_name, baton, rounds_of):
    """Turns of every live row in alternation, `rounds_of[row]` turns each."""
    mode = COMPARE[mode_name]
    for turn in range(max(rounds_of.values(), default=0)):
        for row in rows:
            if turn < rounds_of.get(row["name"], 0):
                give_turn(row, baton, ("steps", mode["turn"][row["recipe"]]))


def loss_check(cli, mode_name, mode_flags, winner, before):
    """The winner's settings and the (before) ones, each for the same steps on the run folder's tokens at the
    GPU check's batch: the final logged losses (the mean of the last 10 steps)."""
    mode = COMPARE[mode_name]
    run_dir = RunFolder(cli.run_dir)
    cache, meta = prepare_tokens(run_dir.data, run_dir.tokenizer, run_dir.token_cache)
    vocab = len(load_tokenizer(run_dir.tokenizer))
    result = {"steps": mode["check_steps"], "batch": mode["check_batch"]}
    for row in (before, winner):
        torch._dynamo.reset()
        folder = Path(cli.work, "loss_check", re.sub(r"\W+", "_", row["name"]))
        batch = str(mode["check_batch"])
        model_args, args = recipe_args(str(REPO_ROOT / "configs" / "fast.yaml"), mode["check_steps"], folder,
                                       ["--vocab_size", str(vocab), *mode_flags, "--global_batch_size", batch,
                                        "--per_device_train_batch_size", batch, *row["flags"]])
        config = train.build_config(model_args, vocab)
        set_seed(args.seed)
        trainer = train.make_trainer(config, model_args.attn_implementation, args,
                                     TokenBlocks(cache / "train.bin", config.n_positions, meta.dtype))
        trainer.remove_callback(PrinterCallback)
        if row["host_reads_loss"]:
            read_every_loss(trainer)
        trainer.train()
        result[row["name"]] = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry][-1]
        del trainer
    first, second = result[before["name"]], result[winner["name"]]
    result["difference_pct"] = round(100 * abs(second - first) / first, 3)
    result["within_1pct"] = result["difference_pct"] <= 1.0
    return result


def compare(cli, mode_flags, vocab):
    """The whole comparison; the report as a dict."""
    mode_name = "cpu" if cli.cpu else "gpu"
    mode = COMPARE[mode_name]
    on_gpu = torch.cuda.is_available() and not cli.cpu
    if not on_gpu:
        torch.set_num_threads(1)  # the CPU mode tests the code; two threads a step on a shared CPU only add noise
    budget = cli.budget_s or mode["budget_s"]
    began, cpu_began = time.perf_counter(), time.process_time()
    left = lambda: budget - (time.perf_counter() - began)  # noqa: E731
    before = [{"name": f"{recipe}.yaml (before)", "recipe": recipe, "flags": [], "host_reads_loss": True}
              for recipe in ("fast", "reference")]
    candidates = [{"name": name.format(flag_value(flags[mode_name], "--per_device_train_batch_size")), "recipe": recipe,
                   "flags": flags[mode_name], "host_reads_loss": name != DEVICE_CHECK}
                  for name, recipe, flags in CANDIDATES if mode_name in flags][:mode["candidates"]]
    for row in before + candidates:
        row["mode_flags"] = mode_flags
    baton, measured, started, skipped = Baton(), {}, [], []
    # Every row keeps its compiled model to the end: no torch._dynamo.reset() between rows, a compile of its own for
    # each (torch.compile's backend differs), static shapes for each row's batch, and room for every row's graphs.
    torch._dynamo.config.automatic_dynamic_shapes = False
    torch._dynamo.config.recompile_limit = 64

    def reserve():  # the loss check's two runs: a compile each, and its steps at its smaller batch
        first = measured.get(("first", "fast"), FIRST_TURN_GUESS_S[mode_name]["fast"])
        return 2 * (first + mode["check_steps"] * measured.get(("step", "fast"), STEP_GUESS_S[mode_name]["fast"])
                    * mode["check_batch"] / mode["fast_batch"])

    for row in before + candidates:
        cost = estimate_s(row, mode_name, measured)
        if row not in before and cost > left() - reserve():
            skipped.append({"name": row["name"], "reason": f"needs ~{cost:.0f} s, "
                                                         f"{max(0, left() - reserve()):.0f} s left of the budget"})
            continue
        print(f"starting {row['name']} (~{cost:.0f} s)", flush=True)
        start_row(row, mode_name, cli.work, vocab, baton, on_gpu)
        started.append(row)
        if "error" in row:
            continue
        give_turn(row, baton, ("steps", mode["turn"][row["recipe"]]))  # a first measure of its step
        seconds, steps = row["clock"].turns.pop()
        measured.setdefault(("first", row["recipe"]), row["first_turn_s"])
        measured.setdefault(("step", row["recipe"]), seconds / steps)
        print(f"  {row['name']}: first turn {row['first_turn_s']:.1f} s, then {seconds / steps:.3f} s a step",
              flush=True)

    live = [row for row in started if "error" not in row]
    time_rows(live, mode_name, baton, {row["name"]: mode["timed"][row["recipe"]] // mode["turn"][row["recipe"]]
                                      for row in live})
    peak_flops = device_peak_flops() if on_gpu else None
    for row in live:
        trainer = row["trainer"]
        summarize(row, trainer.tokens_per_step, peak_flops, flops_per_token(trainer.model.config))
    by_name = {row["name"]: row for row in live}
    for row in live:
        base = by_name.get(f"{row['recipe']}.yaml (before)")
        row["vs_before"] = round(row["tokens_per_s"] / base["tokens_per_s"], 4) if base else None

    fast_before = by_name.get("fast.yaml (before)")
    winners = [row for row in live if row["recipe"] == "fast" and row not in before and fast_before
               and row["vs_before"] - 1 > fast_before["iqr_pct"] / 100]
    if len(winners) > 1:
        together = {"name": "winners together: " + " + ".join(row["name"] for row in winners), "recipe": "fast",
                    "flags": [flag for row in winners for flag in row["flags"]], "mode_flags": mode_flags,
                    "host_reads_loss": all(row["host_reads_loss"] for row in winners)}
        cost = estimate_s(together, mode_name, measured)
        if cost <= left() - reserve():
            start_row(together, mode_name, cli.work, vocab, baton, on_gpu)
            started.append(together)
            if "error" not in together:
                fast_before["clock"].turns.clear()  # timed again, in alternation with the winners together
                rounds = mode["timed"]["fast"] // mode["turn"]["fast"]
                time_rows([fast_before, together], mode_name, baton, {fast_before["name"]: rounds,
                                                                      together["name"]: rounds})
                for row in (fast_before, together):
                    summarize(row, row["trainer"].tokens_per_step, peak_flops,
                              flops_per_token(row["trainer"].model.config))
                together["vs_before"] = round(together["tokens_per_s"] / fast_before["tokens_per_s"], 4)
                live.append(together)
        else:
            skipped.append({"name": together["name"], "reason": f"needs ~{cost:.0f} s"})

    best = [max((row for row in live if row["recipe"] == recipe), key=lambda row: row["tokens_per_s"], default=None)
            for recipe in ("fast", "reference")]
    for row in {id(row): row for row in [*before, *best] if row in live}.values():
        give_turn(row, baton, ("profile", 1))
        row["profile"] = row["clock"].profiles[-1] if row["clock"].profiles else None
    for row in started:
        give_turn(row, baton, ("stop",))
        row.pop("trainer", None)
    if on_gpu:
        torch.cuda.empty_cache()

    winner = best[0]
    if winner is None or winner is fast_before:
        check = {"skipped": "no fast candidate beat fast.yaml (before)" if winner else "no fast row ran"}
    elif left() < reserve() / 2:
        check = {"skipped": f"{max(0, left()):.0f} s left of the budget"}
    else:
        check = loss_check(cli, mode_name, mode_flags, winner, fast_before)
    keys = ("name", "recipe", "flags", "host_reads_loss", "tokens_per_step", "timed_steps", "turns", "median_step_s",
            "iqr_pct", "range_s", "tokens_per_s", "mfu", "vs_before", "first_turn_s", "peak_gib", "profile", "error")
    return {"rows": [{key: row[key] for key in keys if key in row} for row in started], "skipped": skipped,
            "winner": winner["name"] if winner else None, "loss_check": check, "budget_s": budget,
            "wall_s": round(time.perf_counter() - began, 1), "cpu_s": round(time.process_time() - cpu_began, 1)}


def device_slug(device):
    known = re.search(r"H100|H200|A100|L40S|L4|A10G|RTX \d+", device)
    return (known.group(0) if known else device.split("(")[0]).strip().lower().replace(" ", "_") or "cpu"


def markdown(report):
    lines = [f"GPU speed comparison on {report['device']} (torch {report['versions']['torch']}, transformers "
             f"{report['versions']['transformers']}): {report['wall_s']:.0f} s wall, {report['cpu_s']:.0f} s CPU, "
             f"budget {report['budget_s']} s", "",
             "| row | tokens/step | timed steps | s/step (median) | IQR | tokens/s | vs (before) | MFU | first turn s "
             "| peak GiB |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in report["rows"]:
        if "error" in row or "median_step_s" not in row:
            lines.append(f"| {row['name']} | failed: {row.get('error', 'no timed turn')} |||||||||")
            continue
        mfu = f"{row['mfu']:.1%}" if row.get("mfu") is not None else "-"
        ratio = f"{row['vs_before']:.3f}x" if row.get("vs_before") is not None else "-"
        lines.append(f"| {row['name']} | {row['tokens_per_step']:,} | {row['timed_steps']} "
                     f"| {row['median_step_s']:.4f} | {row['iqr_pct']:.1f}% | {row['tokens_per_s']:,} | {ratio} | {mfu} "
                     f"| {row['first_turn_s']:.1f} | {row.get('peak_gib', '-')} |")
    profiled = [row for row in report["rows"] if row.get("profile")]
    if profiled:
        kinds = ["matmuls", "attention", "loss", "optimizer", "other", "idle"]
        lines += ["", "One step's time by kind (s; on the CPU, operators' own CPU time, idle = the rest):", "",
                  "| row | step | " + " | ".join(kinds) + " |", "|---|" + "---:|" * (len(kinds) + 1)]
        lines += [f"| {row['name']} | profile failed: {row['profile']['error']} |" if "error" in row["profile"] else
                  f"| {row['name']} | {row['profile']['step_s']:.4f} | "
                  + " | ".join(f"{row['profile'][kind]:.4f}" for kind in kinds) + " |" for row in profiled]
    for skip in report["skipped"]:
        lines.append(f"\nSkipped {skip['name']}: {skip['reason']}.")
    check = report["loss_check"]
    if "skipped" in check:
        lines.append(f"\nLoss check skipped: {check['skipped']}.")
    else:
        lines.append(f"\nLoss check, {check['steps']} steps at a batch of {check['batch']}: final loss "
                     + ", ".join(f"{name} {loss:.4f}" for name, loss in check.items() if isinstance(loss, float)
                                 and name != "difference_pct")
                     + f"; {check['difference_pct']}% apart ({'within' if check['within_1pct'] else 'NOT within'} 1%).")
    return "\n".join(lines) + "\n"


def write_report(report, out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"gpu_compare_{device_slug(report['device'])}"
    Path(f"{stem}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    Path(f"{stem}.md").write_text(markdown(report), encoding="utf-8")
    return stem
