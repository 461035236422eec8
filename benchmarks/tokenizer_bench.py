"""Speed of the fast batch encoder train.py uses, against Dataset.map with the slow tokenizer.

    python -m benchmarks.tokenizer_bench --tokenizer_dir runs/demo/tokenizer --data_dir runs/demo/data

All encode the same articles of the train split, and the ids are checked
against the slow tokenizer's. train.py's own path (gpt2ja.tokens.tokenize_split:
SentencePieceEncoder, </s> after each article, a flat uint16 file) is the figure that
counts. Also shown: the `tokenizers` twin (tokenizer.json).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path


import datasets
import numpy as np
from transformers import PreTrainedTokenizerFast

from gpt2ja.splits import load_split
from gpt2ja.tokenizer_folder import load_tokenizer
from gpt2ja.tokens import SentencePieceEncoder, tokenize_split


def timed(function, repeat):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer_dir", default="runs/demo/tokenizer")
    parser.add_argument("--data_dir", default="runs/demo/data")
    parser.add_argument("--repeat", type=int, default=3, help="runs per encoder; the fastest is shown")
    args = parser.parse_args()
    datasets.disable_progress_bars()
    texts = load_split(args.data_dir, "train")
    slow = load_tokenizer(args.tokenizer_dir)
    fast_encoder = SentencePieceEncoder(args.tokenizer_dir)
    twin = PreTrainedTokenizerFast(tokenizer_file=str(Path(args.tokenizer_dir, "tokenizer.json")),
                                   model_max_length=slow.model_max_length)
    characters = sum(len(t) for t in texts["text"])

    def slow_map():
        mapped = texts.map(lambda b: slow(b["text"]), batched=True, remove_columns=texts.column_names,
                           keep_in_memory=True, load_from_cache_file=False)
        return mapped["input_ids"]

    def fast_map():
        mapped = texts.map(lambda b: {"input_ids": fast_encoder(b["text"])}, batched=True,
                           remove_columns=texts.column_names, keep_in_memory=True, load_from_cache_file=False)
        return mapped["input_ids"]

    def twin_map():
        mapped = texts.map(lambda b: twin(b["text"]), batched=True, remove_columns=texts.column_names,
                           keep_in_memory=True, load_from_cache_file=False)
        return mapped["input_ids"]

    slow_s, reference = timed(slow_map, args.repeat)
    tokens = sum(len(ids) for ids in reference)
    print(f"{len(texts)} articles, {characters} characters, {tokens} tokens, {fast_encoder.num_threads} threads")
    print(f"{'encoder':<48}{'seconds':>9}{'tokens/s':>12}{'speed-up':>10}")
    print(f"{'Dataset.map + BertGenerationTokenizer (slow)':<48}{slow_s:>9.2f}{tokens / slow_s:>12.0f}{1:>9.1f}x")
    seconds, ids = timed(fast_map, args.repeat)
    if ids != reference:
        sys.exit("error: SentencePieceEncoder gives other ids than the slow tokenizer")
    print(f"{'Dataset.map + SentencePieceEncoder':<48}{seconds:>9.2f}{tokens / seconds:>12.0f}"
          f"{slow_s / seconds:>9.1f}x")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "train.bin")
        seconds, _ = timed(lambda: tokenize_split(texts, fast_encoder, slow.eos_token_id, path, np.uint16),
                           args.repeat)
        flat = np.fromfile(path, dtype=np.uint16).tolist()
    if flat != [i for ids in reference for i in ids + [slow.eos_token_id]]:
        sys.exit("error: train.py's tokenize_split gives other ids than the slow tokenizer")
    print(f"{'train.py tokenize_split (-> uint16)':<48}{seconds:>9.2f}{tokens / seconds:>12.0f}"
          f"{slow_s / seconds:>9.1f}x")
    seconds, ids = timed(twin_map, args.repeat)
    print(f"{'Dataset.map + tokenizer.json (tokenizers)':<48}{seconds:>9.2f}{tokens / seconds:>12.0f}"
          f"{slow_s / seconds:>9.1f}x")
    same = sum(a == b for a, b in zip(ids, reference))
    # SentencePiece sums Viterbi scores in float32 over the whole text, tokenizers in float64: on
    # long texts near-ties can split differently. Line by line (tokenizer_report.json) they agree.
    print(f"tokenizer.json gives the slow tokenizer's ids on {same} of {len(reference)} whole articles")


if __name__ == "__main__":
    main()
