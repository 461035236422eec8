"""Stage the files a Hub model repo needs, render the model card, upload.

    python push_to_hub.py                                             # runs/reference/model -> <you>/gpt2-small-ja
    python push_to_hub.py --model_dir runs/demo/model --repo_id USER/NAME [--private] [--revision_tag TAG]
    python push_to_hub.py --model_dir runs/demo/model --dry_run       # stage and check, no network
    python push_to_hub.py ... --space_id USER/NAME                    # and a live demo: a Gradio Space
    python push_to_hub.py ... --dataset_repo_id USER/NAME             # and the prepared splits, as a dataset
    python push_to_hub.py ... --license apache-2.0                    # a model of your own text: its license
    python push_to_hub.py ... --eval_results FILE [--compare_results FILE ...]  # lm-eval's Japanese tasks

The staged folder (default: hub/ beside the model folder) holds exactly what the
repo needs: weights, configs, tokenizer files, the card (README.md), the
training curve and the run's TensorBoard logs under runs/ (the Hub's "Training
metrics" tab); the repo is made its mirror. With --space_id, the app in space/
is staged too (default: space/ beside the model folder), with a README that
names the model, and uploaded as a Gradio Space that the model card links to.
With --dataset_repo_id, the prepared splits the model was trained and scored on
are published with `DatasetDict.push_to_hub` and a dataset card (staged, default:
dataset_card/ beside the model folder), before the model, whose card names them.
The model, its Space and its dataset share one license: --license, which a model trained on your own text
needs (only you know its terms), or the CC BY-SA of a Wikipedia dump's date; where the data or the base model
is CC BY-SA, only CC BY-SA of its version or a later one is taken.
The token comes from HF_TOKEN or the stored login (`hf auth login`) and is never
printed or written.
"""

import gpt2ja.interrupts  # noqa: F401  (first: Ctrl-C while the libraries below load ends in one line)
import itertools
import logging
import re
import shutil
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from gpt2ja.cards import (CURVE, Links, check_card_metadata, dataset_card, example_output, model_card,
                          model_license, plot_curve, stage_space_files, tokens_per_step)
from gpt2ja.cli import parse_args, run_main
from gpt2ja.errors import UserError
from gpt2ja.eval_results import Downstream
from gpt2ja.licenses import check_hub_license_id
from gpt2ja.hub import StagingRecord, check_repo_id, check_tag, hub_api, hub_errors, logged_in_user, mirror_folder
from gpt2ja.rerun import building, check_output_folder
from gpt2ja.model_folder import MODEL_FILES, OPTIONAL_MODEL_FILES, RESULT_PREFIXES, ModelFolder
from gpt2ja.run_folder import RunFolder
from gpt2ja.settings import DEFAULT_REPO_NAME, DEFAULT_RUN_DIR
from gpt2ja.sources import source_of
from gpt2ja.splits import Preparation

logger = logging.getLogger("push_to_hub")

TENSORBOARD_DIR = "runs"  # where the Hub looks for tfevents files


