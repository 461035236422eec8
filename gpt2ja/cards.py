"""The cards push_to_hub.py publishes, rendered from the run's own files: the model card (with its training
curve and example output), the Space's card, the dataset card. Templates live in model_card/ (space/ for
the body of the Space's card).

A model folder is read once, by `ModelFolder.check`, into what the cards need; a folder that misses a file
or whose tokenizer and config disagree is refused there, before anything is staged.
"""

import datetime
import logging
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NamedTuple, Optional
from urllib.parse import urlparse

from .errors import UserError
from .rerun import read_json
from .run_folder import ALL_RESULTS, MODEL_FILES, RESULT_PREFIXES, RUN_FILES, TRAINER_STATE, RunInfo
from .settings import PROMPT, bundled
from .splits import SPLITS
from .tokenizer_folder import load_tokenizer, room_after
from .wikitext import CLEANING

logger = logging.getLogger(__name__)

MODEL_TEMPLATE = bundled("model_card") / "README.md.j2"
DATASET_TEMPLATE = bundled("model_card") / "dataset_card.md.j2"
SPACE_APP = bundled("space")
SPACE_PYTHON = "3.10"  # ZeroGPU's Python; space/requirements.txt pins what runs on it
CURVE = "training_curve.png"
REFERENCE_VALIDATION_LOSS = 3.50  # colorfulscoop/gpt2-small-ja's, per token of its 32,000-piece tokenizer


class License(NamedTuple):
    hub_id: str  # the Hub's license id
    name: str
    version: Optional[str]  # a Creative Commons license's; None for any other
    url: Optional[str]  # its deed; None for a license other than Creative Commons


# Wikipedia's Terms of Use moved its text to CC BY-SA 4.0 on this day; text from before stays 3.0, whose
# adaptations may be licensed under 4.0.
CC_BY_SA_4_SINCE = "20230607"
CC_VERSIONS = ("1.0", "2.0", "2.5", "3.0", "4.0")


def hub_license(hub_id):
    """The License of a Hub license id: a Creative Commons one (cc-by-sa-4.0, cc-by-nc-4.0, ...) with its name,
    version and deed; any other (mit, apache-2.0, other, ...) by its id alone."""
    match = re.fullmatch(r"cc-(by(?:-nc)?(?:-nd|-sa)?)-(\d\.\d)", hub_id)
    if not match:
        return License(hub_id, hub_id, None, None)
    elements, version = match.groups()
    return License(hub_id, f"CC {elements.upper()} {version}", version,
                   f"https://creativecommons.org/licenses/{elements}/{version}/")


def wikipedia_license(dump_date):
    """The license of what is derived from a Wikipedia dump: CC BY-SA 4.0 for a dump of 2023-06-07 or later,
    3.0 before; 4.0, with a warning, for a dump of unknown date (it may hold text contributed under 4.0)."""
    if dump_date is None:
        logger.warning("The dump's date is unknown: the cards say CC BY-SA 4.0, the license of Wikipedia text "
                       "since 2023-06-07 (and a license text under 3.0 may be adapted under).")
    return hub_license(f"cc-by-sa-{'3.0' if dump_date is not None and dump_date < CC_BY_SA_4_SINCE else '4.0'}")


def later_versions(license):
    """The ids of the license and of its later versions, where it is ShareAlike (CC BY-SA, CC BY-NC-SA): what
    ShareAlike lets an adaptation be licensed under. None for any other license."""
    if license.version is None or not license.hub_id.endswith(f"-sa-{license.version}"):
        return None
    family = license.hub_id.removesuffix(license.version)
    return [family + version for version in CC_VERSIONS[CC_VERSIONS.index(license.version):]]


def choose_license(requested, data_license, base_model=None):
    """The license the model, its Space and its dataset are published under: `requested` (--license, a Hub
    license id), required where the text is the user's own (data_license None: we cannot know its terms);
    without it, the data's (a Wikipedia dump's), or the base model's (run_info.json's base_model) where that is
    the later version of the same ShareAlike license. Refused where the data or the base model is ShareAlike
    and the license is not theirs, of the same or a later version."""
    if requested is None and data_license is None:
        raise UserError("--license is required for a model trained on your own text: give the Hub license id its "
                        "terms allow (cc-by-sa-4.0, apache-2.0, mit, other, ...), which this code cannot know.")
    sources = [("the training data", data_license)]
    if base_model and base_model.get("license"):
        sources.append((f"the base model {base_model['name']}", hub_license(base_model["license"])))
    share_alike = [(what, license) for what, license in sources if license and later_versions(license)]
    chosen = hub_license(requested) if requested else next(
        (candidate for _, candidate in share_alike
         if all(candidate.hub_id in later_versions(license) for _, license in share_alike)), data_license)
    for what, license in share_alike:
        if chosen.hub_id not in later_versions(license):
            flag = f"--license {requested}" if requested else f"The dump's license, {chosen.hub_id},"
            raise UserError(f"{flag} is refused: {what} is under {license.name}, whose ShareAlike terms ask "
                            f"that what is made from it be under {' or '.join(later_versions(license))}.")
    return chosen


