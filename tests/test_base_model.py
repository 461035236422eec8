"""gpt2ja.base_model: the published model a run continues, from a folder or the loopback Hub double."""

import hashlib
import json
import re
import logging
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, TrainerCallback

from gpt2ja.base_model import check_architecture, pinning_hint, resolve
from gpt2ja.cli import flags_named
from gpt2ja.errors import UserError
from gpt2ja.rerun import file_fingerprint
from gpt2ja.tokens import SentencePieceEncoder
from gpt2ja.model_folder import MODEL_FILES
from train import OUT_OF_DOMAIN_TEXT
from hub_double import HubDouble, seen_from_this_process
from processes import Launch

TOKEN = "hf_BaseModelTestToken0123456789"


def model_folder(folder, tokenizer_dir, vocab_size=8000, card=None):
    """A small random GPT-2 saved with the excerpt's tokenizer: what a published model folder holds."""
    config = GPT2Config(vocab_size=vocab_size, n_positions=64, n_embd=32, n_layer=1, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(str(folder))
    for name in ("spiece.model", "tokenizer_config.json", "tokenizer.json"):
        shutil.copy(tokenizer_dir / name, folder / name)
    if card:
        (folder / "README.md").write_text(card, encoding="utf-8")
    return folder


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The loopback Hub as huggingface_hub sees it from this process (its endpoint is read at import)."""
    with HubDouble(TOKEN) as double:
        seen_from_this_process(double.url, monkeypatch, tmp_path / "hf_home_of_this_process", TOKEN)
        yield double


def test_a_folder_is_the_base_by_the_content_of_its_weights(excerpt_tokenizer, tmp_path):
    folder = model_folder(tmp_path / "base", excerpt_tokenizer, card="---\nlicense: cc-by-sa-4.0\n---\n# base\n")
    base = resolve(str(folder))
    assert base.folder == folder and base.revision is None and base.license == "cc-by-sa-4.0"
    assert base.identity == {"fingerprint": file_fingerprint(folder / "model.safetensors")}
    moved = shutil.copytree(folder, tmp_path / "elsewhere")
    assert resolve(str(moved)).identity == base.identity  # wherever it lies
    assert base.record()["name"] == str(folder.resolve())


def test_a_hub_model_is_downloaded_and_recorded_at_its_commit(excerpt_tokenizer, tmp_path, hub):
    folder = model_folder(tmp_path / "base", excerpt_tokenizer, card="---\nlicense: mit\n---\n")
    (folder / "notes.txt").write_text("not a model file")
    api = HfApi(token=TOKEN)
    api.create_repo("tester/base")
    api.upload_folder(repo_id="tester/base", folder_path=str(folder))
    base = resolve("tester/base")
    commit = hub.repos["tester/base"]["commits"][-1]
    assert base.identity == {"name": "tester/base", "revision": commit} and base.license == "mit"
    assert base.fingerprint == file_fingerprint(folder / "model.safetensors")
    assert sorted(p.name for p in base.folder.iterdir()) == sorted(
        ["README.md", "config.json", "generation_config.json", "model.safetensors", "spiece.model",
         "tokenizer.json", "tokenizer_config.json"])  # what a run needs, not the rest of the repo


def test_a_revision_is_the_base_at_that_commit(excerpt_tokenizer, tmp_path, hub):
    folder = model_folder(tmp_path / "base", excerpt_tokenizer)
    first = hub.publish("models", "tester/base", {p.name: p.read_bytes() for p in folder.iterdir()})
    old_weights = file_fingerprint(folder / "model.safetensors")
    model_folder(folder, excerpt_tokenizer)  # new random weights: the branch moves on
    hub.publish("models", "tester/base", {p.name: p.read_bytes() for p in folder.iterdir()})
    assert resolve("tester/base").fingerprint == file_fingerprint(folder / "model.safetensors") != old_weights
    pinned = resolve("tester/base", revision=first)
    assert pinned.identity == {"name": "tester/base", "revision": first} and pinned.fingerprint == old_weights
    with pytest.raises(UserError, match="The Hub model tester/base has no revision v9; pass a branch, tag or"):
        resolve("tester/base", revision="v9")


def test_a_repo_that_does_not_exist_is_one_sentence(hub):
    with pytest.raises(UserError, match="There is no model tester/nothing on the Hub and no folder of that name"):
        resolve("tester/nothing")


def bert_folder(folder, tokenizer_dir):
    BertModel(BertConfig(vocab_size=8000, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(str(folder))
    shutil.copy(tokenizer_dir / "spiece.model", folder / "spiece.model")


def cut(path, size):
    path.write_bytes(path.read_bytes()[:size])


def unsafe_pickle(folder):
    """Weights as a pickle that torch.load(weights_only=True) refuses (an object it does not allow)."""
    from fractions import Fraction
    (folder / "model.safetensors").unlink()
    torch.save({"transformer.wte.weight": torch.zeros(2, 2), "note": Fraction(1, 3)}, folder / "pytorch_model.bin")


def bpe_tokenizer(folder):
    """A GPT-2 BPE tokenizer with a stray spiece.model left beside it."""
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    vocab = {"<|endoftext|>": 0, **{chr(0x3042 + i): i + 1 for i in range(80)}}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer",
                                                              "eos_token": "<|endoftext|>"}))


@pytest.mark.parametrize("make, message", [
    (lambda f, t: bert_folder(f, t), r"is a bert model \(BertModel\), not a GPT-2 causal language model"),
    (lambda f, t: (model_folder(f, t), (f / "model.safetensors").unlink()), "holds no weights"),
    (lambda f, t: (model_folder(f, t), (f / "spiece.model").unlink()), "is not SentencePiece"),
    (lambda f, t: model_folder(f, t, vocab_size=100), "has 8000 entries but its model embeds 100 tokens"),
    (lambda f, t: f.mkdir(), "holds no config.json: it is not a transformers model"),
    (lambda f, t: cut(model_folder(f, t) / "model.safetensors", 100), r"do not load \(model.safetensors: "),
    (lambda f, t: cut(model_folder(f, t) / "model.safetensors", 0), r"do not load \(model.safetensors: "),
    (lambda f, t: (model_folder(f, t) / "config.json").write_text("{not json"), "The config.json of .* is not JSON"),
    (lambda f, t: (model_folder(f, t) / "spiece.model").write_bytes(b"not a model"), "spiece.model of .* does not load"),
    (lambda f, t: unsafe_pickle(model_folder(f, t)), r"do not load \(pytorch_model.bin: UnpicklingError"),
    (lambda f, t: bpe_tokenizer(model_folder(f, t)), r"\(GPT2Tokenizer\) is not built on the spiece.model beside it"),
])
def test_what_cannot_be_continued_is_refused_in_one_sentence(excerpt_tokenizer, tmp_path, make, message):
    make(tmp_path / "base", excerpt_tokenizer)
    with pytest.raises(UserError, match=message):
        resolve(str(tmp_path / "base"))


def tokenizer_of_class(folder, tokenizer_dir, tokenizer_class):
    """A model folder whose spiece.model loads as another tokenizer class, as rinna's loads as T5Tokenizer."""
    model_folder(folder, tokenizer_dir)
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": tokenizer_class, "extra_ids": 0, "unk_token": "<unk>", "eos_token": "</s>"}))
    return folder


def test_a_tokenizer_converted_from_sentencepiece_encodes_the_token_cache_itself(excerpt_tokenizer, tmp_path):
    base = resolve(str(tokenizer_of_class(tmp_path / "t5", excerpt_tokenizer, "T5Tokenizer")))
    own, converted = SentencePieceEncoder(excerpt_tokenizer), SentencePieceEncoder(base.folder)
    assert own.as_is and not converted.as_is  # transformers 5's T5Tokenizer encodes a newline its own way
    texts = ["吾輩は猫である。\n名前はまだ無い。", "Tokyo"]
    assert converted(texts) == converted.tokenizer(texts, add_special_tokens=False)["input_ids"]
    assert own(texts) == own.processor.encode(texts)
    config = base.training_config(0.0, converted.tokenizer)  # its config named GPT-2's English ids
    assert config.eos_token_id == converted.tokenizer.eos_token_id == 3


def test_sharded_weights_are_the_shards_their_index_names(excerpt_tokenizer, tmp_path):
    folder = model_folder(tmp_path / "base", excerpt_tokenizer)
    GPT2LMHeadModel.from_pretrained(str(folder)).save_pretrained(str(folder), max_shard_size="100KB")
    (folder / "model.safetensors").unlink(missing_ok=True)
    shards = sorted(folder.glob("model-*.safetensors"))
    assert len(shards) > 1
    (folder / "notes-model.bin").write_text("not loaded")
    base = resolve(str(folder))
    assert base.fingerprint == hashlib.sha256("".join(map(file_fingerprint, shards)).encode()).hexdigest()
    shards[-1].unlink()
    with pytest.raises(UserError, match="lacks 1 of the weight shards its model.safetensors.index.json names"):
        resolve(str(folder))


@pytest.mark.slow
def test_a_model_folder_of_this_project_is_under_its_dumps_license(tiny_model):
    dump_date = json.loads((tiny_model / "run_info.json").read_text())["preparation"]["dump_date"]
    assert dump_date < "20230607" and resolve(str(tiny_model)).license == "cc-by-sa-3.0"  # an older dump's


@pytest.mark.slow
def test_a_base_the_run_would_overwrite_is_refused(excerpt_data, tiny_model, tmp_path):
    import train
    shutil.copytree(tiny_model, tmp_path / "run" / "model")  # the run folder's own model
    with pytest.raises(UserError, match="lies in the model or checkpoints folder of --output_dir"):
        train.main(["configs/tiny.yaml", "--model_name_or_path", str(tmp_path / "run" / "model"), "--data_dir",
                    str(excerpt_data), "--output_dir", str(tmp_path / "run"), "--overwrite_output_dir"])
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_a_checkpoint_of_an_earlier_commit_names_the_revision_to_pin():
    old = {"base_model": {"name": "u/m", "revision": "a" * 40}}
    assert pinning_hint(old, {"base_model": {"name": "u/m", "revision": "b" * 40}}) == (
        f" It started from u/m at {'a' * 40}: pass --model_revision {'a' * 40} to go on.")
    assert pinning_hint(old, {"base_model": {"fingerprint": "c" * 64}}) == pinning_hint({}, old) == ""


def test_a_name_that_is_neither_folder_nor_repo_id_and_a_revision_of_a_folder_are_refused(excerpt_tokenizer,
                                                                                          tmp_path):
    with pytest.raises(UserError, match="is neither a folder here nor a Hub repo id"):
        resolve(str(tmp_path / "no" / "such" / "folder"))
    for malformed in ("tester/my--model", "tester/name-", "tester/.."):  # huggingface_hub's rules, before any request
        with pytest.raises(UserError, match=f"--model_name_or_path {re.escape(malformed)} is neither a folder"):
            resolve(malformed)
    folder = model_folder(tmp_path / "base", excerpt_tokenizer)
    with pytest.raises(UserError, match="--model_revision v1 names a Hub commit, but .* is a local folder"):
        resolve(str(folder), revision="v1")
    import train
    with pytest.raises(UserError, match="--model_revision v1 goes with --model_name_or_path"):
        train.parse_arguments(["configs/tiny.yaml", "--model_revision", "v1"])


def test_the_base_gives_the_architecture_over_the_recipe_and_refuses_a_contradicting_flag(caplog):
    import train
    argv = ["configs/tiny.yaml", "--model_name_or_path", "x/y"]
    model_args, _, _ = train.parse_arguments(argv)
    config = GPT2Config(vocab_size=8000, n_positions=64, n_embd=32, n_layer=1, n_head=2)
    with caplog.at_level(logging.INFO):
        check_architecture(model_args, flags_named(argv), config, "x/y")
    assert "n_layer 2 (the recipe's or the default) is ignored: the base model x/y has 1." in caplog.text
    assert model_args.n_layer == 2  # the arguments stay as given: the config is the run's architecture
    for flag, refused in (("2", True), ("1", False)):
        argv = ["configs/tiny.yaml", "--model_name_or_path", "x/y", "--n_layer", flag]
        model_args, _, _ = train.parse_arguments(argv)
        if refused:
            with pytest.raises(UserError, match="--n_layer 2 contradicts the base model x/y, whose n_layer is 1"):
                check_architecture(model_args, flags_named(argv), config, "x/y")
        else:
            check_architecture(model_args, flags_named(argv), config, "x/y")


class FirstBatch(TrainerCallback):
    """Keeps the input ids of the first training step's forward pass."""

    def __init__(self):
        self.input_ids = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        def keep(module, positional, keywords):
            if module.training and self.input_ids is None:
                self.input_ids = keywords["input_ids"].detach().clone()
        model.register_forward_pre_hook(keep, with_kwargs=True)


def loss_on(model_dir, input_ids):
    """The loss a model folder's weights give a batch of blocks, as train.py's blocks are labelled."""
    model = GPT2LMHeadModel.from_pretrained(str(model_dir)).eval()
    labels = input_ids.clone()
    labels[:, 0] = -100
    with torch.no_grad():
        return model(input_ids=input_ids, labels=labels).loss.item()


@pytest.mark.slow
def test_a_run_continues_a_published_model_on_text_files_from_its_loss(tiny_model, tmp_path, hub):
    import prepare_data
    import push_to_hub
    import train
    push_to_hub.main(["--model_dir", str(tiny_model), "--repo_id", "tester/tiny-ja", "--stage_dir",
                      str(tmp_path / "stage")])
    # the user's own text: a novel, its paragraphs as documents, separated by blank lines
    paragraphs = OUT_OF_DOMAIN_TEXT.read_text(encoding="utf-8").splitlines()
    (tmp_path / "novel.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")
    prepare_data.main(["--train_file", str(tmp_path / "novel.txt"), "--output_dir", str(tmp_path / "data"),
                       "--validation_percent", "5", "--test_percent", "5", "--num_proc", "1"])
    first = FirstBatch()
    argv = ["configs/tiny.yaml", "--model_name_or_path", "tester/tiny-ja", "--data_dir", str(tmp_path / "data"),
            "--output_dir", str(tmp_path / "run"), "--max_steps", "2", "--logging_steps", "1", "--save_steps", "2",
            "--eval_steps", "2", "--warmup_steps", "0", "--out_of_domain_text", ""]
    model_dir = train.main(argv, callbacks=[first])

    first_loss = json.loads((model_dir / "trainer_state.json").read_text())["log_history"][0]["loss"]
    base_loss = loss_on(tiny_model, first.input_ids)  # before any training, on the same blocks
    assert first_loss == pytest.approx(base_loss, rel=0.10)
    fresh = GPT2LMHeadModel(GPT2Config.from_pretrained(str(tiny_model)))
    fresh.save_pretrained(str(tmp_path / "fresh"))
    fresh_loss = loss_on(tmp_path / "fresh", first.input_ids)
    assert fresh_loss == pytest.approx(math.log(8000), abs=0.2)  # random weights: about ln(vocab)
    assert first_loss < fresh_loss - 1.0  # the base's 30 steps of training are there from the first step
    info = json.loads((model_dir / "run_info.json").read_text())
    commit = hub.repos["tester/tiny-ja"]["commits"][-1]
    assert info["base_model"]["name"] == "tester/tiny-ja" and info["base_model"]["revision"] == commit
    assert info["identity"]["base_model"] == {"name": "tester/tiny-ja", "revision": commit}
    assert (model_dir / "spiece.model").read_bytes() == (tiny_model / "spiece.model").read_bytes()
    preparation = info["preparation"]  # a paragraph given twice is trained on once
    assert preparation["source"]["title"] == "novel.txt" and preparation["articles"] == len(set(paragraphs)) == 469

    push_to_hub.main(["--model_dir", str(model_dir), "--dry_run", "--license", "cc-by-sa-4.0"])
    card = ModelCard.load(model_dir.parent / "hub" / "README.md")
    assert card.data.base_model == "tester/tiny-ja" and card.data.base_model_relation == "finetune"
    assert card.data.license == "cc-by-sa-4.0" and "novel.txt" in card.text and "Wikipedia" not in card.text

    shutil.rmtree(model_dir)  # the run to resume from its checkpoint, with another base: refused
    argv[argv.index("tester/tiny-ja")] = str(tiny_model)
    with pytest.raises(UserError, match=r"checkpoint-2 belongs to another run \(base_model"):
        train.main(argv)


@pytest.mark.slow
def test_processes_under_accelerate_continue_a_hub_model_together(tiny_model, excerpt_data, tmp_path, hub):
    api = HfApi(token=TOKEN)
    api.create_repo("tester/tiny-ja")
    api.upload_folder(repo_id="tester/tiny-ja", folder_path=str(tiny_model), allow_patterns=MODEL_FILES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf_home"))
    launched = Launch(["--num_processes", "2"], [
        "train.py", "configs/tiny.yaml", "--model_name_or_path", "tester/tiny-ja", "--data_dir", str(excerpt_data),
        "--output_dir", str(tmp_path / "run"), "--max_steps", "2", "--save_steps", "2", "--eval_steps", "2",
        "--out_of_domain_text", ""], tmp_path / "launch.log", env)
    assert launched.wait() == 0, launched.output()
    assert "Global batch 16 sequences = 2 processes x 8 per device" in launched.output()
    info = json.loads((tmp_path / "run" / "model" / "run_info.json").read_text())
    assert info["base_model"]["name"] == "tester/tiny-ja" and info["hardware"]["processes"] == 2
    downloads = [path for method, path, _ in hub.requests if method == "GET" and path.endswith("model.safetensors")]
    assert len(downloads) == 1  # the main process downloads; the other finds it in the cache
    # a base the main process refuses is refused by every process, in the same sentence, none left waiting
    refused = Launch(["--num_processes", "2"], [
        "train.py", "configs/tiny.yaml", "--model_name_or_path", "tester/nothing", "--data_dir", str(excerpt_data),
        "--output_dir", str(tmp_path / "other")], tmp_path / "refused.log", env)
    assert refused.wait(timeout=300) != 0
    assert refused.output().count("error: There is no model tester/nothing on the Hub") == 2, refused.output()


def test_a_token_the_hub_refuses_is_named_as_the_cause_for_a_base_and_a_dataset(hub, monkeypatch):
    from gpt2ja.sources.hub_dataset import dataset_revision
    monkeypatch.setenv("HF_TOKEN", "hf_not_the_right_one")
    for read, what in ((lambda: resolve("tester/base"), "the files of tester/base"),
                       (lambda: dataset_revision("tester/corpus"), "dataset tester/corpus")):
        with pytest.raises(UserError, match=rf"refused the token \(HTTP 401\) when reading {what}: run `hf auth "
                                            r"login` or set HF_TOKEN"):
            read()


def test_a_checkpoint_folder_as_a_base_has_its_runs_license(tiny_model, tmp_path):
    from gpt2ja.base_model import folder_license
    from gpt2ja.run_folder import last_complete_checkpoint
    checkpoint = Path(last_complete_checkpoint(tiny_model.parent / "checkpoints"))
    assert folder_license(checkpoint) == folder_license(tiny_model) == "cc-by-sa-3.0"


def test_offline_the_base_is_found_at_the_recorded_commit_else_at_its_branch_else_refused(excerpt_tokenizer, tmp_path,
                                                                                         hub, monkeypatch):
    import huggingface_hub.constants as constants
    folder = model_folder(tmp_path / "base", excerpt_tokenizer)
    first = hub.publish("models", "tester/base", {p.name: p.read_bytes() for p in folder.iterdir()})
    pinned = resolve("tester/base", revision=first)  # online, at the first commit
    model_folder(folder, excerpt_tokenizer)
    second = hub.publish("models", "tester/base", {p.name: p.read_bytes() for p in folder.iterdir()})
    latest = resolve("tester/base")  # online, main: the second commit
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert resolve("tester/base").identity == latest.identity == {"name": "tester/base", "revision": second}
    assert resolve("tester/base", recorded=first).fingerprint == pinned.fingerprint  # what a run folder recorded
    assert resolve("tester/base", revision=second).identity["revision"] == second
    with pytest.raises(UserError, match=rf"HF_HUB_OFFLINE is set and the Hub cache holds no snapshot of tester/base "
                                        rf"at v9 \(it holds {min(first, second)}, {max(first, second)}\); pass "
                                        r"--model_revision with one of them"):
        resolve("tester/base", revision="v9")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(UserError, match=r"holds no snapshot of tester/base at main \(it holds none\)"):
        resolve("tester/base")


def test_a_gated_base_links_its_terms_on_the_hub_it_was_asked_of(excerpt_tokenizer, tmp_path, hub):
    folder = model_folder(tmp_path / "base", excerpt_tokenizer)
    hub.publish("models", "tester/gated", {p.name: p.read_bytes() for p in folder.iterdir()})
    hub.repos["tester/gated"]["gated"] = True
    with pytest.raises(UserError, match=rf"tester/gated is gated: accept its terms on {re.escape(hub.url)}/tester/gated "
                                        "with the account whose token this machine uses"):
        resolve("tester/gated")