@dataclass
class PushArguments:
    model_dir: str = field(default=str(RunFolder(DEFAULT_RUN_DIR).model), metadata={
        "help": "The model folder written by train.py."})
    repo_id: Optional[str] = field(default=None, metadata={
        "help": f"USER/NAME on the Hub; default <logged-in user>/{DEFAULT_REPO_NAME}."})
    private: bool = field(default=False, metadata={"help": "Create the repo as private."})
    revision_tag: Optional[str] = field(default=None, metadata={
        "help": "Tag the uploaded commit (the published model used tags such as 20210301.1.0). A tag that "
                "exists already is refused, unless --move_tag."})
    move_tag: bool = field(default=False, metadata={
        "help": "Move an existing --revision_tag to the uploaded commit."})
    dry_run: bool = field(default=False, metadata={"help": "Stage and check the folder; no network."})
    stage_dir: Optional[str] = field(default=None, metadata={
        "help": "Where the repo's files are staged (default: hub/ beside --model_dir)."})
    commit_message: Optional[str] = field(default=None, metadata={"help": "Default: names the run's results."})
    example_seed: int = field(default=42, metadata={"help": "Seed of the example output shown in the card."})
    space_id: Optional[str] = field(default=None, metadata={
        "help": "Also publish a live demo: the Gradio app of space/ as the Space USER/NAME (created if absent), "
                "running this model; the Space names the model and the model card links the Space."})
    space_hardware: Optional[str] = field(default=None, metadata={
        "help": "Hardware of a Space created now: cpu-basic (the Hub's default, free, enough for GPT-2 small), "
                "zero-a10g (ZeroGPU: the Hub lets PRO and Enterprise accounts host it), t4-small, ..."})
    space_stage_dir: Optional[str] = field(default=None, metadata={
        "help": "Where the Space's files are staged (default: space/ beside --model_dir)."})
    code_url: Optional[str] = field(default=None, metadata={
        "help": "Where this training code is published (https://...): the card links it, and its model-index "
                "names it as the source of the results."})
    dataset_repo_id: Optional[str] = field(default=None, metadata={
        "help": "Also publish the prepared splits the model was trained and scored on as the Hub dataset "
                "USER/NAME (created if absent), with a dataset card; the model card's datasets: names it."})
    data_dir: Optional[str] = field(default=None, metadata={
        "help": "The prepare_data.py folder to publish with --dataset_repo_id (default: data/ of the run folder "
                "holding --model_dir); it must hold exactly the articles the model was trained on."})
    dataset_stage_dir: Optional[str] = field(default=None, metadata={
        "help": "Where the dataset card is staged (default: dataset_card/ beside --model_dir)."})
    license: Optional[str] = field(default=None, metadata={
        "help": "The Hub license id of the model, its Space and its dataset (cc-by-sa-4.0, apache-2.0, mit, other, "
                "...). Required for a model trained on your own text, whose terms only you know; default for a "
                "Wikipedia dump: CC BY-SA 3.0, or 4.0 for a dump of 2023-06-07 or later. Where the data or the base "
                "model is CC BY-SA, only CC BY-SA of the same or a later version is taken."})
    eval_results: Optional[list[str]] = field(default=None, metadata={
        "help": "lm-eval result files (results_*.json) of this model on the Japanese tasks (docs/evaluation.md): "
                "model-index entries and a table on the card. Each must name this model: its pretrained= is "
                "--model_dir or --repo_id."})
    compare_results: Optional[list[str]] = field(default=None, metadata={
        "help": "Other models' lm-eval result files on the same tasks, task versions and few-shot counts: a "
                "comparison table beside this model's scores (never in its model-index)."})

    def __post_init__(self):
        from huggingface_hub import SpaceHardware
        check_repo_id("--repo_id", self.repo_id)
        check_repo_id("--space_id", self.space_id)
        check_repo_id("--dataset_repo_id", self.dataset_repo_id)
        for flag, value in (("--data_dir", self.data_dir), ("--dataset_stage_dir", self.dataset_stage_dir)):
            if value is not None and not self.dataset_repo_id:
                raise ValueError(f"{flag} needs --dataset_repo_id: it is for the dataset published there.")
        check_hub_license_id("--license", self.license)
        if self.code_url is not None and not re.fullmatch(r"https?://[^\s/]+\.[^\s]+", self.code_url):
            raise ValueError(f"--code_url {self.code_url!r} is not a web address such as "
                             "https://github.com/USER/gpt2-small-ja.")
        if self.space_hardware is not None:
            if not self.space_id:
                raise ValueError("--space_hardware needs --space_id: it is the hardware of that Space.")
            known = [hardware.value for hardware in SpaceHardware]
            if self.space_hardware not in known:
                raise ValueError(f"--space_hardware {self.space_hardware!r} is not Space hardware the Hub knows: "
                                 f"one of {', '.join(known)}.")


# --- the model repo ---------------------------------------------------------------------------------

def commit_message(results):
    scores = [f"{split} loss {results[f'{prefix}_loss']:.3f}" for split, prefix in RESULT_PREFIXES.items()
              if f"{prefix}_loss" in results]
    return "Upload GPT-2 small Japanese" + (f" ({', '.join(scores)})" if scores else "")


def copy_tensorboard_logs(model_dir, target):
    """The run's TensorBoard event files (logs/ of the run folder holding model_dir) under target/<run name>/,
    as the Hub's Training metrics tab reads them; none if the model folder is not in a run folder."""
    logs = RunFolder(model_dir.resolve().parent).logs
    events = sorted(logs.rglob("events.out.tfevents.*")) if logs.is_dir() else []
    if not events:
        logger.warning("No TensorBoard logs in %s: the repo gets no Training metrics tab.", logs)
    for path in events:
        destination = target / logs.parent.name / path.relative_to(logs)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, destination)


