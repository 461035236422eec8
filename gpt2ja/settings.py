"""The reference settings that more than one step uses, each written once."""

from importlib.resources import files
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def bundled(folder):
    """One of the repository's folders that the library reads (model_card, configs, space, metrics): inside the
    installed package where a wheel put it there (pyproject.toml maps them in), else at the top of the checkout."""
    installed = files("gpt2ja") / folder
    return Path(str(installed)) if installed.is_dir() else REPO_ROOT / folder


SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "ja"
EXCERPT = SHARED_DATA / "jawiki-20220720-pages-articles-excerpt.xml.bz2"
FIRST20 = SHARED_DATA / "jawiki-20220720-pages-articles-first20.xml.bz2"

DEFAULT_RUN_DIR = Path("runs") / "reference"
REFERENCE_RECIPE = bundled("configs") / "reference.yaml"

REFERENCE_DUMP_DATE = "20210301"
DEFAULT_MIRROR = "https://dumps.wikimedia.org"

# The published model's layout: <pad>=0, <unk>=1, <s>=2, </s>=3, <cls>=4, <sep>=5.
SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>",
                  "cls_token": "<cls>", "sep_token": "<sep>"}
SPECIAL_IDS = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "<cls>": 4, "<sep>": 5}
REFERENCE_VOCAB_SIZE = 32_000  # the reference tokenizer's pieces, special tokens included
REFERENCE_CONTEXT = 1024  # GPT-2 small's; a model folder's tokenizer records its own model's context

# What the published model samples with: top-k 50 within nucleus 0.95.
SAMPLING = {"do_sample": True, "top_k": 50, "top_p": 0.95}
PROMPT = "近年の機械学習は"
DEFAULT_REPO_NAME = "gpt2-small-ja"
