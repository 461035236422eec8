"""The whole chain on a small real sample, on the CPU: `make demo` runs this.

Data from the real 262-page jawiki excerpt in ../shared/data/ja when it is there,
otherwise the head of the real dump by URL. A rerun reuses every step already done.
"""

import argparse
import time
from pathlib import Path

import prepare_data
import tokenizer
import train
from common import SHARED_DATA, run_main

EXCERPT = SHARED_DATA / "jawiki-20220720-pages-articles-excerpt.xml.bz2"


def parse():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_dir", default="runs/demo", help="where every artifact of the demo goes")
    parser.add_argument("--dump", default=None,
                        help=f"dump to start from (default: {EXCERPT} if present, else the head of the "
                             "reference dump by URL)")
    parser.add_argument("--max_articles", type=int, default=2000,
                        help="articles to read when the dump comes by URL")
    return parser.parse_args()


def main():
    args = parse()
    run_dir = Path(args.run_dir)
    start = time.perf_counter()
    data_argv = ["--output_dir", str(run_dir / "data"), "--validation_percent", "5", "--test_percent", "5"]
    if args.dump or EXCERPT.is_file():
        data_argv += ["--dump", args.dump or str(EXCERPT)]
    else:
        data_argv += ["--max_articles", str(args.max_articles)]
    stats = prepare_data.main(data_argv)
    # 8,000 pieces: about what the excerpt's ~18,000 sentences support (the reference's 32,000 needs far more)
    tokenizer_report = tokenizer.main(["--data_dir", str(run_dir / "data"), "--output_dir", str(run_dir / "tokenizer"),
                                       "--vocab_size", "8000"])
    model_dir = train.main(["configs/tiny.yaml", "--data_dir", str(run_dir / "data"),
                            "--tokenizer_dir", str(run_dir / "tokenizer"), "--output_dir", str(run_dir)])
    print(f"\ndata      {run_dir / 'data'}  {stats['splits']}")
    print(f"tokenizer {run_dir / 'tokenizer'}  8,000 pieces, "
          f"{tokenizer_report['tokens_per_character']:.3f} tokens per character on validation")
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    run_main(main)