@dataclass
class ModelRepo:
    """The model repo: weights, configs, tokenizer files, the card, the training curve, the TensorBoard logs."""
    model: ModelFolder
    links: Links
    stage_dir: Path
    args: PushArguments
    downstream: Optional[Downstream] = None  # the lm-eval results given (--eval_results, --compare_results)
    tagging: str = "create"  # what becomes of --revision_tag (gpt2ja.hub.check_tag): check_remote finds out
    flag = "--stage_dir"

    def stage(self, folder):
        for name in MODEL_FILES + OPTIONAL_MODEL_FILES:
            if (self.model.path / name).is_file():
                shutil.copy(self.model.path / name, folder / name)
        plot_curve(self.model.state, folder / CURVE, tokens_per_step(self.model), self.model.config.vocab_size)
        copy_tensorboard_logs(self.model.path, folder / TENSORBOARD_DIR)
        card = model_card(self.model, self.links, example_output(self.model.path, self.args.example_seed),
                          self.args.example_seed, self.downstream)
        check_card_metadata(card)
        card.save(folder / "README.md")
        return {"model_dir": str(self.model.path), "repo_id": self.links.repo_id}

    def check_remote(self, api):
        tag = self.args.revision_tag
        if tag:
            self.tagging = check_tag(api, self.links.repo_id, tag, self.args.move_tag, self.stage_dir)

    def upload(self, api):
        repo_id, tag = self.links.repo_id, self.args.revision_tag
        if self.tagging == "done":
            logger.info("The tag %s of %s already holds exactly %s: nothing to upload.", tag, repo_id, self.stage_dir)
            return None
        message = self.args.commit_message or commit_message(self.model.results)
        url, commit = mirror_folder(api, self.stage_dir, repo_id, "model", message, self.args.private)
        if tag:
            with hub_errors(api, repo_id):
                if self.tagging == "move":
                    api.delete_tag(repo_id, tag=tag)
                api.create_tag(repo_id, tag=tag, revision=commit.oid)
        logger.info("Uploaded %s to %s (commit %s)%s.", self.stage_dir, url, commit.oid,
                    (f", tag {tag} moved to it" if self.tagging == "move" else f", tagged {tag}") if tag else "")
        return commit


# --- the Space -----------------------------------------------------------------------------------------

@dataclass
class SpaceRepo:
    """The live demo: the Gradio app of space/, as a Space that runs the model repo and names it."""
    links: Links
    stage_dir: Path
    args: PushArguments
    trained_on: Optional[str]  # the source's short name, which the Space's one-line description gives
    flag = "--space_stage_dir"

    def stage(self, folder):
        stage_space_files(folder, self.links.repo_id, self.links.space_id, self.links.license,
                          self.args.space_hardware, self.links.code_url, self.trained_on)
        return {"space_id": self.links.space_id, "repo_id": self.links.repo_id}

    def check_remote(self, api):
        pass

    def upload(self, api):
        url, commit = mirror_folder(api, self.stage_dir, self.links.space_id, "space",
                                    f"Live demo of {self.links.repo_id}", self.args.private, space_sdk="gradio",
                                    space_hardware=self.args.space_hardware)
        logger.info("Uploaded the demo %s to %s (commit %s).", self.stage_dir, url, commit.oid)
        if self.args.private:
            logger.warning("The model and the Space are private: give the Space an HF_TOKEN secret that can read "
                           "%s.", self.links.repo_id)
        return commit


# --- the dataset -----------------------------------------------------------------------------------

def prepared_splits(data_dir, model):
    """The prepared splits in data_dir, refused unless they hold exactly the articles the model was trained
    on: compared by content with the fingerprint in run_info.json."""
    import datasets

    from gpt2ja.splits import content_fingerprint
    if Preparation.load(data_dir) is None or not (data_dir / "dataset_dict.json").is_file():
        raise UserError(f"{data_dir} holds no prepared data (dataset_dict.json and preparation.json from "
                        "prepare_data.py); pass --data_dir, the folder the model was trained on.")
    splits = datasets.load_from_disk(str(data_dir))
    if content_fingerprint(splits) != model.info.identity["data"]:
        raise UserError(f"{data_dir} holds other articles than {model.path} was trained on (their fingerprint "
                        f"differs from run_info.json's {model.info.identity['data'][:12]}); pass the --data_dir of "
                        "that run, so that the dataset is the one the model's results were measured on.")
    return splits


