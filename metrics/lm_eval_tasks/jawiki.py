"""The jawiki task's data and figures (loaded by lm-eval from jawiki.yaml).

No word perplexity: Japanese is not written in words separated by spaces, so
"words" would be whole paragraphs (and the figure overflows lm-eval's table).
bits_per_character is the figure metrics/causal_lm_eval and the model card
report: total NLL / ln 2 / characters.
"""

import math
import os

import datasets


def prepared_splits(data_dir=None, revision=None, **_):
    """The splits prepare_data.py wrote (a folder), or a dataset on the Hub with the same splits and columns
    (at `revision`, a tag or commit, if given). Passed as --metadata '{"data_dir": "runs/demo/data"}'."""
    if not data_dir:
        raise ValueError('The jawiki task needs the prepared splits: pass --metadata \'{"data_dir": "runs/demo/data"}\' '
                         "(a prepare_data.py output folder or a Hub dataset id).")
    if os.path.isdir(data_dir):
        return datasets.load_from_disk(data_dir)
    # a Hub dataset: streamed, so that only the scored splits are read, not the train split's gigabytes (each
    # task reads them again: lm-eval loads this module once for each task)
    return datasets.DatasetDict({
        split: datasets.Dataset.from_list(
            list(datasets.load_dataset(data_dir, split=split, streaming=True, revision=revision)))
        for split in ("validation", "test")})


def article_text(doc):
    return doc["text"]


def process_results(doc, results):
    (loglikelihood,) = results
    text = doc["text"]
    utf8_bytes = len(text.encode("utf-8"))
    return {
        "byte_perplexity": (loglikelihood, utf8_bytes),
        "bits_per_byte": (loglikelihood, utf8_bytes),
        "bits_per_character": (loglikelihood, len(text)),
    }


def bits_per_character(items):
    loglikelihoods, characters = zip(*items)
    return -math.fsum(loglikelihoods) / sum(characters) / math.log(2)
