"""gpt2ja.tokens: the batch encoder, the token cache and its blocks."""

import logging
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from gpt2ja.errors import UserError
from gpt2ja.tokens import (SentencePieceEncoder, TokenBlocks, TokenCache, input_fingerprints, prepare_tokens,
                           token_cache_folder, token_dtype, tokenize_split)


def test_fast_encoder_gives_the_tokenizers_ids(excerpt_tokenizer, excerpt_data):
    slow = AutoTokenizer.from_pretrained(str(excerpt_tokenizer))
    encoder = SentencePieceEncoder(excerpt_tokenizer)
    texts = list(datasets.load_from_disk(str(excerpt_data))["train"]["text"][:60])
    texts += ["本文に<s>と</s>が現れる。", "<unk>だけ", ""]
    assert encoder(texts) == [slow(t)["input_ids"] for t in texts]


def test_packing_puts_eos_between_articles_and_cuts_full_blocks(excerpt_data, excerpt_tokenizer, tmp_path):
    articles = datasets.load_from_disk(str(excerpt_data))["validation"]
    encoder = SentencePieceEncoder(excerpt_tokenizer)
    eos = encoder.tokenizer.eos_token_id
    counts = tokenize_split(articles, encoder, eos, tmp_path / "validation.bin", np.uint16)
    tokens = np.fromfile(tmp_path / "validation.bin", dtype=np.uint16)
    expected = [i for ids in encoder(list(articles["text"])) for i in ids + [eos]]
    assert tokens.tolist() == expected
    assert counts == {"articles": len(articles), "tokens": len(expected),
                      "characters": sum(len(t) for t in articles["text"])}
    assert int((tokens == eos).sum()) == len(articles)
    blocks = TokenBlocks(tmp_path / "validation.bin", 128, "uint16")
    assert len(blocks) == len(expected) // 128
    assert blocks[1]["input_ids"].tolist() == expected[128:256]
    assert torch.equal(blocks[1]["labels"][1:], blocks[1]["input_ids"][1:]) and blocks[1]["labels"][0] == -100
    assert len(TokenBlocks(tmp_path / "validation.bin", 128, "uint16", max_blocks=2)) == 2
    assert not list(tmp_path.glob("*.partial"))


def test_an_empty_token_file_has_no_blocks(tmp_path):
    (tmp_path / "empty.bin").write_bytes(b"")
    assert len(TokenBlocks(tmp_path / "empty.bin", 128, "uint16")) == 0


def test_token_ids_fit_uint16_for_32k_and_widen_beyond():
    assert token_dtype(32000) is np.uint16 and token_dtype(70000) is np.uint32


def test_token_cache_is_reused_and_keyed_by_data_and_tokenizer(excerpt_data, excerpt_tokenizer, tmp_path, caplog):
    first, meta = prepare_tokens(excerpt_data, excerpt_tokenizer, tmp_path / "cache")
    assert first.parent == tmp_path / "cache" and TokenCache.load(first) == meta
    assert set(meta.splits) == {"train", "validation", "test"} and meta.eos_token_id == 3
    stamp = (first / "train.bin").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="gpt2ja.tokens"):
        again, meta_again = prepare_tokens(excerpt_data, excerpt_tokenizer, tmp_path / "cache")
    assert again == first and meta_again == meta and (first / "train.bin").stat().st_mtime_ns == stamp
    assert "Reusing the token cache" in caplog.text
    other = Path(__file__).parent / "fixtures" / "run_of_aed7588" / "tokenizer"  # another spiece.model
    assert token_cache_folder(tmp_path / "cache", input_fingerprints(excerpt_data, other)) != first


@pytest.mark.parametrize("small_disk", ["1m"], indirect=True)
def test_a_disk_that_fills_while_tokenizing_is_one_sentence(excerpt_data, excerpt_tokenizer, small_disk):
    with pytest.raises(UserError, match=r"The disk ran out of space while writing .*disk/cache/\w+: .* MiB are free"):
        prepare_tokens(excerpt_data, excerpt_tokenizer, small_disk / "cache")
    assert sorted(p.name for p in (small_disk / "cache").iterdir()) == []


def test_two_tokenizers_of_one_spiece_model_with_other_special_ids_are_other_inputs(excerpt_data, excerpt_tokenizer,
                                                                                  tmp_path):
    import json
    from gpt2ja.tokens import OWN_ENCODING, tokenizer_encoding
    from gpt2ja.tokenizer_folder import load_tokenizer
    assert tokenizer_encoding(load_tokenizer(excerpt_tokenizer)) == OWN_ENCODING  # tokenizer.py's layout
    bases = {}
    for eos in ("</s>", "<sep>"):  # as rinna-style T5Tokenizer configs may name either
        folder = tmp_path / eos.strip("<>/")
        folder.mkdir()
        shutil.copy(excerpt_tokenizer / "spiece.model", folder / "spiece.model")
        (folder / "tokenizer_config.json").write_text(json.dumps(
            {"tokenizer_class": "T5Tokenizer", "extra_ids": 0, "eos_token": eos, "unk_token": "<unk>"}))
        bases[eos] = input_fingerprints(excerpt_data, folder)
    assert bases["</s>"]["tokenizer"] == bases["<sep>"]["tokenizer"]  # the same spiece.model ...
    assert bases["</s>"]["tokenizer_encoding"] != bases["<sep>"]["tokenizer_encoding"]  # ... encoding otherwise
    assert token_cache_folder(tmp_path / "cache", bases["</s>"]) != token_cache_folder(tmp_path / "cache", bases["<sep>"])