@dataclass
class DatasetRepo:
    """The prepared splits the model was trained and scored on, with a dataset card; published first, so
    that the model card never names a dataset that is not there."""
    model: ModelFolder
    links: Links
    stage_dir: Path
    args: PushArguments
    data_dir: Path
    flag = "--dataset_stage_dir"

    def __post_init__(self):  # before the model's staging, which takes a while
        self.splits = prepared_splits(self.data_dir, self.model)
        # the record the run kept, so the card's counts are those of the data trained on
        self.preparation = self.model.info.preparation or Preparation.load(self.data_dir)

    def stage(self, folder):
        dataset_card(self.links, self.preparation, self.model.config.eos_token_id).save(folder / "README.md")
        return {"dataset_repo_id": self.links.dataset_repo_id}

    def check_remote(self, api):
        pass

    def is_published(self, api):
        """Whether the dataset repo holds these splits already: its card is the staged one (which names the
        splits' content fingerprint) with the entries DatasetDict.push_to_hub adds once the splits are in."""
        from huggingface_hub import DatasetCard
        from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError
        try:
            published = DatasetCard.load(self.links.dataset_repo_id, repo_type="dataset", token=api.token)
        except (EntryNotFoundError, RepositoryNotFoundError, ValueError):  # (ValueError: a card with broken YAML)
            return False
        staged = DatasetCard.load(self.stage_dir / "README.md")
        metadata = published.data.to_dict()
        added = {key: metadata.pop(key, None) for key in ("dataset_info", "configs")}
        return bool(added["dataset_info"]) and metadata == staged.data.to_dict() and published.text.strip() == (
            staged.text.strip())

    def upload(self, api):
        dataset_repo_id = self.links.dataset_repo_id
        with hub_errors(api, dataset_repo_id):
            if self.is_published(api):
                logger.info("%s holds these splits and this card already: not uploaded again.", dataset_repo_id)
                return None
            url = api.create_repo(dataset_repo_id, repo_type="dataset", private=self.args.private, exist_ok=True)
            # the card goes first: DatasetDict.push_to_hub keeps a card's text and YAML, adding its own entries
            api.upload_file(path_or_fileobj=str(self.stage_dir / "README.md"), path_in_repo="README.md",
                            repo_id=dataset_repo_id, repo_type="dataset", commit_message="Dataset card")
            commit = self.splits.push_to_hub(
                dataset_repo_id, private=self.args.private, token=api.token,
                commit_message=f"The prepared splits {self.links.repo_id} was trained and scored on")
        logger.info("Uploaded the dataset to %s (commit %s).", url, commit.oid)
        return commit


# --- check -> stage -> upload ------------------------------------------------------------------------

def log_staged(stage_dir):
    for path in sorted(p for p in stage_dir.rglob("*") if p.is_file() and p.name != StagingRecord.FILE):
        logger.info("staged %-40s %12s bytes", path.relative_to(stage_dir), f"{path.stat().st_size:,}")


def push(args):
    model_dir = Path(args.model_dir)
    api, repo_id = None, args.repo_id
    if not args.dry_run:
        api = hub_api()
        if not repo_id:  # the card names the repo, so the user is asked first
            repo_id = f"{logged_in_user(api)}/{DEFAULT_REPO_NAME}"
            logger.info("No --repo_id: publishing to %s, under the logged-in user.", repo_id)
    beside = model_dir.parent
    stage_dirs = {"model": Path(args.stage_dir or beside / "hub"),
                  "space": Path(args.space_stage_dir or beside / "space"),
                  "dataset": Path(args.dataset_stage_dir or beside / "dataset_card")}
    staged = {product: flag for product, flag in (("model", "--stage_dir"),
                                                  ("space", args.space_id and "--space_stage_dir"),
                                                  ("dataset", args.dataset_repo_id and "--dataset_stage_dir")) if flag}
    for (a, flag_a), (b, flag_b) in itertools.combinations(staged.items(), 2):
        folder_a, folder_b = stage_dirs[a].resolve(), stage_dirs[b].resolve()
        if folder_a.is_relative_to(folder_b) or folder_b.is_relative_to(folder_a):
            raise UserError(f"{flag_a} {stage_dirs[a]} and {flag_b} {stage_dirs[b]} overlap; each repo is staged "
                            "in a folder of its own, neither inside the other.")
    for product, flag in staged.items():
        check_output_folder(stage_dirs[product], StagingRecord, flag)

    model = ModelFolder.check(model_dir)
    links = Links(repo_id or f"<user>/{DEFAULT_REPO_NAME}", args.space_id, args.revision_tag, args.code_url,
                  args.dataset_repo_id, model_license(args.license, model.info))
    downstream = Downstream.read(args.eval_results, args.compare_results, model_dir, links.repo_id)
    products = [ModelRepo(model, links, stage_dirs["model"], args, downstream)]  # in the order of upload
    if args.dataset_repo_id:
        data_dir = Path(args.data_dir) if args.data_dir else RunFolder(beside).data
        products.insert(0, DatasetRepo(model, links, stage_dirs["dataset"], args, data_dir))
    if args.space_id:
        products.append(SpaceRepo(links, stage_dirs["space"], args, source_of(model.info.preparation).short_name))

    with ExitStack() as held:  # the folders stay locked until the upload has read them
        for product in products:
            build = held.enter_context(building(product.stage_dir, flag=product.flag))
            build.finish(StagingRecord(identity=product.stage(build.output)))
            log_staged(product.stage_dir)
        if args.dry_run:
            logger.info("Dry run: %s ready; nothing was uploaded.", " and ".join(str(p.stage_dir) for p in products))
            return stage_dirs["model"], None
        for product in products:  # before any upload: a refusal leaves the Hub untouched
            product.check_remote(api)
        commits = {type(product).__name__: product.upload(api) for product in products}
        return stage_dirs["model"], commits["ModelRepo"]


def main(argv=None):
    (args,) = parse_args([PushArguments], argv, description=__doc__)
    return push(args)


if __name__ == "__main__":
    run_main(main)
