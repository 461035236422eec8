"""The token files train.py reads.

The token cache holds each split of a data folder as one flat file of token ids,
`</s>` after each article, under the run folder (`token_cache/<key>`, keyed by the
content of the data and the tokenizer); `TokenBlocks` reads it as consecutive
blocks of the model's context.
"""

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
from tqdm.auto import tqdm

from .errors import UserError
from .rerun import Record, file_fingerprint, reuse_or_build, same_identity
from .settings import SPECIAL_IDS, SPECIAL_TOKENS
from .splits import SPLITS, data_fingerprint, load_split
from .tokenizer_folder import load_tokenizer

logger = logging.getLogger(__name__)


# Lines, runs of spaces, full-width and half-width forms, Latin script: where a tokenizer converted from a
# SentencePiece model may part from it (transformers 5's T5Tokenizer encodes a newline otherwise).
PROBE = "吾輩は猫である。\n名前は  まだ無い。\n\n Tokyo 2021年3月1日、ｶﾀｶﾅと全角ＡＢＣ。"


class SentencePieceEncoder:
    """Batch encoding with SentencePiece's multi-threaded C++ encoder, giving BertGenerationTokenizer's ids.

    That tokenizer is SentencePiece plus splitting on its special-token strings, which plain Wikipedia text
    almost never holds; texts that do hold one go through the tokenizer itself. A tokenizer whose ids are not
    its SentencePiece model's (a base model's: gpt2ja.base_model) encodes every text itself (`as_is` False), so
    training sees the ids that evaluation and users' pipelines give.
    """

    def __init__(self, tokenizer_dir, num_threads=None):
        self.tokenizer = load_tokenizer(tokenizer_dir)
        self.processor = spm.SentencePieceProcessor(model_file=str(Path(tokenizer_dir, "spiece.model")))
        self.num_threads = num_threads or os.cpu_count() or 1
        specials = self.tokenizer.all_special_tokens
        self.special = re.compile("|".join(re.escape(t) for t in specials))
        self.special_starts = {t[0] for t in specials}
        self.as_is = self.processor.encode(PROBE) == self.tokenizer(PROBE, add_special_tokens=False)["input_ids"]

    def __call__(self, texts):
        if not self.as_is:
            return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        ids = self.processor.encode(list(texts), num_threads=self.num_threads)
        for i, text in enumerate(texts):
            if any(c in text for c in self.special_starts) and self.special.search(text):
                ids[i] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
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


# The encoding of a tokenizer of tokenizer.py (the published layout): what a record written before
# tokenizer_encoding was compared is read as (the one migration rule of gpt2ja.rerun).
OWN_ENCODING = {"class": "BertGenerationTokenizer",
                "special_ids": {name: SPECIAL_IDS[token] for name, token in SPECIAL_TOKENS.items()},
                "added": dict(SPECIAL_IDS)}


def tokenizer_encoding(tokenizer, tokenizer_dir):
    """What decides a tokenizer's ids beyond its spiece.model, normalised: its class as its folder names it (the
    class that loads may change with transformers' version), the id of each of its special tokens and its added
    tokens (not tokenizer_config.json's bytes, which change between transformers versions)."""
    config = Path(tokenizer_dir, "tokenizer_config.json")
    named = json.loads(config.read_text(encoding="utf-8")).get("tokenizer_class") if config.is_file() else None
    special = {name: token for name, token in tokenizer.special_tokens_map.items() if isinstance(token, str)}
    return {"class": named or type(tokenizer).__name__,
            "special_ids": {name: tokenizer.convert_tokens_to_ids(token) for name, token in sorted(special.items())},
            "added": dict(sorted(tokenizer.get_added_vocab().items(), key=lambda item: item[1]))}


