"""Train the SentencePiece tokenizer on sampled train sentences; export it as BertGenerationTokenizer.

    python tokenizer.py                                  # reference: 32,000 pieces, 10,000,000 samples
    python tokenizer.py --data_dir runs/demo/data --output_dir runs/demo/tokenizer --vocab_size 8000

The folder it writes loads with `AutoTokenizer.from_pretrained(folder)` as
`BertGenerationTokenizer` (spiece.model) and also holds `tokenizer.json`, the
same tokenizer for the `tokenizers` library, with identical ids, and
`tokenizer_report.json` (its record: what it was trained on and with, and figures
on the validation split).
"""

import gpt2ja.interrupts  # noqa: F401  (first: Ctrl-C while the libraries below load ends in one line)
import dataclasses
import logging
import os
import re
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from transformers import BertGenerationTokenizer, PreTrainedTokenizerFast

from gpt2ja import sentencepiece_apart
from gpt2ja.cli import parse_args, run_main
from gpt2ja.errors import UserError
from gpt2ja.rerun import reuse_or_build, reuse_or_refuse
from gpt2ja.run_folder import RunFolder
from gpt2ja.settings import DEFAULT_RUN_DIR, REFERENCE_CONTEXT, REFERENCE_VOCAB_SIZE, SPECIAL_IDS, SPECIAL_TOKENS
from gpt2ja.splits import data_fingerprint, load_split
from gpt2ja.tokenizer_folder import TokenizerReport, load_tokenizer, tokenizers_twin

logger = logging.getLogger("tokenizer")

SENTENCE_BREAK = re.compile(r"(?<=。)|\n")
NORMALIZATION_RULES = ("identity", "nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf")  # SentencePiece's built-in rules
# SentencePiece's unigram trainer holds its input many times over (the sentences, a suffix array, the candidate
# pieces), at its peak in the seed stage: 46.9 bytes a character of the sampled text and 21 MiB besides, linear
# from 100,000 to 800,000 distinct sentences (exponent 0.97), measured for issue 34 (no trainer option moved it).
SENTENCEPIECE_BYTES_PER_CHARACTER = 46.9
SENTENCEPIECE_FIXED_BYTES = 21 * 2**20
# Settings that change the tokenizer; num_threads and the folders do not.
TRAINING_SETTINGS = ("vocab_size", "num_samples", "seed", "add_dummy_prefix", "character_coverage",
                     "normalization_rule_name", "min_sentence_chars", "max_sentence_chars")


