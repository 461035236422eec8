"""The published model a run starts from (train.py --model_name_or_path): a Hub repo or a local model folder.

Any GPT-2 (GPT2LMHeadModel) whose tokenizer is SentencePiece (`spiece.model`, as this project's, colorfulscoop's
and rinna's are) can be continued: the token cache encodes with that SentencePiece model (or with the tokenizer
itself, where its ids are not the model's), and the run keeps the base model's architecture and tokenizer. A
run records its base by repo id and commit, or, for a folder, by the SHA-256 of its weights, so a resume with
another base is refused.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import UserError
from .hub_errors import hub_read_errors
from .model_folder import SHARDS, WEIGHTS, check_base_folder, weights_fingerprint

logger = logging.getLogger(__name__)

ARCHITECTURE = ("n_positions", "n_embd", "n_layer", "n_head", "vocab_size")  # given by the base model's config
TOKENIZER_FILES = ("spiece.model", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json",
                   "added_tokens.json")


@dataclass(frozen=True)
class BaseModel:
    folder: Path  # the files on this machine
    name: str  # the repo id, or the folder as given
    revision: Optional[str]  # the Hub commit; None for a folder
    fingerprint: str  # SHA-256 of the weights
    license: Optional[str]  # the Hub license id its card gives

    @property
    def identity(self):
        """What a resume compares: the repo and commit, or a folder's weights by content (wherever it lies)."""
        if self.revision:
            return {"name": self.name, "revision": self.revision}
        return {"fingerprint": self.fingerprint}

    def record(self):
        """run_info.json's base_model (see gpt2ja.run_folder.RunInfo)."""
        return {"name": self.name, "revision": self.revision, "fingerprint": self.fingerprint,
                "license": self.license}

    def config(self):
        from transformers import AutoConfig
        return AutoConfig.from_pretrained(str(self.folder))

    def training_config(self, dropout, tokenizer):
        """The base model's config, with the recipe's dropout and its tokenizer's special ids (a GPT-2 config that
        names none has GPT-2's English 50256, which the token cache, generation and the cards would disagree on)."""
        config = self.config()
        config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = dropout
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            wanted = getattr(tokenizer, name)
            if wanted is not None and getattr(config, name, None) != wanted:
                logger.info("The config of %s has %s %s; its tokenizer's, %s, is used.", self.name, name,
                            getattr(config, name, None), wanted)
                setattr(config, name, wanted)
        return config


def resolve(name_or_path, revision=None, recorded=None):
    """The base model's files on this machine (downloaded from the Hub into its cache when a repo id is given),
    checked: a GPT-2 causal LM with weights and a SentencePiece tokenizer that fits its vocabulary. `recorded`:
    the commit a run folder recorded of this repo, which HF_HUB_OFFLINE takes from the cache."""
    folder = Path(name_or_path)
    if folder.exists():
        if revision:
            raise UserError(f"--model_revision {revision} names a Hub commit, but {name_or_path} is a local folder; "
                            "leave --model_revision out.")
        if not folder.is_dir():
            raise UserError(f"--model_name_or_path {name_or_path} is a file; pass a model folder or a Hub repo id.")
        name, commit = str(folder.resolve()), None
    elif is_repo_id(name_or_path):
        folder, commit = download(name_or_path, revision, recorded)
        name = name_or_path
    else:
        raise UserError(f"--model_name_or_path {name_or_path} is neither a folder here nor a Hub repo id such as "
                        "USER/NAME.")
    check_base_folder(folder, name)
    return BaseModel(folder=folder, name=name, revision=commit, fingerprint=weights_fingerprint(folder),
                     license=folder_license(folder))