def input_fingerprints(data_dir, tokenizer_dir, tokenizer=None):
    """What a training run reads, by content: {"data", "tokenizer" (the SentencePiece model), "tokenizer_encoding"};
    `tokenizer`: the one of tokenizer_dir where the caller has it loaded already."""
    return {"data": data_fingerprint(data_dir), "tokenizer": file_fingerprint(Path(tokenizer_dir, "spiece.model")),
            "tokenizer_encoding": tokenizer_encoding(tokenizer or load_tokenizer(tokenizer_dir), tokenizer_dir)}


@dataclass
class TokenCache(Record):
    """meta.json of a token cache folder: the data and tokenizer it encodes (identity) and what it holds."""

    FILE = "meta.json"
    OTHER = "tokens of other data or another tokenizer"
    ENTRIES = frozenset({FILE, *(f"{split}.bin" for split in SPLITS)})

    dtype: str
    eos_token_id: int
    splits: dict  # split -> {"articles", "tokens", "characters"}


def token_cache_folder(cache_root, identity):
    """The folder of the tokens of these inputs: named by their content (and by the encoder, where the tokenizer
    is not its SentencePiece model as it is)."""
    encoding = identity.get("tokenizer_encoding", OWN_ENCODING)  # tokenizer.py's keeps the name it always had
    other = json.dumps(encoding, sort_keys=True) if encoding != OWN_ENCODING else ""
    key = hashlib.sha256(f"{identity['data']}:{identity['tokenizer']}{identity.get('encoder', '')}{other}".encode())
    return Path(cache_root) / key.hexdigest()[:16]


def prepare_tokens(data_dir, tokenizer_dir, cache_root, flag="--token_cache_dir"):
    """Tokenize train / validation / test once into cache_root/<key of data and tokenizer>; return (cache
    folder, TokenCache). A rerun reads the cache without writing anything (a read-only cache serves). Processes
    that reach a cache being written (other ranks or nodes of a run, another run) wait for it, then read it."""
    encoder = SentencePieceEncoder(tokenizer_dir)
    identity = input_fingerprints(data_dir, tokenizer_dir, encoder.tokenizer)
    if not encoder.as_is:
        identity["encoder"] = "tokenizer"  # the same spiece.model read otherwise: other ids
    cache = token_cache_folder(cache_root, identity)

    def finished():
        meta = TokenCache.load(cache)
        if meta is None or not same_identity(meta.identity, identity, {"tokenizer_encoding": OWN_ENCODING})[0]:
            return None
        logger.info("Reusing the token cache %s", cache)
        return meta

    with reuse_or_build(cache, finished, flag, wait=True) as (meta, build):  # wait: for the process writing it
        if meta:
            return cache, meta
        meta = tokenize_splits(data_dir, encoder, identity, build.output)
        build.finish(meta)
    logger.info("Wrote the token cache %s", cache)
    return cache, meta


def tokenize_splits(data_dir, encoder, identity, folder):
    eos = encoder.tokenizer.eos_token_id
    dtype = token_dtype(len(encoder.tokenizer))
    counts = {split: tokenize_split(load_split(data_dir, split, allow_empty=split != "train"), encoder, eos,
                                    Path(folder, f"{split}.bin"), dtype)
              for split in SPLITS}
    return TokenCache(identity=identity, dtype=np.dtype(dtype).name, eos_token_id=eos, splits=counts)


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


def load_blocks(cache, meta, block_size, max_eval_blocks):
    """(train blocks, validation blocks for the evaluations during training) from the token cache."""
    for split, counts in meta.splits.items():
        logger.info("%s: %d articles, %d tokens, %d characters", split, counts["articles"], counts["tokens"],
                    counts["characters"])
    train_blocks = TokenBlocks(cache / "train.bin", block_size, meta.dtype)
    eval_blocks = TokenBlocks(cache / "validation.bin", block_size, meta.dtype, max_eval_blocks)
    if len(train_blocks) == 0:
        raise UserError(f"The train split holds fewer than {block_size} tokens; prepare more articles.")
    if len(eval_blocks) == 0:
        logger.warning("The validation split holds fewer than %d tokens: no evaluation during training.", block_size)
    return train_blocks, eval_blocks
