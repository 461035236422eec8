"""The tokenizer folder: tokenizer.py's output, and the tokenizer inside every model folder.

It holds `spiece.model` (SentencePiece, loaded as BertGenerationTokenizer),
`tokenizer.json` (the same for `tokenizers`) and its record, `tokenizer_report.json`.
Light to import: transformers is loaded when a tokenizer is.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import UserError
from .rerun import Record


@dataclass
class TokenizerReport(Record):
    """tokenizer_report.json: what the tokenizer was trained on and with (identity), and its figures on the
    validation split (absent when the split is empty)."""

    FILE = "tokenizer_report.json"
    OTHER = "a tokenizer trained with other settings or data"
    ENTRIES = frozenset({FILE, "spiece.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                         "added_tokens.json"})

    # identity: the training settings and the data's content fingerprint
    sentences_trained_on: int
    training_seconds: float
    peak_memory_mib: int
    validation_lines: Optional[int] = None
    fast_slow_identical_lines: Optional[int] = None
    unk_share: Optional[float] = None
    round_trip_changed_share: Optional[float] = None
    tokens_per_character: Optional[float] = None


def load_tokenizer(folder, **overrides):
    """The tokenizer of a tokenizer or model folder; overrides (e.g. model_max_length) are saved with it."""
    folder = Path(folder)
    if not (folder / "spiece.model").is_file():
        raise UserError(f"{folder} holds no tokenizer (spiece.model); run tokenizer.py --output_dir {folder} first.")
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(folder), **overrides)


def room_after(tokenizer, prompt, context, wanted):
    """(new tokens that fit after the prompt in a model's context, at most `wanted`; the prompt's tokens):
    past the context, GPT-2's position embedding has no entry and generation fails."""
    used = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    return max(0, min(wanted, context - used)), used


def tokenizers_twin(spm_model, special_tokens):
    """The `tokenizers` twin of BertGenerationTokenizer, built from the SentencePiece model's own
    settings (normalizer, dummy prefix, whitespace), with the special tokens split out of
    text as the slow tokenizer splits them. (transformers registers no converter for
    BertGenerationTokenizer, and the generic SentencePiece one ignores add_dummy_prefix.)"""
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf
    proto = import_protobuf().ModelProto()
    proto.ParseFromString(Path(spm_model).read_bytes())
    fast = SpmConverter.build_tokenizer_from_spm_proto(proto, [(p.piece, p.score) for p in proto.pieces])
    fast.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special_tokens])
    return fast
