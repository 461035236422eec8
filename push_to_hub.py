"""Stage the files a Hub model repo needs, render the model card, upload.

    python push_to_hub.py                                             # runs/reference/model -> <you>/gpt2-small-ja
    python push_to_hub.py --model_dir runs/demo/model --repo_id USER/NAME [--private] [--revision_tag TAG]
    python push_to_hub.py --model_dir runs/demo/model --dry_run       # stage and check, no network
    python push_to_hub.py ... --space_id USER/NAME                    # and a live demo: a Gradio Space
    python push_to_hub.py ... --dataset_repo_id USER/NAME             # and the prepared splits, as a dataset

The staged folder (default: hub/ beside the model folder) holds exactly what the
repo needs: weights, configs, tokenizer files, the card (README.md), the
training curve and the run's TensorBoard logs under runs/ (the Hub's "Training
metrics" tab); the repo is made its mirror. With --space_id, the app in space/
is staged too (default: space/ beside the model folder), with a README that
names the model, and uploaded as a Gradio Space that the model card links to.
With --dataset_repo_id, the prepared splits the model was trained and scored on
are published with `DatasetDict.push_to_hub` and a dataset card (staged, default:
dataset_card/ beside the model folder), before the model, whose card names them.
The token comes from HF_TOKEN or the stored login (`hf auth login`) and is never
printed or written.
"""

import importlib
import json
import logging
import math
import re
import shutil
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from transformers import AutoConfig, BertGenerationTokenizer, pipeline, set_seed

from gpt2ja.cli import UserError, parse_args, run_main
from gpt2ja.run_folder import (ALL_RESULTS, MODEL_FILES, OPTIONAL_MODEL_FILES, RESULT_PREFIXES, RUN_FILES,
                               TRAINER_STATE, RunFolder, RunInfo, holds_own_output, move_into_place, read_json,
                               space_errors, writing)
from gpt2ja.settings import DEFAULT_REPO_NAME, DEFAULT_RUN_DIR, PROMPT, REPO_ROOT
from gpt2ja.splits import SPLITS, Preparation
from gpt2ja.tokens import load_tokenizer
from gpt2ja.wikitext import CLEANING

logger = logging.getLogger("push_to_hub")

TEMPLATE = REPO_ROOT / "model_card" / "README.md.j2"
DATASET_TEMPLATE = REPO_ROOT / "model_card" / "dataset_card.md.j2"
SPACE_APP = REPO_ROOT / "space"
SPACE_FILES = ("app.py", "requirements.txt")
SPACE_PYTHON = "3.10"  # ZeroGPU's Python; space/requirements.txt pins what runs on it
CURVE = "training_curve.png"
TENSORBOARD_DIR = "runs"  # where the Hub looks for tfevents files
STAGING_RECORD = ".staged_by_push_to_hub.json"


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

    def __post_init__(self):
        from huggingface_hub import SpaceHardware
        check_repo_id("--repo_id", self.repo_id)
        check_repo_id("--space_id", self.space_id)
        check_repo_id("--dataset_repo_id", self.dataset_repo_id)
        for flag, value in (("--data_dir", self.data_dir), ("--dataset_stage_dir", self.dataset_stage_dir)):
            if value is not None and not self.dataset_repo_id:
                raise ValueError(f"{flag} needs --dataset_repo_id: it is for the dataset published there.")
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


def check_repo_id(flag, repo_id):
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id
    if repo_id is None:
        return
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"{flag} {repo_id!r} is not a Hub repo id such as USER/NAME: "
                         f"{str(error).splitlines()[0]}") from None
    if "/" not in repo_id:
        raise ValueError(f"{flag} {repo_id!r} is not a Hub repo id such as USER/NAME: it names no user or "
                         "organization.")


