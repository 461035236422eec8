"""A Hub dataset as your own text (prepare_data.py --dataset_name), streamed at the commit the Hub names for it
now (recorded), so a big one is never downloaded whole. Its rows become documents as the files' do."""

import logging
import re

import datasets

from ..errors import UserError
from ..hub_errors import hub_read_errors
from .base import DEFAULT_TEXT_COLUMN, USER_DROPPED, USER_FIELDS, Source, document
from .record import SourceRecord

logger = logging.getLogger(__name__)

DEFAULT_SPLIT = "train"


def dataset_revision(name):
    """The commit the Hub names for the dataset now (from HF_ENDPOINT); a dataset it lacks is one sentence."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError
    with hub_read_errors(f"dataset {name}", "then rerun"):
        try:
            return HfApi().dataset_info(name).sha
        except HFValidationError as error:
            raise UserError(f"--dataset_name {name!r} is not a Hub dataset id such as USER/NAME "
                            f"({str(error).splitlines()[0]}).") from None
        except RepositoryNotFoundError:
            raise UserError(f"Dataset {name} does not exist on the Hub ({constants.ENDPOINT}), or this token may "
                            "not read it; check --dataset_name (a private or gated dataset needs `hf auth "
                            "login`).") from None


def open_dataset(name, config, split, revision):
    """The dataset's split as a stream (datasets.IterableDataset), or one sentence on a config or split it
    lacks."""
    try:
        return datasets.load_dataset(name, config, split=split, revision=revision, streaming=True)
    except datasets.exceptions.DatasetNotFoundError as error:
        raise UserError(f"Dataset {name} cannot be read at {revision} ({error}); check --dataset_name.") from None
    except ValueError as error:
        message = str(error).splitlines()[0]
        available = re.search(r"Available(?: splits)?: \[(.*)\]", message)
        if "BuilderConfig" in message and available:
            raise UserError(f"Dataset {name} has no config {config!r} (it has {available.group(1)}); pass "
                            "--dataset_config_name with one of them.") from None
        if "Bad split" in message and available:
            raise UserError(f"Dataset {name} has no split {split!r} (it has {available.group(1)}); pass "
                            "--dataset_split with one of them.") from None
        raise UserError(f"Dataset {name} cannot be read ({message}); check --dataset_config_name and "
                        "--dataset_split.") from None


def dataset_record(name, config, split, revision, text_column):
    link = f"[{name}](https://huggingface.co/datasets/{name})"
    split_of = (f"the `{split}` split of the Hub dataset {link}" + (f"\n(config `{config}`)" if config else "")
                + (f" at revision `{revision}`" if revision else ""))
    return SourceRecord(
        title=name, named=f"the Hub dataset {link}", named_ja=f"Hub のデータセット {name}", unit="documents", unit_one="a document", read_as="documents",
        dropped_as=USER_DROPPED, made_from=split_of, fields=USER_FIELDS,
        described=f"{split_of[0].upper()}{split_of[1:]}, its `{text_column}` column",
        hub_datasets=[name], dataset_name=name, source_datasets=[f"extended|{name}"],
        dataset_ref={"dataset_type": name, "dataset_name": f"{name}, gpt2-small-ja splits",
                     **({"dataset_config": config} if config else {}),
                     **({"dataset_revision": revision} if revision else {})})


class HubDataset(Source):
    """--dataset_name: a split of a Hub dataset, streamed at the commit the Hub names for it now."""

    def __init__(self, name, config=None, split=None, text_column=None):
        self.sources = [name]
        self.text_column = text_column or DEFAULT_TEXT_COLUMN
        self.dataset = {"name": name, "config": config, "split": split or DEFAULT_SPLIT,
                        "revision": dataset_revision(name)}
        self.identity = {"dataset": self.dataset, "text_column": self.text_column}
        logger.info("Reading dataset %s at commit %s, streamed.", name, self.dataset["revision"])

    def rows(self):
        name, split, number = self.dataset["name"], self.dataset["split"], 0
        try:
            stream = open_dataset(name, self.dataset["config"], split, self.dataset["revision"])
            for number, example in enumerate(stream, 1):
                yield document(example, self.text_column, f"Dataset {name} ({split} split) row {number}")
        except Exception:  # hub_read_errors turns a Hub or network failure into one sentence and lets the rest by
            with hub_read_errors(f"dataset {name} after {number} rows", "then rerun"):
                raise

    def nothing_read(self, read):
        return super().nothing_read(read, f"check --dataset_split and --text_column ({self.text_column!r})")

    def record(self):
        return dataset_record(**self.dataset, text_column=self.text_column)