@dataclass
class TokenizerArguments:
    data_dir: str = field(default=str(RunFolder(DEFAULT_RUN_DIR).data), metadata={
        "help": "The DatasetDict written by prepare_data.py; only its train split is read."})
    output_dir: str = field(default=str(RunFolder(DEFAULT_RUN_DIR).tokenizer), metadata={
        "help": "Where the tokenizer folder is written."})
    vocab_size: int = field(default=REFERENCE_VOCAB_SIZE, metadata={"help": "Pieces in the vocabulary, special tokens included."})
    num_samples: int = field(default=10_000_000, metadata={
        "help": "Sentences drawn uniformly at random from the train split to train on (the reference: 10M)."})
    seed: int = field(default=42, metadata={"help": "Seed of the sampling and of SentencePiece."})
    add_dummy_prefix: bool = field(default=True, metadata={
        "help": "Prefix each text with a space (SentencePiece's default, the reference); --no_add_dummy_prefix "
                "turns it off."})
    character_coverage: float = field(default=0.9995, metadata={
        "help": "Share of characters the vocabulary must cover; the rest become <unk>. 0.9995 is SentencePiece's "
                "advice for Japanese and Chinese, whose long tail of rare kanji would otherwise fill the vocab."})
    normalization_rule_name: str = field(default="identity", metadata={
        "help": "SentencePiece normalization. identity (default) keeps the text as written; nmt_nfkc (SentencePiece's "
                "default) applies NFKC, which turns the full-width （）：＆ of Japanese text into ():& in about half "
                "of Wikipedia's lines, and newlines into spaces."})
    min_sentence_chars: int = field(default=5, metadata={"help": "Shorter sentences are not sampled."})
    max_sentence_chars: int = field(default=1000, metadata={
        "help": "Longer sentences are not sampled (SentencePiece skips those over 4,192 bytes anyway)."})
    num_threads: int = field(default=os.cpu_count() or 1, metadata={"help": "Threads of the trainer (all cores)."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Replace the tokenizer this step trained earlier in --output_dir with other settings."})

    def __post_init__(self):
        if self.vocab_size <= len(SPECIAL_IDS) + 1:
            raise ValueError(f"--vocab_size must be more than the {len(SPECIAL_IDS) + 1} special and newline pieces, "
                             f"not {self.vocab_size}")
        if self.num_samples < 1:
            raise ValueError(f"--num_samples must be 1 or more, not {self.num_samples}")
        if not 0 < self.character_coverage <= 1:
            raise ValueError(f"--character_coverage must be in (0, 1], not {self.character_coverage}")
        if self.normalization_rule_name not in NORMALIZATION_RULES:
            raise ValueError(f"--normalization_rule_name must be one of {', '.join(NORMALIZATION_RULES)}, "
                             f"not {self.normalization_rule_name!r}")
        if not 1 <= self.min_sentence_chars <= self.max_sentence_chars:
            raise ValueError("--min_sentence_chars must be 1 or more and at most --max_sentence_chars")
        if self.num_threads < 1:
            raise ValueError(f"--num_threads must be 1 or more, not {self.num_threads}")


def sentences_of(text, min_chars=1, max_chars=10**9):
    for sentence in SENTENCE_BREAK.split(text):
        sentence = sentence.strip()
        if min_chars <= len(sentence) <= max_chars:
            yield sentence


def sample_sentences(train, num_samples, seed, min_chars, max_chars):
    """(sentences, how many, about how many characters): num_samples sentences drawn uniformly without
    replacement, yielded in corpus order.

    Two streaming passes: one counts each article's sentences, the other yields the
    sentences at sorted random positions. Only the positions are held in memory.
    """
    def count(batch):
        lengths = [[len(s) for s in sentences_of(t, min_chars, max_chars)] for t in batch["text"]]
        return {"n": [len(x) for x in lengths], "chars": [sum(x) for x in lengths]}

    counted = train.map(count, batched=True, remove_columns=train.column_names, keep_in_memory=True,
                        desc="Counting sentences")
    counts = np.array(counted["n"], dtype=np.int64)
    total = int(counts.sum())
    characters = int(np.sum(counted["chars"], dtype=np.int64))
    if total == 0:
        raise UserError("The train split holds no sentence within the length bounds; prepare more articles.")
    if total <= num_samples:
        logger.info("The train split holds %d sentences, not more than --num_samples %d: using them all.",
                    total, num_samples)
        chosen = None
    else:
        chosen = np.sort(np.random.default_rng(seed).choice(total, size=num_samples, replace=False))
        logger.info("Sampling %d of the %d train sentences (seed %d).", num_samples, total, seed)

    def generate():
        position, next_index = 0, 0
        for batch in train.iter(batch_size=1000):
            for text in batch["text"]:
                for sentence in sentences_of(text, min_chars, max_chars):
                    if chosen is None:
                        yield sentence
                    elif next_index < len(chosen) and chosen[next_index] == position:
                        next_index += 1
                        yield sentence
                    position += 1

    used = min(total, num_samples)
    return generate(), used, round(characters * used / total)


def available_memory_bytes():
    """MemAvailable of /proc/meminfo (Linux), or None where there is none."""
    try:
        with open("/proc/meminfo") as meminfo:
            return next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return None


def memory_warning(sentences, characters, available):
    """A warning where SentencePiece will likely need more memory than is available, with the --num_samples
    that fits; None where it fits (or nothing is known of the memory)."""
    needed = SENTENCEPIECE_BYTES_PER_CHARACTER * characters + SENTENCEPIECE_FIXED_BYTES
    if available is None or needed <= available:
        return None
    bytes_per_sentence = SENTENCEPIECE_BYTES_PER_CHARACTER * characters / sentences
    fits = int(0.9 * (available - SENTENCEPIECE_FIXED_BYTES) / bytes_per_sentence)
    return (f"SentencePiece will need about {needed / 2**30:.1f} GiB for {sentences:,} sentences ({characters:,} "
            f"characters) and {available / 2**30:.1f} GiB is available; if it runs out of memory, pass "
            f"--num_samples {fits:,} or fewer.")


def train_sentencepiece(sentences, model_file, args):
    """Train SentencePiece on the sentences into model_file, in a process of its own (gpt2ja.sentencepiece_apart),
    where Ctrl-C stops it at once."""
    options = dict(
        model_type="unigram",
        vocab_size=args.vocab_size,
        character_coverage=args.character_coverage,
        normalization_rule_name=args.normalization_rule_name,
        add_dummy_prefix=args.add_dummy_prefix,
        pad_id=SPECIAL_IDS["<pad>"], unk_id=SPECIAL_IDS["<unk>"], bos_id=SPECIAL_IDS["<s>"], eos_id=SPECIAL_IDS["</s>"],
        control_symbols=[token for token, id in SPECIAL_IDS.items() if id > SPECIAL_IDS["</s>"]],  # <cls>, <sep>
        user_defined_symbols=["\n"],  # paragraph breaks stay in the text the model learns and writes
        # No byte_fallback: BertGenerationTokenizer (transformers 5) decodes by joining pieces, so byte
        # pieces would come out as "<0xE5>" text; characters beyond the coverage stay <unk>.
        input_sentence_size=0,  # we sample ourselves; SentencePiece takes every sentence it is given
        max_sentence_length=4192 * 4,
        num_threads=args.num_threads,
        minloglevel=2,
    )
    try:
        sentencepiece_apart.train(sentences, model_file, options, args.seed)
    except ChildProcessError as error:
        if "SIGKILL" in str(error):  # what the kernel's out-of-memory killer sends
            raise UserError(f"SentencePiece's training was {error}, most likely for want of memory; pass a "
                            "smaller --num_samples.") from None
        raise UserError(f"SentencePiece's training was {error} (sent by another process or user); rerun the "
                        "same command.") from None
    except RuntimeError as error:
        needed = re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(error))
        if needed:
            raise UserError(f"The sampled text holds {needed.group(1)} distinct characters at --character_coverage "
                            f"{args.character_coverage}, more than --vocab_size {args.vocab_size}; pass --vocab_size "
                            f"above {needed.group(1)} or a lower --character_coverage.") from None
        limit = re.search(r"value <= (\d+)", str(error))
        if limit:
            raise UserError(f"The sampled text supports at most {limit.group(1)} pieces, fewer than --vocab_size "
                            f"{args.vocab_size}; pass --vocab_size {limit.group(1)} or less, or prepare more "
                            "articles.") from None
        raise


def export(spm_model, output_dir):
    """Write the BertGenerationTokenizer folder plus tokenizer.json; return the loaded tokenizer."""
    # A model folder's copy records its own model's context (train.py); this one, GPT-2 small's.
    slow = BertGenerationTokenizer(str(spm_model), model_max_length=REFERENCE_CONTEXT, **SPECIAL_TOKENS)
    slow.save_pretrained(str(output_dir))
    tokenizers_twin(spm_model, SPECIAL_IDS).save(str(Path(output_dir, "tokenizer.json")))
    return load_tokenizer(output_dir)


def check_layout(tokenizer, vocab_size):
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_IDS}
    if ids != SPECIAL_IDS:
        raise UserError(f"The tokenizer's special ids are {ids}, not the published layout {SPECIAL_IDS}.")
    if len(tokenizer) != vocab_size:
        raise UserError(f"The tokenizer holds {len(tokenizer)} entries, not --vocab_size {vocab_size}.")