def model_license(requested, info):
    """choose_license for a run (its run_info.json): the data is a Wikipedia dump unless preparation.json says
    it is the user's own text (a run that recorded no preparation, of unknown date)."""
    wikipedia = from_wikipedia(info.preparation)
    if info.base_model and not info.base_model.get("license"):
        logger.warning("run_info.json records no license of the base model %s: the card says it is unknown; "
                       "check that its terms allow this model's.", describe_base(info.base_model)["label"])
    return choose_license(requested, wikipedia_license(info.dump_date) if wikipedia else None, info.base_model)


@dataclass
class Links:
    """What the cards say beyond the run's own files: where the model, its demo, its code, its data and this
    version are."""
    repo_id: str
    space_id: Optional[str] = None
    revision_tag: Optional[str] = None
    code_url: Optional[str] = None
    dataset_repo_id: Optional[str] = None
    license: Optional[License] = None  # of the model, the Space and the dataset (model_license); None: the data's


@dataclass
class ModelFolder:
    """A finished train.py model folder, checked: its files are all there, its tokenizer is the
    BertGenerationTokenizer of its config's vocabulary (a continued model's: its base model's SentencePiece
    tokenizer, within the vocabulary), and its records are of this version."""
    path: Path
    tokenizer: object  # BertGenerationTokenizer, or a base model's
    config: object  # GPT2Config
    info: RunInfo
    results: dict  # all_results.json
    state: dict  # trainer_state.json of the final step

    @classmethod
    def check(cls, path):
        path = Path(path)
        missing = [name for name in MODEL_FILES + RUN_FILES if not (path / name).is_file()]
        if missing:
            raise UserError(f"{path} lacks {', '.join(missing)}; point --model_dir at the model/ folder of a "
                            "finished train.py run.")
        from transformers import AutoConfig, BertGenerationTokenizer  # here: --help answers without them
        tokenizer = load_tokenizer(path)
        info = RunInfo.load(path)
        if info is None:
            raise UserError(f"{path}/{RunInfo.FILE} was written by an older version of train.py; rerun train.py "
                            "with --overwrite_output_dir to make a folder push_to_hub.py can describe.")
        continued = info.base_model is not None  # the base model's tokenizer, whatever its class
        if not continued and not isinstance(tokenizer, BertGenerationTokenizer):
            raise UserError(f"The tokenizer in {path} loads as {type(tokenizer).__name__}, not "
                            "BertGenerationTokenizer; copy the folder tokenizer.py wrote.")
        config = AutoConfig.from_pretrained(path)
        if config.vocab_size < len(tokenizer) or (config.vocab_size != len(tokenizer) and not continued):
            raise UserError(f"{path}: config.json has a vocabulary of {config.vocab_size} but the tokenizer holds "
                            f"{len(tokenizer)} entries; they must come from the same run.")
        return cls(path, tokenizer, config, info, read_json(path / ALL_RESULTS), read_json(path / TRAINER_STATE))

    def parameter_count(self):
        from safetensors import safe_open
        with safe_open(str(self.path / "model.safetensors"), framework="pt") as weights:
            return sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())


