"""A model folder: the files it holds (those the Hub repo gets, and the run's records beside them), how it is
checked (a finished train.py model folder: ModelFolder; any GPT-2 a run may continue: check_base_folder), and
its weights' fingerprint.
"""

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .rerun import file_fingerprint, read_json
from .run_folder import TRAINER_STATE, RunInfo
from .tokenizer_folder import load_tokenizer

# A model folder's files that the Hub repo gets; everything else there stays on the machine.
MODEL_FILES = ("model.safetensors", "config.json", "generation_config.json", "spiece.model",
               "tokenizer_config.json", "tokenizer.json")
OPTIONAL_MODEL_FILES = ("special_tokens_map.json",)
ALL_RESULTS = "all_results.json"
RESULT_FILES = ("train_results.json", "eval_results.json", "test_results.json", "ood_results.json", ALL_RESULTS)
RUN_FILES = (ALL_RESULTS, TRAINER_STATE, "run_info.json")  # what the card is made of; not uploaded
# The final evaluation's splits and the prefix of their figures in *_results.json (Trainer's names).
RESULT_PREFIXES = {"validation": "eval", "test": "test"}
OOD_PREFIX = "ood"  # the out-of-domain text's figures (train.py --out_of_domain_text)
def final_scores_to_tensorboard(args, step, scores):
    """The final scores ({prefix_metric: value}, as all_results.json names them) as TensorBoard scalars beside
    Trainer's curves (where the run reports to TensorBoard), at the last step: final/validation_loss,
    final/test_perplexity, final/out_of_domain_loss, ..."""
    if "tensorboard" not in (args.report_to or []):
        return
    from torch.utils.tensorboard import SummaryWriter
    splits = {prefix: split for split, prefix in RESULT_PREFIXES.items()} | {OOD_PREFIX: "out_of_domain"}
    with SummaryWriter(os.environ["TENSORBOARD_LOGGING_DIR"]) as writer:  # where train.py points Trainer's
        for name, value in scores.items():
            prefix, metric = name.split("_", 1)
            writer.add_scalar(f"final/{splits[prefix]}_{metric}", value, step)


# What from_pretrained loads, in its order of preference: one file, or an index naming its shards.
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
SHARDS = {"model.safetensors.index.json": "model-*.safetensors", "pytorch_model.bin.index.json": "pytorch_model-*.bin"}


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


def check_base_folder(folder, name):
    """Refuse, in one sentence and before any work, what train.py cannot continue: no config or one that is not
    JSON, not GPT-2, no weights or weights that do not load, a tokenizer that is not built on its spiece.model
    (or that file does not load), has no eos or does not fit the model's vocabulary."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise UserError(f"{name} holds no config.json: it is not a transformers model.")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"The config.json of {name} is not JSON ({error}); download or copy the model again.") from None
    model_type, architectures = config.get("model_type"), config.get("architectures") or ["GPT2LMHeadModel"]
    if model_type != "gpt2" or "GPT2LMHeadModel" not in architectures:
        raise UserError(f"{name} is a {model_type} model ({', '.join(architectures)}), not a GPT-2 causal language "
                        "model (GPT2LMHeadModel); train.py continues GPT-2 models.")
    for path in weight_files(folder, name):
        check_weights_load(path, name)
    if not (folder / "spiece.model").is_file():
        raise UserError(f"The tokenizer of {name} is not SentencePiece (it has no spiece.model): train.py's token "
                        "cache encodes SentencePiece tokenizers only.")
    check_tokenizer_fits(folder, name, config.get("vocab_size", 50257))  # GPT2Config's default


def check_weights_load(path, name):
    """A weights file whose header (safetensors) or pickle (a .bin, read with weights_only) loads."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open
            with safe_open(str(path), framework="pt") as weights:
                weights.keys()
        else:
            import torch
            torch.load(path, map_location="meta", weights_only=True, mmap=True)
    except Exception as error:  # safetensors', torch's and pickle's errors alike: the file is what is wrong
        raise UserError(f"The weights of {name} do not load ({path.name}: {type(error).__name__}: "
                        f"{str(error).splitlines()[0][:160] if str(error) else 'damaged'}); download or copy the "
                        "model again.") from None


def check_tokenizer_fits(folder, name, vocab_size):
    """The tokenizer must be built on its spiece.model (each id the same piece), end a document (eos), and its ids
    must be rows of the model's embedding."""
    import sentencepiece as spm
    try:
        pieces = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    except (OSError, RuntimeError) as error:
        raise UserError(f"The spiece.model of {name} does not load ({str(error).splitlines()[0][:160]}); download "
                        "or copy the model again.") from None
    tokenizer = load_tokenizer(folder)
    shared = range(min(len(tokenizer), pieces.get_piece_size()))
    other = sum(tokenizer.convert_ids_to_tokens(i) != pieces.id_to_piece(i) for i in shared)
    if other > len(shared) // 100:  # a converted tokenizer may name a few control pieces its own way
        raise UserError(f"The tokenizer of {name} ({type(tokenizer).__name__}) is not built on the spiece.model "
                        f"beside it ({other} of {len(shared)} ids are other pieces): train.py encodes with that "
                        "SentencePiece model; remove the stray spiece.model, or pass a SentencePiece model.")
    if tokenizer.eos_token_id is None:
        raise UserError(f"The tokenizer of {name} has no end-of-text token (eos), which train.py puts between "
                        "documents.")
    if len(tokenizer) > vocab_size:
        raise UserError(f"The tokenizer of {name} has {len(tokenizer)} entries but its model embeds {vocab_size} "
                        "tokens: the tokenizer does not belong to this model.")


def weight_files(folder, name=None):
    """The files from_pretrained loads: the first of WEIGHTS the folder has, or the shards its index names."""
    first = next((w for w in WEIGHTS if (folder / w).is_file()), None)
    if first is None:
        raise UserError(f"{name or folder} holds no weights ({' or '.join(WEIGHTS[::2])}).")
    if first not in SHARDS:
        return [folder / first]
    shards = sorted(set(json.loads((folder / first).read_text(encoding="utf-8"))["weight_map"].values()))
    missing = [shard for shard in shards if not (folder / shard).is_file()]
    if missing:
        raise UserError(f"{name or folder} lacks {len(missing)} of the weight shards its {first} names "
                        f"({missing[0]}, ...).")
    return [folder / shard for shard in shards]


def weights_fingerprint(folder):
    """SHA-256 of the weights from_pretrained loads (of each shard's, in name order)."""
    files = weight_files(folder)
    if len(files) == 1:
        return file_fingerprint(files[0])
    return hashlib.sha256("".join(file_fingerprint(p) for p in files).encode()).hexdigest()