def check_model_folder(model_dir):
    """Refuse a folder that misses a file, whose tokenizer is not BertGenerationTokenizer, or whose
    tokenizer size differs from the config's vocabulary."""
    model_dir = Path(model_dir)
    missing = [name for name in MODEL_FILES + RUN_FILES if not (model_dir / name).is_file()]
    if missing:
        raise UserError(f"{model_dir} lacks {', '.join(missing)}; point --model_dir at the model/ folder of a "
                        "finished train.py run.")
    tokenizer = load_tokenizer(model_dir)
    if not isinstance(tokenizer, BertGenerationTokenizer):
        raise UserError(f"The tokenizer in {model_dir} loads as {type(tokenizer).__name__}, not "
                        "BertGenerationTokenizer; copy the folder tokenizer.py wrote.")
    if RunInfo.load(model_dir) is None:
        raise UserError(f"{model_dir}/run_info.json was written by an older version of train.py; rerun train.py "
                        "with --overwrite_output_dir to make a folder push_to_hub.py can describe.")
    config = AutoConfig.from_pretrained(model_dir)
    if config.vocab_size != len(tokenizer):
        raise UserError(f"{model_dir}: config.json has a vocabulary of {config.vocab_size} but the tokenizer holds "
                        f"{len(tokenizer)} entries; they must come from the same run.")
    return tokenizer, config


def plot_curve(trainer_state, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    history = trainer_state["log_history"]
    train = [(e["step"], e["loss"]) for e in history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e]
    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        axes.plot(*zip(*train), label="train loss", linewidth=1)
    if evals:
        axes.plot(*zip(*evals), label="validation loss", marker="o", markersize=3)
    axes.set_xlabel("step")
    axes.set_ylabel("loss (nats per token)")
    axes.grid(alpha=0.3)
    if train or evals:
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


def example_output(model_dir, seed):
    set_seed(seed)
    generator = pipeline("text-generation", model=str(model_dir), device=0 if torch.cuda.is_available() else -1)
    return generator(PROMPT, max_new_tokens=50)[0]["generated_text"]


def describe_time(seconds):
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"


@dataclass
class Links:
    """What the card says beyond the run's own files: where the model, its demo, its code and this version are."""
    repo_id: str
    space_id: Optional[str] = None
    revision_tag: Optional[str] = None
    code_url: Optional[str] = None
    dataset_repo_id: Optional[str] = None


def render_card(model_dir, links, tokenizer, config, example, seed):
    from huggingface_hub import EvalResult, ModelCard, ModelCardData
    results = read_json(model_dir / ALL_RESULTS)
    state = read_json(model_dir / TRAINER_STATE)
    info = RunInfo.load(model_dir)
    sampling = read_json(model_dir / "generation_config.json")
    dataset_name = f"Japanese Wikipedia ({info.dump_date})" if info.dump_date else "Japanese Wikipedia"
    dataset_args = {"language": "ja", **({"dump_date": info.dump_date} if info.dump_date else {})}
    source = {"source_name": "gpt2-small-ja training code (metrics/causal_lm_eval)",
              "source_url": links.code_url} if links.code_url else {}
    dataset_id = links.dataset_repo_id or "wikipedia"
    eval_results = [
        EvalResult(task_type="text-generation", task_name="Causal language modeling", dataset_type=dataset_id,
                   dataset_name=dataset_name, dataset_config="default" if links.dataset_repo_id else "ja",
                   dataset_args=dataset_args,
                   dataset_split=split, metric_type=metric, metric_name=name,
                   metric_value=round(results[f"{prefix}_{metric}"], 4), **source)
        for split, prefix in RESULT_PREFIXES.items() if f"{prefix}_loss" in results
        for metric, name in (("loss", "Loss"), ("perplexity", "Perplexity"),
                             ("bits_per_character", "Bits per character"))
    ]
    card_data = ModelCardData(
        language="ja", license="cc-by-sa-3.0", datasets=[dataset_id], pipeline_tag="text-generation",
        library_name="transformers", tags=["gpt2", "japanese", "causal-lm"],
        widget=[{"text": PROMPT, "output": {"text": example}}],
        model_name=links.repo_id.split("/")[-1], eval_results=eval_results,
    )
    devices = sorted(set(info.hardware["devices"]))
    special_ids = sorted((tokenizer.convert_tokens_to_ids(token), token) for token in tokenizer.all_special_tokens)
    return ModelCard.from_template(
        card_data, template_path=str(TEMPLATE), model_name=links.repo_id.split("/")[-1], repo_id=links.repo_id,
        prompt=PROMPT, example_output=example, example_seed=seed, vocab_size=config.vocab_size,
        parameters=parameter_count(model_dir), recipe=info.recipe, data=info.data, dump_date=info.dump_date,
        sources=[Path(source).name for source in info.sources], sampling=sampling, special_ids=special_ids,
        eos_id=tokenizer.eos_token_id,
        final_train_loss=next((e["loss"] for e in reversed(state["log_history"]) if "loss" in e), None),
        tokens=info.tokens, tokenizer=info.tokenizer, steps=state["global_step"],
        epochs=state.get("epoch") or 0, hardware=f"{info.hardware['processes']} x {', '.join(devices)}",
        training_time=describe_time(results.get("train_runtime", 0)), versions=info.versions, results=results,
        space_id=links.space_id, revision_tag=links.revision_tag, code_url=links.code_url,
        dataset_repo_id=links.dataset_repo_id, cleaning=CLEANING[info.data.settings["cleaner"]] if info.data else None,
    )


def parameter_count(model_dir):
    from safetensors import safe_open
    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as weights:
        return sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())