def plot_curve(trainer_state, path, tokens_per_step, vocab_size):
    """Train and validation loss by tokens seen (which compares recipes; steps do not), with the reference's
    validation loss as a dashed line where the tokenizer is of its size (indicative: its own split)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    history = trainer_state["log_history"]
    train = [(e["step"] * tokens_per_step, e["loss"]) for e in history if "loss" in e]
    evals = [(e["step"] * tokens_per_step, e["eval_loss"]) for e in history if "eval_loss" in e]
    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        axes.plot(*zip(*train), label="train loss", linewidth=1)
    if evals:
        axes.plot(*zip(*evals), label="validation loss", marker="o", markersize=3)
    if vocab_size == 32000:
        axes.axhline(REFERENCE_VALIDATION_LOSS, linestyle="--", color="gray", linewidth=1,
                     label="reference's validation loss (its own split; indicative)")
    axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
        lambda x, _: f"{x / 1e9:g}B" if x >= 1e9 else f"{x / 1e6:g}M" if x else "0"))
    axes.set_xlabel("tokens seen")
    axes.set_ylabel("loss (nats per token)")
    axes.grid(alpha=0.3)
    if train or evals:
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


class Example(NamedTuple):
    text: str  # the prompt and what the model wrote after it
    new_tokens: int  # asked for: 50, or what the model's context leaves after the prompt


def example_output(model_dir, seed, wanted=50):
    """The model's continuation of the card's prompt with the card's seed."""
    import torch
    from transformers import pipeline, set_seed
    set_seed(seed)
    generator = pipeline("text-generation", model=str(model_dir), device=0 if torch.cuda.is_available() else -1)
    new_tokens, _ = room_after(generator.tokenizer, PROMPT, generator.model.config.max_position_embeddings, wanted)
    if new_tokens == 0:
        return Example(PROMPT, 0)
    return Example(generator(PROMPT, max_new_tokens=new_tokens, add_special_tokens=False)[0]["generated_text"],
                   new_tokens)


def adds_special_tokens(tokenizer):
    """Whether the tokenizer puts special tokens around a text by default (a T5Tokenizer appends </s>, after which
    a prompt's continuation would start a new document); ours adds none."""
    return tokenizer(PROMPT)["input_ids"] != tokenizer(PROMPT, add_special_tokens=False)["input_ids"]


def describe_time(seconds):
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"


def tokens_per_step(model):
    return model.info.recipe["global_batch_size"] * model.config.n_positions


def corpus_files(corpus, quote=""):
    """The names of the user's files, without their folders (a local path stays off a public card), each
    between `quote`s: at most five, then how many more."""
    names = [quote + (PurePosixPath(urlparse(path).path).name or path) + quote for path in corpus["files"]]
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def from_wikipedia(preparation):
    """Whether the data is a Wikipedia dump: not the user's own text (a run of an earlier version recorded no
    preparation, and read a dump)."""
    return preparation is None or preparation.is_wikipedia


def corpus_title(preparation):
    """What the cards call the training text: Japanese Wikipedia (and its dump's date), or the user's Hub dataset
    or files by name."""
    if from_wikipedia(preparation):
        date = preparation and preparation.dump_date
        return f"Japanese Wikipedia {date or ''}".strip()
    corpus = preparation.corpus
    return corpus["name"] if corpus["kind"] == "dataset" else corpus_files(corpus)


def results_dataset(links, preparation):
    """The dataset model-index results name: the published splits (--dataset_repo_id), else the source our
    splits were cut from, which no Hub dataset holds as split: a name (the user's Hub dataset by its id)."""
    date = preparation and preparation.dump_date
    wikipedia = from_wikipedia(preparation)
    if links.dataset_repo_id:
        return {"dataset_type": links.dataset_repo_id, "dataset_config": "default",
                "dataset_name": (f"Japanese Wikipedia ({date})" if date else "Japanese Wikipedia") if wikipedia
                else corpus_title(preparation)}
    if wikipedia:
        return {"dataset_type": f"jawiki-{date or 'undated'}",
                "dataset_name": f"Japanese Wikipedia {date or ''}, gpt2-small-ja splits".replace("  ", " ")}
    corpus, title = preparation.corpus, corpus_title(preparation)
    if corpus["kind"] == "dataset":
        return {"dataset_type": title, "dataset_name": f"{title}, gpt2-small-ja splits",
                **({"dataset_config": corpus["config"]} if corpus.get("config") else {}),
                **({"dataset_revision": corpus["revision"]} if corpus.get("revision") else {})}
    return {"dataset_type": re.sub(r"[^\w.+-]+", "-", title), "dataset_name": f"{title}, gpt2-small-ja splits"}


