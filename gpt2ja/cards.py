"""The cards push_to_hub.py publishes, rendered from the run's own files: the model card (with its training
curve and example output), the Space's card, the dataset card. Templates live in model_card/ (space/ for
the body of the Space's card).

A model folder is read once, by `ModelFolder.check`, into what the cards need; a folder that misses a file
or whose tokenizer and config disagree is refused there, before anything is staged.
"""

import datetime
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional

from .errors import UserError
from .licenses import License, choose_license, hub_license, later_versions
from .rerun import read_json
from .model_folder import RESULT_PREFIXES
from .settings import PROMPT, REFERENCE_VOCAB_SIZE, bundled
from .sources import source_of
from .splits import SPLITS
from .tokenizer_folder import room_after

logger = logging.getLogger(__name__)

MODEL_TEMPLATE = bundled("model_card") / "README.md.j2"
DATASET_TEMPLATE = bundled("model_card") / "dataset_card.md.j2"
SPACE_APP = bundled("space")
SPACE_PYTHON = "3.10"  # ZeroGPU's Python; space/requirements.txt pins what runs on it
CURVE = "training_curve.png"
REFERENCE_VALIDATION_LOSS = 3.50  # colorfulscoop/gpt2-small-ja's, per token of its 32,000-piece tokenizer


def model_license(requested, info):
    """choose_license for a run (its run_info.json): its data's license where the source gives one (a dump's CC
    BY-SA), and its base model's."""
    if info.base_model and not info.base_model.get("license"):
        logger.warning("run_info.json records no license of the base model %s: the card says it is unknown; "
                       "check that its terms allow this model's.", describe_base(info.base_model)["label"])
    return choose_license(requested, data_license(source_of(info.preparation)), info.base_model)


def is_share_alike(license):
    """Whether a License (None: unknown terms) asks that what is made from it keep it (CC BY-SA and the like)."""
    return bool(license and later_versions(license))


def data_license(source):
    """The License of the training text where its source gives one; None where it is its owner's to say."""
    return hub_license(source.license) if source.license else None


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
    if vocab_size == REFERENCE_VOCAB_SIZE:
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


def results_dataset(links, source):
    """The dataset model-index results name: the published splits (--dataset_repo_id), else the source our splits
    were cut from, which no Hub dataset holds as split."""
    if links.dataset_repo_id:
        return {"dataset_type": links.dataset_repo_id, "dataset_config": "default",
                "dataset_name": source.dataset_name}
    return dict(source.dataset_ref)


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


def model_card(model, links, example, seed, downstream=None):
    """The model card: metadata the Hub reads (model-index results included) and the body of the template;
    `example` is an Example of example_output; `downstream`, the lm-eval results given
    (gpt2ja.eval_results.Downstream): its model-index entries and its section of the card."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData
    info, results, state = model.info, model.results, model.state
    data, source = info.preparation, source_of(info.preparation)
    text_license = data_license(source)
    license = links.license or model_license(None, info)
    base = describe_base(info.base_model) if info.base_model else None
    dataset_args = {"language": "ja", **({"dump_date": info.dump_date} if info.dump_date else {})}
    source_link = {"source_name": "gpt2-small-ja training code (metrics/causal_lm_eval)",
                   "source_url": links.code_url} if links.code_url else {}
    eval_results = [
        EvalResult(task_type="text-generation", task_name="Causal language modeling", **results_dataset(links, source),
                   dataset_args=dataset_args, dataset_split=split, metric_type=metric, metric_name=name,
                   metric_value=round(results[f"{prefix}_{metric}"], 4), **source_link)
        for split, prefix in RESULT_PREFIXES.items() if f"{prefix}_loss" in results
        for metric, name in (("perplexity", "Perplexity"), ("loss", "Loss (nats per token)"),
                             ("bits_per_character", "Bits per character"))
    ] + (downstream.eval_results(links.code_url) if downstream else [])
    hub_datasets = [links.dataset_repo_id] if links.dataset_repo_id else source.hub_datasets
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
        vocab_size=model.config.vocab_size, reference_vocab_size=REFERENCE_VOCAB_SIZE,
        parameters=model.parameter_count(), recipe=info.recipe,
        data=data, source=source, base=base, data_license=text_license, share_alike=is_share_alike(text_license),
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
        downstream=downstream.markdown(links.repo_id) if downstream else None,
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


def stage_space_files(folder, repo_id, space_id, license, hardware=None, code_url=None, trained_on=None):
    """The Space's files in `folder`: the app, its requirements for the Space's hardware, and a README whose
    YAML makes it a Gradio Space that runs (and names) the model repo_id, and what it was trained on where that
    is short (a SourceRecord's short_name)."""
    from importlib.metadata import version

    from huggingface_hub import SpaceCard, SpaceCardData
    shutil.copy(SPACE_APP / "app.py", Path(folder, "app.py"))
    Path(folder, "requirements.txt").write_text(space_requirements(hardware), encoding="utf-8")
    data = SpaceCardData(title=space_id.split("/")[-1], sdk="gradio", sdk_version=version("gradio"),
                         python_version=SPACE_PYTHON, app_file="app.py", license=license.hub_id,
                         models=[repo_id], tags=["japanese", "text-generation", "gpt2"],
                         emoji="🗾", colorFrom="indigo", colorTo="gray", pinned=False,
                         short_description="Continue Japanese text with a GPT-2" + (
                             f" trained on {trained_on}" if trained_on else " language model"),
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
    source = source_of(preparation)
    pretty_name = f"{source.title} for gpt2-small-ja"
    text_license = data_license(source)
    license = links.license or choose_license(None, text_license)
    data = DatasetCardData(language=["ja"], license=license.hub_id, pretty_name=pretty_name,
                           task_categories=["text-generation"], task_ids=["language-modeling"],
                           size_categories=[size_category(preparation.articles)],
                           source_datasets=source.source_datasets, tags=source.tags)
    card = DatasetCard.from_template(
        data, template_path=str(DATASET_TEMPLATE), pretty_name=pretty_name, repo_id=links.repo_id,
        dataset_repo_id=links.dataset_repo_id, data=preparation, source=source, splits=SPLITS,
        code_url=links.code_url, eos_id=eos_id, license=license,
        share_alike=is_share_alike(text_license))
    try:
        DatasetCard(str(card), ignore_metadata_errors=False)
    except ValueError as error:
        raise UserError(f"The dataset card's metadata does not read back ({str(error).splitlines()[0]}); "
                        "nothing was uploaded.") from None
    return card