def report(folder, validation):
    """Figures on the validation split: <unk> share, round trips, tokens per character, fast = slow."""
    slow = load_tokenizer(folder)
    fast = PreTrainedTokenizerFast(tokenizer_file=str(Path(folder, "tokenizer.json")))
    lines = [line for text in validation["text"] for line in text.split("\n") if line]
    slow_ids = slow(lines)["input_ids"]
    fast_ids = fast(lines)["input_ids"]
    tokens = sum(len(ids) for ids in slow_ids)
    characters = sum(len(line) for line in lines)
    unk = sum(ids.count(slow.unk_token_id) for ids in slow_ids)
    changed = sum(1 for line, ids in zip(lines, slow_ids) if slow.decode(ids) != line)
    return {
        "validation_lines": len(lines),
        "fast_slow_identical_lines": sum(1 for a, b in zip(slow_ids, fast_ids) if a == b),
        "unk_share": unk / max(tokens, 1),
        "round_trip_changed_share": changed / max(len(lines), 1),
        "tokens_per_character": tokens / max(characters, 1),
    }


SAMPLE_SETTINGS = ("seed", "num_samples")  # which sentences are sampled


def finished_tokenizer(output_dir, identity, overwrite):
    """The record of the tokenizer output_dir holds for this identity, to reuse (None: none to reuse); one of
    other settings is refused. --seed and --num_samples that pick nothing count as no change: where the
    tokenizer there was trained on every sentence of the same data with the same other settings, and would be
    again, the sample is the same, and so is SentencePiece's model (its own seed changes nothing then: seeds 1
    and 2 give the same model byte for byte on the demo's data)."""
    previous = TokenizerReport.load(output_dir)
    compared = identity
    if previous is not None and all(previous.identity.get(k) == v for k, v in identity.items() if k not in SAMPLE_SETTINGS):
        every_sentence = previous.sentences_trained_on  # all there are, when fewer than its num_samples
        if every_sentence < previous.identity.get("num_samples", 0) and identity["num_samples"] >= every_sentence:
            compared = {**identity, **{k: previous.identity.get(k) for k in SAMPLE_SETTINGS}}
    return reuse_or_refuse(output_dir, TokenizerReport, compared, overwrite)


