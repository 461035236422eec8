"""The tokenizer folder and the token files train.py reads.

A tokenizer folder (tokenizer.py's output) holds `spiece.model` (SentencePiece,
loaded as BertGenerationTokenizer), `tokenizer.json` (the same for `tokenizers`)
and `tokenizer_report.json`. The token cache holds each split of a data folder as
one flat file of token ids, `</s>` after each article; `TokenBlocks` reads it as
consecutive blocks of the model's context.
"""

import hashlib
import json
import logging
import os
import re
from itertools import chain
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from .cli import UserError
from .fingerprints import input_fingerprints
from .run_folder import move_into_place, writing
from .splits import SPLITS, load_split

logger = logging.getLogger(__name__)

TOKENIZER_REPORT = "tokenizer_report.json"
TOKEN_CACHE = "token_cache"
TOKEN_META = "meta.json"


def load_tokenizer(folder, **overrides):
    """The tokenizer of a tokenizer or model folder; overrides (e.g. model_max_length) are saved with it."""
    folder = Path(folder)
    if not (folder / "spiece.model").is_file():
        raise UserError(f"{folder} holds no tokenizer (spiece.model); run tokenizer.py --output_dir {folder} first.")
    return AutoTokenizer.from_pretrained(str(folder), **overrides)


def read_tokenizer_report(folder):
    path = Path(folder, TOKENIZER_REPORT)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


class FastEncoder:
    """Batch encoding with SentencePiece's multi-threaded C++ encoder.

    It gives BertGenerationTokenizer's ids: that tokenizer is SentencePiece plus
    splitting on its special-token strings, which plain Wikipedia text almost never
    holds; texts that do hold one go through the tokenizer itself.
    """

    def __init__(self, tokenizer_dir, num_threads=None):
        self.tokenizer = load_tokenizer(tokenizer_dir)
        self.processor = spm.SentencePieceProcessor(model_file=str(Path(tokenizer_dir, "spiece.model")))
        self.num_threads = num_threads or os.cpu_count() or 1
        specials = self.tokenizer.all_special_tokens
        self.special = re.compile("|".join(re.escape(t) for t in specials))
        self.special_starts = {t[0] for t in specials}

    def __call__(self, texts):
        ids = self.processor.encode(list(texts), num_threads=self.num_threads)
        for i, text in enumerate(texts):
            if any(c in text for c in self.special_starts) and self.special.search(text):
                ids[i] = self.tokenizer(text)["input_ids"]
        return ids


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


def token_cache_dir(data_dir, tokenizer_dir):
    """A cache folder keyed by the content of the prepared data and of the tokenizer model."""
    inputs = input_fingerprints(data_dir, tokenizer_dir)
    key = hashlib.sha256(f"{inputs['data']}:{inputs['tokenizer']}".encode()).hexdigest()
    return Path(data_dir) / TOKEN_CACHE / key[:16]


def read_token_meta(cache):
    path = Path(cache, TOKEN_META)
    return json.loads(path.read_text()) if path.is_file() else None


def prepare_tokens(data_dir, tokenizer_dir):
    """Tokenize train / validation / test once; return (cache folder, meta). A rerun reads the cache.

    meta: {"dtype", "eos_token_id", "splits": {split: {"articles", "tokens", "characters"}}}. Processes
    that reach a cache being written (other ranks or nodes of a run, another run) wait for it, then read it.
    """
    cache = token_cache_dir(data_dir, tokenizer_dir)
    with writing(cache, wait=True) as scratch:
        meta = read_token_meta(cache)
        if meta is not None:
            logger.info("Reusing the token cache %s", cache)
            return cache, meta
        encoder = FastEncoder(tokenizer_dir)
        eos = encoder.tokenizer.eos_token_id
        dtype = token_dtype(len(encoder.tokenizer))
        meta = {"dtype": np.dtype(dtype).name, "eos_token_id": eos, "splits": {}}
        for split in SPLITS:
            articles = load_split(data_dir, split, allow_empty=split != "train")
            meta["splits"][split] = tokenize_split(articles, encoder, eos, scratch / f"{split}.bin", dtype)
        (scratch / TOKEN_META).write_text(json.dumps(meta, indent=2))
        move_into_place(scratch, cache, TOKEN_META)
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