def commit_message(model_dir):
    results = read_json(Path(model_dir) / ALL_RESULTS)
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


def check_card_metadata(card):
    """Refuse, before anything is uploaded, a card whose metadata the Hub would reject or that would publish
    broken results: it must read back as written (model-index included), every result a finite number."""
    from huggingface_hub import ModelCard
    try:
        data = ModelCard(str(card), ignore_metadata_errors=False).data
    except ValueError as error:
        raise UserError(f"The model card's metadata does not read back ({str(error).splitlines()[0]}); "
                        "nothing was uploaded.") from None
    broken = [f"{result.dataset_split} {result.metric_type} {result.metric_value}" for result in data.eval_results
              if not (isinstance(result.metric_value, (int, float)) and math.isfinite(result.metric_value))]
    if broken:
        raise UserError(f"The run's results are not all finite numbers ({', '.join(broken)}): a model that "
                        "diverged, or broken *_results.json files; nothing was uploaded.")


def stage(model_dir, tokenizer, config, stage_dir, partial, links, seed):
    """Write exactly the repo's files to stage_dir (replacing an earlier staging, and nothing else), building
    them in the scratch folder `partial`; return the card. The model folder is one check_model_folder passed
    (tokenizer and config are what it returned). STAGING_RECORD marks the folder as this step's; it is not
    uploaded."""
    model_dir, stage_dir = Path(model_dir), Path(stage_dir)
    with space_errors(stage_dir):
        for name in MODEL_FILES + OPTIONAL_MODEL_FILES:
            if (model_dir / name).is_file():
                shutil.copy(model_dir / name, partial / name)
        plot_curve(read_json(model_dir / TRAINER_STATE), partial / CURVE)
        copy_tensorboard_logs(model_dir, partial / TENSORBOARD_DIR)
        card = render_card(model_dir, links, tokenizer, config, example_output(model_dir, seed), seed)
        check_card_metadata(card)
        card.save(partial / "README.md")
        (partial / STAGING_RECORD).write_text(json.dumps({"model_dir": str(model_dir), "repo_id": links.repo_id}))
        move_into_place(partial, stage_dir, STAGING_RECORD)
    return card


def stage_space(stage_dir, partial, repo_id, space_id):
    """Write the Space's files to stage_dir as stage() does: the app, its requirements, and a README whose
    YAML makes it a Gradio Space that runs (and names) the model repo_id."""
    from importlib.metadata import version

    from huggingface_hub import SpaceCard, SpaceCardData
    with space_errors(stage_dir):
        for name in SPACE_FILES:
            shutil.copy(SPACE_APP / name, partial / name)
        data = SpaceCardData(title=space_id.split("/")[-1], sdk="gradio", sdk_version=version("gradio"),
                             python_version=SPACE_PYTHON, app_file="app.py", license="cc-by-sa-3.0",
                             models=[repo_id], tags=["japanese", "text-generation", "gpt2"],
                             emoji="🗾", colorFrom="indigo", colorTo="gray", pinned=False,
                             short_description="Continue Japanese text with a GPT-2 trained on Wikipedia")
        body = (SPACE_APP / "README.md").read_text(encoding="utf-8")
        SpaceCard(f"---\n{data.to_yaml()}\n---\n\n{body}").save(partial / "README.md")
        (partial / STAGING_RECORD).write_text(json.dumps({"space_id": space_id, "repo_id": repo_id}))
        move_into_place(partial, stage_dir, STAGING_RECORD)