def train_tokenizer(args):
    output_dir = Path(args.output_dir)
    train = load_split(args.data_dir, "train")
    identity = {key: getattr(args, key) for key in TRAINING_SETTINGS}
    identity["data"] = data_fingerprint(args.data_dir)
    with reuse_or_build(output_dir, lambda: finished_tokenizer(output_dir, identity, args.overwrite_output_dir)) as (
            previous, build):
        if previous:
            return previous
        sentences, used, characters = sample_sentences(train, args.num_samples, args.seed,
                                                       args.min_sentence_chars, args.max_sentence_chars)
        warning = memory_warning(used, characters, available_memory_bytes())
        if warning:
            logger.warning(warning)
        start = time.perf_counter()
        train_sentencepiece(sentences, Path(build.work, "spiece.model"), args)
        seconds = time.perf_counter() - start
        tokenizer = export(Path(build.work, "spiece.model"), build.output)
        check_layout(tokenizer, args.vocab_size)
        validation = load_split(args.data_dir, "validation", allow_empty=True)
        record = TokenizerReport(
            identity=identity,
            sentences_trained_on=used,
            training_seconds=round(seconds, 1),
            peak_memory_mib=round(max(resource.getrusage(who).ru_maxrss  # SentencePiece trained in a child
                                      for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024),
            **(report(build.output, validation) if len(validation) else {}),
        )
        build.finish(record)
    logger.info("Wrote %s: %s", output_dir, {k: v for k, v in dataclasses.asdict(record).items() if k != "identity"})
    return record


def main(argv=None):
    (args,) = parse_args([TokenizerArguments], argv, description=__doc__)
    return train_tokenizer(args)


if __name__ == "__main__":
    run_main(main)
