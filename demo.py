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
from gpt2ja.cli import HelpFormatter, run_main
from gpt2ja.rerun import read_json
from gpt2ja.model_folder import ALL_RESULTS, OOD_PREFIX, RESULT_PREFIXES
from gpt2ja.run_folder import RunFolder
from gpt2ja.settings import DEFAULT_MIRROR, EXCERPT, PROMPT


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--run_dir", default="runs/demo", help="where every artifact of the demo goes")
    parser.add_argument("--dump", default=None,
                        help=f"dump to start from (default: {EXCERPT} if present, else the head of the "
                             "latest jawiki dump by URL)")
    parser.add_argument("--max_articles", type=int, default=2000,
                        help="articles to read when the dump comes by URL")
    parser.add_argument("--mirror", default=DEFAULT_MIRROR,
                        help="dumps mirror to stream from when the dump comes by URL")
    parser.add_argument("--vocab_size", type=int, default=8000,
                        help="tokenizer size: the excerpt's ~18,000 sentences support about 9,000 pieces")
    parser.add_argument("--max_steps", type=int, default=None, help="cut the tiny recipe's training short")
    return parser.parse_args(argv)


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
    print(f"data       {run.data}: {data.articles} articles of {data.pages_read} pages "
          f"(train {data.splits['train']}, validation {data.splits['validation']}, test {data.splits['test']})")
    print(f"tokenizer  {run.tokenizer}: {tokenizer_report.identity['vocab_size']:,} pieces, "
          f"{tokenizer_report.tokens_per_character or float('nan'):.3f} tokens per character")
    print(f"checkpoints {run.checkpoints}, TensorBoard logs {run.logs}")
    print(f"model      {model_dir}: train loss {results['train_loss']:.3f}")
    for split, prefix in [*RESULT_PREFIXES.items(), ("坊っちゃん", OOD_PREFIX)]:
        if f"{prefix}_loss" in results:
            print(f"           {split:<10} loss {results[f'{prefix}_loss']:.3f}, perplexity "
                  f"{results[f'{prefix}_perplexity']:.1f}, bits per character "
                  f"{results[f'{prefix}_bits_per_character']:.3f}, <unk> {results[f'{prefix}_unk_share']:.2%}")
    print(f"hub folder {stage_dir} (python push_to_hub.py --model_dir {model_dir} --repo_id USER/NAME uploads it)")
    print(f"generated from 「{PROMPT}」:")
    for text in samples:
        print("  " + text.replace("\n", "\n  "))
    print(f"done in {time.perf_counter() - start:.0f} s")
    return {"model_dir": model_dir, "stage_dir": stage_dir, "results": results, "samples": samples}


if __name__ == "__main__":
    run_main(main)