def is_repo_id(name):
    """Whether `name` is a repo id the Hub takes (huggingface_hub's own rules: no "--", no trailing "-", no "..")."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def download(repo_id, revision=None, recorded=None):
    """(local snapshot folder, commit) of a Hub model repo: its config, weights (safetensors where it has them),
    tokenizer and card, nothing else."""
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    with hub_read_errors(f"the files of {repo_id}", "then rerun, or pass a local folder holding the model"):
        try:
            info = HfApi().model_info(repo_id, revision=revision)
            files = {sibling.rfilename for sibling in info.siblings or []}
            weights = next((w for w in WEIGHTS if w in files), WEIGHTS[0])
            folder = snapshot_download(repo_id, revision=info.sha, allow_patterns=[
                "config.json", "generation_config.json", "README.md", weights, SHARDS.get(weights, weights),
                *TOKENIZER_FILES])
        except OfflineModeIsEnabled:
            return cached_snapshot(repo_id, revision or recorded)
        except GatedRepoError:
            raise UserError(f"{repo_id} is gated: accept its terms on {constants.ENDPOINT}/{repo_id} with the "
                            "account whose token this machine uses, then rerun.") from None
        except RevisionNotFoundError:
            raise UserError(f"The Hub model {repo_id} has no revision {revision}; pass a branch, tag or commit "
                            "it has.") from None
        except RepositoryNotFoundError:
            raise UserError(f"There is no model {repo_id} on the Hub and no folder of that name here; check the id "
                            "(or log in with `hf auth login` if the repo is private or gated).") from None
        except EntryNotFoundError as error:
            raise UserError(f"The Hub failed to give the files of {repo_id} ({str(error).splitlines()[0]}); rerun, "
                            "or pass a local folder holding the model.") from None
    write_ref(repo_id, revision or "main", info.sha)
    return Path(folder), info.sha


def repo_cache(repo_id):
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name
    return Path(constants.HF_HUB_CACHE, repo_folder_name(repo_id=repo_id, repo_type="model"))


def write_ref(repo_id, revision, commit):
    """Note in the Hub cache which commit `revision` (a branch or tag) was, as huggingface_hub does when it downloads
    by name: downloaded by commit (so that every file is of one commit), the cache would otherwise not know it, and
    HF_HUB_OFFLINE could not find the base by its name."""
    if revision != commit:
        ref = repo_cache(repo_id) / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)


def cached_snapshot(repo_id, revision=None):
    """HF_HUB_OFFLINE: (snapshot folder, commit) of the base in the Hub cache: at `revision` (a commit, or a branch
    or tag the cache noted; default main), or one sentence naming the commits the cache holds."""
    cache, wanted = repo_cache(repo_id), revision or "main"
    ref = cache / "refs" / wanted
    commit = ref.read_text().strip() if ref.is_file() else wanted
    folder = cache / "snapshots" / commit
    if not (folder / "config.json").is_file():
        held = sorted(p.name for p in (cache / "snapshots").glob("*")) if (cache / "snapshots").is_dir() else []
        raise UserError(f"HF_HUB_OFFLINE is set and the Hub cache holds no snapshot of {repo_id} at {wanted} (it holds "
                        f"{', '.join(held) or 'none'}); pass --model_revision with one of them, or run once with the "
                        "network to download it.")
    logger.info("HF_HUB_OFFLINE: %s from the cache, at commit %s.", repo_id, commit)
    return folder, commit


def folder_license(folder):
    """The base model's license: what its card's metadata gives, or, for a model folder of this project (no
    card), the license of the text it was trained on, or of the base it continued; a checkpoint-N folder is its
    run's (the model/ or data/ of the run folder it lies in); else None."""
    card = folder / "README.md"
    if card.is_file():
        from huggingface_hub import metadata_load
        license = (metadata_load(card) or {}).get("license")
        return str(license) if license else None
    from .run_folder import RunFolder, RunInfo, checkpoint_step
    from .sources import source_of
    from .splits import Preparation
    run = RunFolder(folder.resolve().parent.parent) if checkpoint_step(folder) is not None else None
    info = RunInfo.load(run.model if run else folder)
    if info is not None:
        return info.base_model.get("license") if info.base_model else source_of(info.preparation).license
    preparation = Preparation.load(run.data) if run else None
    return preparation.source.license if preparation else None


def check_architecture(model_args, named, config, name):
    """The base model gives the architecture: a value of the recipe's (or a default) that differs is ignored with a
    log line, one named on the command line (`named`) is refused."""
    for field in ARCHITECTURE:
        wanted, value = getattr(model_args, field), getattr(config, field)
        if wanted is None or wanted == value:
            continue
        if field in named:
            raise UserError(f"--{field} {wanted} contradicts the base model {name}, whose {field} is {value}; "
                            f"leave --{field} out: the base model gives the architecture.")
        logger.info("%s %s (the recipe's or the default) is ignored: the base model %s has %s.", field, wanted,
                    name, value)


def start_from(model_args, named, args, run):
    """The base model of a run with --model_name_or_path, None without; `named` are the flags the command line
    names. The main process resolves the base first (a branch to its commit) and tells the others which commit,
    or why it refused: every process trains from the same weights, and says the same sentence."""
    if not model_args.model_name_or_path:
        return None
    if "tokenizer_dir" in named:
        raise UserError(f"--tokenizer_dir cannot be used with --model_name_or_path: a continued model keeps the "
                        f"tokenizer of {model_args.model_name_or_path}; leave --tokenizer_dir out.")
    folder = Path(model_args.model_name_or_path)
    if folder.exists() and any(folder.resolve().is_relative_to(own.resolve()) for own in (run.model, run.checkpoints)):
        raise UserError(f"--model_name_or_path {folder} lies in the model or checkpoints folder of --output_dir "
                        f"{run.root}, which this run writes; copy it elsewhere, or pass another --output_dir.")
    base, refusal = None, None
    if args.process_index == 0:
        try:
            base = resolve(model_args.model_name_or_path, model_args.model_revision, recorded_commit(run, model_args))
        except UserError as error:
            refusal = str(error)
    shared = [refusal, base and base.revision]
    if args.world_size > 1:
        import torch.distributed as dist
        dist.broadcast_object_list(shared, src=0)
    if shared[0]:
        raise UserError(shared[0])
    if base is None:  # another process: the main one's commit, from the cache it filled (or this node's)
        base = resolve(model_args.model_name_or_path, shared[1] or model_args.model_revision,
                       recorded_commit(run, model_args))
    check_architecture(model_args, named, base.config(), base.name)
    return base


def recorded_commit(run, model_args):
    """The commit of the base model the run folder's checkpoints or model recorded, where it is this repo's."""
    from .run_folder import RunIdentity, RunInfo
    record = RunIdentity.load(run.checkpoints) or RunInfo.load(run.model)
    base = (record.identity.get("base_model") or {}) if record else {}
    return base.get("revision") if base.get("name") == model_args.model_name_or_path else None


def pinning_hint(recorded, identity):
    """A sentence for a checkpoint whose run started from another commit of the same Hub model (its branch moved
    on since): how to go on from where it was."""
    old, new = recorded.get("base_model") or {}, identity.get("base_model") or {}
    if old.get("revision") and old.get("name") == new.get("name") and old["revision"] != new.get("revision"):
        return f" It started from {old['name']} at {old['revision']}: pass --model_revision {old['revision']} to go on."
    return ""