def base_model_repo_id(base_model):
    """The Hub repo id of the model a run started from, or None where it was a local folder (the Hub's
    base_model metadata takes repo ids only): a folder, given as a path, has no Hub revision."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id
    name = base_model["name"]
    if not base_model.get("revision") or Path(name).is_absolute():
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def describe_base(base_model):
    """What the card says of the model a run started from: its Hub id, linked at its revision, or its folder's
    last two names and its weights' fingerprint (a local path stays off a public card); its license, None where
    unknown."""
    repo_id = base_model_repo_id(base_model)
    revision, fingerprint = base_model.get("revision"), base_model.get("fingerprint")
    if repo_id:
        label = repo_id
        markdown = f"[{repo_id}](https://huggingface.co/{repo_id})" + (
            f" at revision [`{revision[:12]}`](https://huggingface.co/{repo_id}/tree/{revision})" if revision else "")
    else:
        label = "/".join(Path(base_model["name"]).parts[-2:])
        markdown = f"the model folder `{label}`" + (f" (weights SHA-256 `{fingerprint}`)" if fingerprint else "")
    license = base_model.get("license")
    return {"repo_id": repo_id, "label": label, "markdown": markdown, "license": license and hub_license(license)}


def model_card(model, links, example, seed):
    """The model card: metadata the Hub reads (model-index results included) and the body of the template;
    `example` is an Example of example_output."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData
    info, results, state = model.info, model.results, model.state
    date, data = info.dump_date, info.preparation
    license = links.license or model_license(None, info)
    corpus = data.corpus if data else None
    base = describe_base(info.base_model) if info.base_model else None
    dataset_args = {"language": "ja", **({"dump_date": date} if date else {})}
    source = {"source_name": "gpt2-small-ja training code (metrics/causal_lm_eval)",
              "source_url": links.code_url} if links.code_url else {}
    eval_results = [
        EvalResult(task_type="text-generation", task_name="Causal language modeling", **results_dataset(links, data),
                   dataset_args=dataset_args, dataset_split=split, metric_type=metric, metric_name=name,
                   metric_value=round(results[f"{prefix}_{metric}"], 4), **source)
        for split, prefix in RESULT_PREFIXES.items() if f"{prefix}_loss" in results
        for metric, name in (("perplexity", "Perplexity"), ("loss", "Loss (nats per token)"),
                             ("bits_per_character", "Bits per character"))
    ]
    hub_datasets = [links.dataset_repo_id] if links.dataset_repo_id else (
        ["wikimedia/wikipedia"] if corpus is None else [corpus["name"]] if corpus["kind"] == "dataset" else None)
    # continued pre-training is what the Hub calls a finetune
    lineage = {"base_model": base["repo_id"], "base_model_relation": "finetune"} if base and base["repo_id"] else {}
    card_data = ModelCardData(
        language="ja", license=license.hub_id, datasets=hub_datasets, **lineage,
        metrics=["perplexity"], pipeline_tag="text-generation", library_name="transformers",
        tags=["gpt2", "japanese", "causal-lm"], widget=[{"text": PROMPT, "output": {"text": example.text}}],
        model_name=links.repo_id.split("/")[-1], eval_results=eval_results,
    )
    devices = sorted(set(info.hardware["devices"]))
    tokenizer = model.tokenizer
    special_ids = sorted((tokenizer.convert_tokens_to_ids(token), token) for token in tokenizer.all_special_tokens)
    tokens_seen = state["global_step"] * tokens_per_step(model)
    return ModelCard.from_template(
        card_data, template_path=str(MODEL_TEMPLATE), model_name=links.repo_id.split("/")[-1],
        repo_id=links.repo_id, prompt=PROMPT, example_output=example.text, example_tokens=example.new_tokens,
        context=model.config.n_positions, example_seed=seed,
        vocab_size=model.config.vocab_size, parameters=model.parameter_count(), recipe=info.recipe,
        data=data, dump_date=date, sources=[Path(source).name for source in info.sources],
        corpus=corpus, files=corpus_files(corpus, "`") if corpus and corpus["kind"] == "files" else None,
        unit="documents" if corpus else "articles", base=base,
        data_license=wikipedia_license(date) if base and not corpus else None,
        sampling=read_json(model.path / "generation_config.json"), special_ids=special_ids,
        eos_id=tokenizer.eos_token_id, tokenizer_class=type(tokenizer).__name__,
        adds_special_tokens=adds_special_tokens(tokenizer),
        final_train_loss=next((e["loss"] for e in reversed(state["log_history"]) if "loss" in e), None),
        tokens=info.tokens, tokenizer=info.tokenizer_report, steps=state["global_step"],
        epochs=state.get("epoch") or 0, hardware=f"{info.hardware['processes']} x {', '.join(devices)}",
        tokens_seen=tokens_seen, tokens_per_second=tokens_seen / max(results.get("train_runtime", 0), 1e-9),
        training_time=describe_time(results.get("train_runtime", 0)), versions=info.versions, results=results,
        space_id=links.space_id, revision_tag=links.revision_tag, code_url=links.code_url,
        dataset_repo_id=links.dataset_repo_id, license=license,
        citation_key=links.repo_id.replace("/", "_").replace("-", "_"), year=datetime.date.today().year,
        cleaning=CLEANING[data.identity["cleaner"]] if data and data.is_wikipedia else None,
    )


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


