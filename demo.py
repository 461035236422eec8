"""The whole chain on a small real sample, on the CPU: `make demo` runs this.

Data from the real 262-page jawiki excerpt in ../shared/data/ja when it is there,
otherwise the head of the latest jawiki dump by URL; a tokenizer sized for it; the
tiny recipe of train.py; evaluation; a few generations; the Hub folder staged by
push_to_hub.py --dry_run. A rerun reuses every step already done.
"""

import gpt2ja.interrupts  # noqa: F401  (first: Ctrl-C while the libraries below load ends in one line)
import argparse
import time

import generate
import prepare_data
import push_to_hub
import tokenizer
import train
from gpt2ja.cards import tokens_per_step
from gpt2ja.model_folder import ModelFolder
from gpt2ja.cli import HelpFormatter, run_main
from gpt2ja.rerun import read_json
from gpt2ja.model_folder import ALL_RESULTS, OOD_PREFIX, RESULT_PREFIXES
from gpt2ja.run_folder import RunFolder
from gpt2ja.settings import DEFAULT_MIRROR, EXCERPT, PROMPT


OUT_OF_DOMAIN = "坊っちゃん (Soseki, out of domain)"


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--run_dir", default="runs/demo", help="where every artifact of the demo goes")
    parser.add_argument("--dump", default=None,
                        help=f"dump to start from (default: the jawiki excerpt {EXCERPT.name} in ../shared/data/ja "
                             "beside the repository where present, else the head of the latest jawiki dump by URL)")
    parser.add_argument("--max_articles", type=int, default=2000,
                        help="articles to read when the dump comes by URL")
    parser.add_argument("--mirror", default=DEFAULT_MIRROR,
                        help="dumps mirror to stream from when the dump comes by URL")
    parser.add_argument("--vocab_size", type=int, default=8000,
                        help="tokenizer size (the excerpt's train split holds 25,892 sentences of 5 characters "
                             "or more, which tokenizer.py samples)")
    parser.add_argument("--max_steps", type=int, default=None, help="cut the tiny recipe's training short")
    return parser.parse_args(argv)


def summary(data, tokenizer_report, model, results):
    """The figures of the run as the README shows them: two Markdown tables."""
    config, state = model.config, model.state
    tokens_seen = state["global_step"] * tokens_per_step(model)
    splits = data.splits
    lines = ["| | |", "| --- | --- |",
             f"| data | {data.articles} articles of {data.pages_read} pages: train {splits['train']}, validation "
             f"{splits['validation']}, test {splits['test']} |",
             f"| tokenizer | {tokenizer_report.identity['vocab_size']:,} pieces, " + (
                 f"{tokenizer_report.tokens_per_character:.3f} tokens per character on validation |"
                 if tokenizer_report.tokens_per_character else "no validation text to count tokens per character on |"),
             f"| model | {model.parameter_count() / 1e6:.1f}M parameters ({config.n_layer} layers, {config.n_embd} "
             f"wide, context {config.n_positions}), {state['global_step']} steps, {tokens_seen / 1e6:.1f}M tokens "
             f"seen, {results.get('train_runtime', 0) / 60:.1f} min |",
             "", "| split | loss (nats/token) | perplexity | bits per character |", "| --- | ---: | ---: | ---: |"]
    for split, prefix in [*RESULT_PREFIXES.items(), (OUT_OF_DOMAIN, OOD_PREFIX)]:
        if f"{prefix}_loss" in results:
            lines.append(f"| {split} | {results[f'{prefix}_loss']:.3f} | {results[f'{prefix}_perplexity']:.1f} | "
                         f"{results[f'{prefix}_bits_per_character']:.3f} |")
    unknown = [f"{split} {results[f'{prefix}_unk_share']:.2%}" for split, prefix in
               [*RESULT_PREFIXES.items(), (OUT_OF_DOMAIN, OOD_PREFIX)] if f"{prefix}_unk_share" in results]
    return "\n".join(lines) + f"\n\n<unk> (characters the tokenizer lacks): {', '.join(unknown)}"


def main(argv=None):
    args = parse(argv)
    run = RunFolder(args.run_dir)
    start = time.perf_counter()

    data_argv = ["--output_dir", str(run.data), "--validation_percent", "5", "--test_percent", "5"]
    if args.dump or EXCERPT.is_file():
        data_argv += ["--dump", args.dump or str(EXCERPT)]
    else:  # "latest": the 2021 reference dump is no longer on dumps.wikimedia.org
        data_argv += ["--date", "latest", "--mirror", args.mirror, "--max_articles", str(args.max_articles)]
    data = prepare_data.main(data_argv)

    tokenizer_report = tokenizer.main(["--data_dir", str(run.data), "--output_dir", str(run.tokenizer),
                                       "--vocab_size", str(args.vocab_size)])

    train_argv = ["configs/tiny.yaml", "--data_dir", str(run.data), "--tokenizer_dir", str(run.tokenizer),
                  "--output_dir", str(run.root)]
    if args.max_steps:
        train_argv += ["--max_steps", str(args.max_steps), "--eval_steps", str(max(1, args.max_steps // 2)),
                       "--save_steps", str(args.max_steps)]
    model_dir = train.main(train_argv)
    results = read_json(model_dir / ALL_RESULTS)

    samples = generate.main(["--model", str(model_dir), "--num_return_sequences", "3", "--seed", "0",
                             "--max_new_tokens", "40"])
    stage_dir, _ = push_to_hub.main(["--model_dir", str(model_dir), "--dry_run"])

    print("\n=== demo summary ===")
    print(summary(data, tokenizer_report, ModelFolder.check(model_dir), results))
    print(f"\nWritten to {run.root}: {run.data.name}/, {run.tokenizer.name}/, token_cache/, {run.checkpoints.name}/, "
          f"{run.logs.name}/ (TensorBoard), {model_dir.name}/, {stage_dir.name}/ (python push_to_hub.py --model_dir "
          f"{model_dir} --repo_id USER/NAME uploads it).")
    print(f"generated from 「{PROMPT}」:")
    for text in samples:
        print("  " + text.replace("\n", "\n  "))
    print(f"done in {time.perf_counter() - start:.0f} s")
    return {"model_dir": model_dir, "stage_dir": stage_dir, "results": results, "samples": samples}


if __name__ == "__main__":
    run_main(main)