def check_data_folder(data_dir, model_dir):
    """The prepared splits in data_dir and the record of their preparation, refused unless they hold exactly
    the articles the model was trained on: compared by content with the fingerprint in run_info.json. The
    record is the one the run kept (run_info.json), so the card's counts are those of the data trained on.
    The model folder is one check_model_folder passed."""
    import datasets

    from gpt2ja.fingerprints import content_fingerprint
    record = Preparation.load(data_dir)
    if record is None or not (data_dir / "dataset_dict.json").is_file():
        raise UserError(f"{data_dir} holds no prepared data (dataset_dict.json and preparation.json from "
                        "prepare_data.py); pass --data_dir, the folder the model was trained on.")
    splits = datasets.load_from_disk(str(data_dir))
    info = RunInfo.load(model_dir)
    if content_fingerprint(splits) != info.identity["data"]:
        raise UserError(f"{data_dir} holds other articles than {model_dir} was trained on (their fingerprint "
                        f"differs from run_info.json's {info.identity['data'][:12]}); pass the --data_dir of that "
                        "run, so that the dataset is the one the model's results were measured on.")
    return splits, info.data or record


def size_category(rows):
    """The Hub's size_categories value for a dataset of `rows` rows."""
    bounds = [(10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"),
              (10**7, "1M<n<10M"), (10**8, "10M<n<100M")]
    return next((name for bound, name in bounds if rows < bound), "100M<n<1B")  # more articles than any wiki has


def stage_dataset_card(stage_dir, partial, links, record, eos_id):
    """Write the dataset card to stage_dir as stage() writes the model's files: license, dump date, counts and
    what cleaning removed; DatasetDict.push_to_hub adds the splits' files and sizes to its YAML."""
    from huggingface_hub import DatasetCard, DatasetCardData
    pretty_name = f"Japanese Wikipedia {record.dump_date or ''} for gpt2-small-ja".replace("  ", " ")
    data = DatasetCardData(language=["ja"], license="cc-by-sa-3.0", pretty_name=pretty_name,
                           task_categories=["text-generation"], task_ids=["language-modeling"],
                           size_categories=[size_category(record.articles)], source_datasets=["original"],
                           tags=["wikipedia", "japanese"])
    card = DatasetCard.from_template(
        data, template_path=str(DATASET_TEMPLATE), pretty_name=pretty_name, repo_id=links.repo_id,
        dataset_repo_id=links.dataset_repo_id, dump_date=record.dump_date, data=record, splits=SPLITS,
        cleaning=CLEANING[record.settings["cleaner"]], code_url=links.code_url, eos_id=eos_id)
    with space_errors(stage_dir):
        card.save(partial / "README.md")
        try:
            DatasetCard(str(partial / "README.md"), ignore_metadata_errors=False)
        except ValueError as error:
            raise UserError(f"The dataset card's metadata does not read back ({str(error).splitlines()[0]}); "
                            "nothing was uploaded.") from None
        (partial / STAGING_RECORD).write_text(json.dumps({"dataset_repo_id": links.dataset_repo_id}))
        move_into_place(partial, stage_dir, STAGING_RECORD)


def network_errors():
    """What a failed connection raises: OSError, or the HTTP client's own errors (huggingface_hub 2 uses
    httpx2, earlier versions httpx or requests)."""
    errors = [OSError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


@contextmanager
def hub_errors(api, what):
    """Turn the Hub client's failures into one sentence that says what to do."""
    from huggingface_hub.errors import HfHubHTTPError
    try:
        yield
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status in (401, 403):
            raise UserError(f"The Hub refused the token (HTTP {status}) for {what}: it needs write access; run "
                            "`hf auth login` with a write token or set HF_TOKEN.") from None
        raise UserError(f"The Hub answered HTTP {status} for {what} ({str(error).splitlines()[0]}); "
                        "rerun the same command to finish the upload.") from None
    except ValueError as error:
        if not str(error).startswith("Invalid metadata"):
            raise
        # not the network: the same card would be refused again, so a rerun is no answer
        reasons = "; ".join(line.lstrip("- ") for line in str(error).splitlines()[1:]) or "no reason given"
        raise UserError(f"The Hub rejected the card's metadata for {what} ({reasons}); nothing was committed. "
                        "The card comes from push_to_hub.py and model_card/ (space/ for a Space): fix it there "
                        "(or report it), then push again.") from None
    except network_errors() as error:
        raise UserError(f"Could not reach {api.endpoint} ({type(error).__name__}: {error}); check the network "
                        "and rerun the same command to finish the upload.") from None


def hub_api():
    from huggingface_hub import HfApi, get_token
    token = get_token()
    if not token:
        raise UserError("No Hugging Face token: run `hf auth login` with a write token, or set HF_TOKEN.")
    return HfApi(token=token)


def check_tag(api, repo_id, tag, move):
    """Refuse, before any upload, a tag that exists already (a tag names one published model) unless asked to
    move it; return whether it must be deleted first."""
    with hub_errors(api, repo_id):
        if not api.repo_exists(repo_id):
            return False
        existing = {ref.name: ref.target_commit for ref in api.list_repo_refs(repo_id).tags}
    if tag not in existing:
        return False
    if not move:
        raise UserError(f"The tag {tag} of {repo_id} already points at commit {existing[tag][:12]}; pass "
                        "--move_tag to move it to this upload, or another --revision_tag.")
    return True


def upload(api, stage_dir, repo_id, private, tag, move_tag, message):
    moving = check_tag(api, repo_id, tag, move_tag) if tag else False
    with hub_errors(api, repo_id):
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        # the repo mirrors the staged folder: what the staging no longer holds leaves the repo in the same commit
        commit = api.upload_folder(folder_path=str(stage_dir), repo_id=repo_id, repo_type="model",
                                   commit_message=message, ignore_patterns=[STAGING_RECORD], delete_patterns="*")
        if moving:
            api.delete_tag(repo_id, tag=tag)
        if tag:
            api.create_tag(repo_id, tag=tag, revision=commit.oid)
    logger.info("Uploaded %s to %s (commit %s)%s.", stage_dir, url, commit.oid,
                (f", tag {tag} moved to it" if moving else f", tagged {tag}") if tag else "")
    return commit


def upload_space(api, stage_dir, space_id, repo_id, private, hardware):
    with hub_errors(api, space_id):
        url = api.create_repo(space_id, repo_type="space", space_sdk="gradio", space_hardware=hardware,
                              private=private, exist_ok=True)
        commit = api.upload_folder(folder_path=str(stage_dir), repo_id=space_id, repo_type="space",
                                   commit_message=f"Live demo of {repo_id}", ignore_patterns=[STAGING_RECORD],
                                   delete_patterns="*")
    logger.info("Uploaded the demo %s to %s (commit %s).", stage_dir, url, commit.oid)
    if private:
        logger.warning("The model and the Space are private: give the Space an HF_TOKEN secret that can read %s.",
                       repo_id)
    return commit


def is_published(api, dataset_repo_id, card_path):
    """Whether the dataset repo holds these splits already: its card is the staged one (which names the splits'
    content fingerprint) with the entries DatasetDict.push_to_hub adds once the splits are in."""
    from huggingface_hub import DatasetCard
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError
    try:
        published = DatasetCard.load(dataset_repo_id, repo_type="dataset", token=api.token)
    except (EntryNotFoundError, RepositoryNotFoundError, ValueError):  # (ValueError: a card with broken YAML)
        return False
    staged = DatasetCard.load(card_path)
    metadata = published.data.to_dict()
    added = {key: metadata.pop(key, None) for key in ("dataset_info", "configs")}
    return bool(added["dataset_info"]) and metadata == staged.data.to_dict() and published.text.strip() == (
        staged.text.strip())


def upload_dataset(api, stage_dir, splits, links, private):
    with hub_errors(api, links.dataset_repo_id):
        if is_published(api, links.dataset_repo_id, stage_dir / "README.md"):
            logger.info("%s holds these splits and this card already: not uploaded again.", links.dataset_repo_id)
            return None
        url = api.create_repo(links.dataset_repo_id, repo_type="dataset", private=private, exist_ok=True)
        # the card goes first: DatasetDict.push_to_hub keeps a card's text and YAML, adding its own entries
        api.upload_file(path_or_fileobj=str(stage_dir / "README.md"), path_in_repo="README.md",
                        repo_id=links.dataset_repo_id, repo_type="dataset", commit_message="Dataset card")
        commit = splits.push_to_hub(links.dataset_repo_id, private=private, token=api.token,
                                    commit_message=f"The prepared splits {links.repo_id} was trained and scored on")
    logger.info("Uploaded the dataset to %s (commit %s).", url, commit.oid)
    return commit


def log_staged(stage_dir):
    for path in sorted(p for p in stage_dir.rglob("*") if p.is_file() and p.name != STAGING_RECORD):
        logger.info("staged %-40s %12s bytes", path.relative_to(stage_dir), f"{path.stat().st_size:,}")


def push(args):
    model_dir = Path(args.model_dir)
    stage_dir = Path(args.stage_dir) if args.stage_dir else model_dir.parent / "hub"
    space_stage_dir = Path(args.space_stage_dir) if args.space_stage_dir else model_dir.parent / "space"
    data_dir = Path(args.data_dir) if args.data_dir else RunFolder(model_dir.parent).data
    dataset_stage_dir = Path(args.dataset_stage_dir or model_dir.parent / "dataset_card")
    api, repo_id = None, args.repo_id
    if not args.dry_run:
        api = hub_api()
        if not repo_id:  # the card names the repo, so the user is asked first
            with hub_errors(api, "the logged-in user"):
                repo_id = f"{api.whoami()['name']}/{DEFAULT_REPO_NAME}"
            logger.info("No --repo_id: publishing to %s, under the logged-in user.", repo_id)
    repo_id = repo_id or f"<user>/{DEFAULT_REPO_NAME}"
    holds_own_output(stage_dir, STAGING_RECORD, "--stage_dir")
    if args.space_id:
        holds_own_output(space_stage_dir, STAGING_RECORD, "--space_stage_dir")
    if args.dataset_repo_id:
        holds_own_output(dataset_stage_dir, STAGING_RECORD, "--dataset_stage_dir")
    with ExitStack() as held:  # the folders stay locked until the upload has read them
        links = Links(repo_id, args.space_id, args.revision_tag, args.code_url, args.dataset_repo_id)
        tokenizer, config = check_model_folder(model_dir)
        if args.dataset_repo_id:  # before the model's staging, which takes a while
            splits, record = check_data_folder(data_dir, model_dir)
        stage(model_dir, tokenizer, config, stage_dir, held.enter_context(writing(stage_dir)), links,
              args.example_seed)
        staged = [stage_dir]
        if args.dataset_repo_id:
            stage_dataset_card(dataset_stage_dir, held.enter_context(writing(dataset_stage_dir)), links, record,
                               config.eos_token_id)
            staged.append(dataset_stage_dir)
        if args.space_id:
            stage_space(space_stage_dir, held.enter_context(writing(space_stage_dir)), repo_id, args.space_id)
            staged.append(space_stage_dir)
        for folder in staged:
            log_staged(folder)
        if args.dry_run:
            logger.info("Dry run: %s ready; nothing was uploaded.", " and ".join(map(str, staged)))
            return stage_dir, None
        if args.dataset_repo_id:  # first, so that the model card never names a dataset that is not there
            upload_dataset(api, dataset_stage_dir, splits, links, args.private)
        message = args.commit_message or commit_message(model_dir)
        commit = upload(api, stage_dir, repo_id, args.private, args.revision_tag, args.move_tag, message)
        if args.space_id:
            upload_space(api, space_stage_dir, args.space_id, repo_id, args.private, args.space_hardware)
        return stage_dir, commit


def main(argv=None):
    (args,) = parse_args([PushArguments], argv, description=__doc__)
    return push(args)


if __name__ == "__main__":
    run_main(main)