def stage_space_files(folder, repo_id, space_id, license, hardware=None, code_url=None, wikipedia=True):
    """The Space's files in `folder`: the app, its requirements for the Space's hardware, and a README whose
    YAML makes it a Gradio Space that runs (and names) the model repo_id, trained on Wikipedia or not."""
    from importlib.metadata import version

    from huggingface_hub import SpaceCard, SpaceCardData
    shutil.copy(SPACE_APP / "app.py", Path(folder, "app.py"))
    Path(folder, "requirements.txt").write_text(space_requirements(hardware), encoding="utf-8")
    data = SpaceCardData(title=space_id.split("/")[-1], sdk="gradio", sdk_version=version("gradio"),
                         python_version=SPACE_PYTHON, app_file="app.py", license=license.hub_id,
                         models=[repo_id], tags=["japanese", "text-generation", "gpt2"],
                         emoji="🗾", colorFrom="indigo", colorTo="gray", pinned=False,
                         short_description="Continue Japanese text with a GPT-2" + (
                             " trained on Wikipedia" if wikipedia else " language model"),
                         **({"code_url": code_url} if code_url else {}))  # the app links it
    body = (SPACE_APP / "README.md").read_text(encoding="utf-8")
    SpaceCard(f"---\n{data.to_yaml()}\n---\n\n{body}").save(Path(folder, "README.md"))


def space_requirements(hardware):
    """space/requirements.txt for the Space's hardware: on ZeroGPU its pinned CUDA torch; elsewhere (cpu-basic,
    the default) PyTorch's CPU wheels, a tenth of the CUDA build's download."""
    requirements = (SPACE_APP / "requirements.txt").read_text(encoding="utf-8")
    if hardware and hardware.startswith("zero"):
        return requirements
    if hardware and not hardware.startswith("cpu"):  # a GPU of its own: PyPI's torch is its CUDA build
        return requirements
    return "--extra-index-url https://download.pytorch.org/whl/cpu\n" + requirements


def size_category(rows):
    """The Hub's size_categories value for a dataset of `rows` rows."""
    bounds = [(10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"),
              (10**7, "1M<n<10M"), (10**8, "10M<n<100M")]
    return next((name for bound, name in bounds if rows < bound), "100M<n<1B")  # more articles than any wiki has


def dataset_card(links, preparation, eos_id):
    """The dataset card: license, source (the dump and its date, or the user's files or Hub dataset), counts and
    what preparing removed; DatasetDict.push_to_hub adds the splits' files and sizes to its YAML. Refused unless
    its metadata reads back as written."""
    from huggingface_hub import DatasetCard, DatasetCardData
    corpus = preparation.corpus
    pretty_name = f"{corpus_title(preparation)} for gpt2-small-ja"
    license = links.license or choose_license(
        None, wikipedia_license(preparation.dump_date) if corpus is None else None)
    source = ["original"] if corpus is None or corpus["kind"] == "files" else [f"extended|{corpus['name']}"]
    data = DatasetCardData(language=["ja"], license=license.hub_id, pretty_name=pretty_name,
                           task_categories=["text-generation"], task_ids=["language-modeling"],
                           size_categories=[size_category(preparation.articles)], source_datasets=source,
                           tags=["wikipedia", "japanese"] if corpus is None else ["japanese"])
    card = DatasetCard.from_template(
        data, template_path=str(DATASET_TEMPLATE), pretty_name=pretty_name, repo_id=links.repo_id,
        dataset_repo_id=links.dataset_repo_id, dump_date=preparation.dump_date, data=preparation, splits=SPLITS,
        corpus=corpus, files=corpus_files(corpus, "`") if corpus and corpus["kind"] == "files" else None,
        cleaning=CLEANING[preparation.identity["cleaner"]] if corpus is None else None, code_url=links.code_url,
        eos_id=eos_id, license=license)
    try:
        DatasetCard(str(card), ignore_metadata_errors=False)
    except ValueError as error:
        raise UserError(f"The dataset card's metadata does not read back ({str(error).splitlines()[0]}); "
                        "nothing was uploaded.") from None
    return card
