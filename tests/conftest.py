import os
import subprocess
from pathlib import Path

import pytest

from gpt2ja.settings import EXCERPT, FIRST20


def pytest_configure(config):
    """Each test process (every pytest-xdist worker) keeps freed memory as train.py does on the CPU: the tests that
    train or score a model in-process run as fast as a train.py process would."""
    from gpt2ja import cpu_memory
    cpu_memory.keep_freed_memory()


def shared_file(path):
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared jawiki excerpt lies beside the repository (../shared)")
    return path


@pytest.fixture
def excerpt():
    return shared_file(EXCERPT)


@pytest.fixture
def first20():
    return shared_file(FIRST20)


def built_once(tmp_path_factory, name, build):
    """What `build(folder)` returns (a path), built once for the whole session: under pytest-xdist, by the first
    worker that asks, holding a lock beside it while the others wait, then shared by all of them."""
    from filelock import FileLock
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, above each worker's own
    done = root / f"{name}.built"
    with FileLock(str(root / f"{name}.lock")):
        if not done.is_file():
            done.write_text(str(build(root / name)), encoding="utf-8")
    return Path(done.read_text(encoding="utf-8"))


@pytest.fixture
def command(capsys):
    """command(main, argv): `python script.py *argv` run in this process, for a test of what the command prints
    and its exit status, not of the process (a new interpreter spends 6-7 CPU-s importing torch and
    transformers): main(argv) ended by gpt2ja.cli.run_main, as the script's last line ends it (a UserError:
    "error: ..." on stderr and exit 1; an error of ours raises), its log lines on stderr as run_main's logging
    writes them. Its exit status, stdout and stderr."""
    import logging

    from gpt2ja.cli import run_main
    root = logging.getLogger()

    def ended(main, argv):
        capsys.readouterr()  # what the test printed before
        handlers, level = root.handlers[:], root.level
        root.handlers.clear()  # pytest's own: without them, run_main's logging.basicConfig takes effect
        try:
            run_main(lambda: main(argv))
            status = 0
        except SystemExit as exit:
            status = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(argv, status, out, err)
    return ended


@pytest.fixture(scope="session")
def excerpt_data(tmp_path_factory):
    """The 262-page excerpt prepared once for the session, with 5% validation and 1% test (2 articles: every
    training run of the tests scores the whole test split at its end)."""
    import prepare_data

    def build(folder):
        out = folder / "data"
        prepare_data.main(["--dump", str(shared_file(EXCERPT)), "--output_dir", str(out),
                           "--validation_percent", "5", "--test_percent", "1", "--num_proc", "1"])
        return out
    return built_once(tmp_path_factory, "excerpt", build)


@pytest.fixture(scope="session")
def excerpt_tokenizer(excerpt_data, tmp_path_factory):
    """A 8,000-piece tokenizer trained on the excerpt (all it supports is about 9,000)."""
    import tokenizer

    def build(folder):
        tokenizer.main(["--data_dir", str(excerpt_data), "--output_dir", str(folder), "--vocab_size", "8000"])
        return folder
    return built_once(tmp_path_factory, "excerpt_tokenizer", build)


def tiny_run_argv(data, tokenizer, out):
    """train.py's command line of the session's tiny run (tiny_model) into the run folder `out`: 30 steps,
    evaluated and saved every 10 (the tiny recipe keeps the last 2 checkpoints), the out-of-domain novel scored."""
    return ["configs/tiny.yaml", "--data_dir", str(data), "--tokenizer_dir", str(tokenizer), "--output_dir", str(out),
            "--max_steps", "30", "--eval_steps", "10", "--logging_steps", "5", "--save_steps", "10"]


@pytest.fixture(scope="session")
def tiny_model(excerpt_data, excerpt_tokenizer, tmp_path_factory):
    """A tiny GPT-2 trained for 30 steps on the excerpt: a complete model/ folder from train.py, in its run
    folder (tiny_model.parent) with checkpoint-20 and checkpoint-30. Never change it: copy it (finished_run)."""
    import train
    return built_once(tmp_path_factory, "tiny",
                      lambda folder: train.main(tiny_run_argv(excerpt_data, excerpt_tokenizer, folder)))


@pytest.fixture
def finished_run(tiny_model, excerpt_data, excerpt_tokenizer, tmp_path):
    """(run folder, argv): a copy of the session's finished tiny run in tmp_path/run, for a drill that changes it
    (reruns with other settings), and the train.py command line that finished it there."""
    import shutil
    shutil.copytree(tiny_model.parent, tmp_path / "run")
    return tmp_path / "run", tiny_run_argv(excerpt_data, excerpt_tokenizer, tmp_path / "run")


@pytest.fixture(scope="session")
def unk_model(tiny_model):
    """A copy of the tiny model whose last layer norm always points at the <unk> embedding: every new token is
    <unk> (what a rare character or an emoji in the training text teaches a model, taken to the extreme)."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file
    folder = tiny_model.parent.parent / "unk_model"
    if not folder.exists():
        shutil.copytree(tiny_model, folder)
        weights = load_file(folder / "model.safetensors")
        direction = torch.randn(weights["transformer.wte.weight"].shape[1], generator=torch.Generator().manual_seed(0))
        direction /= direction.norm()
        weights["transformer.wte.weight"][1] = 10 * direction  # id 1: <unk>
        weights["transformer.ln_f.weight"].zero_()
        weights["transformer.ln_f.bias"].copy_(direction)
        save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


@pytest.fixture
def mirror(tmp_path, first20):
    """A dumps mirror on the loopback interface holding the 20-page dump as jawiki 20220720 and latest."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    root = tmp_path / "mirror"
    for date in ("20220720", "latest"):
        (root / "jawiki" / date).mkdir(parents=True)
        (root / "jawiki" / date / f"jawiki-{date}-pages-articles-multistream.xml.bz2").write_bytes(
            first20.read_bytes())
    # what Wikimedia keeps beside each latest file: an RSS item whose link names the dump's date
    (root / "jawiki" / "latest" / "jawiki-latest-pages-articles-multistream.xml.bz2-rss.xml").write_text(
        '<rss version="2.0"><channel><item><link>https://dumps.wikimedia.org/jawiki/20220720</link></item>'
        "</channel></rss>")
    quiet = type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def small_disk(tmp_path, request):
    """A small tmpfs: a disk that fills up (needs root; skipped where mount is not allowed)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    size = getattr(request, "param", "1m")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)], capture_output=True)
    if out.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({out.stderr.decode().strip()}): needs root")
    yield mount_point
    subprocess.run(["umount", "--lazy", str(mount_point)], check=True)  # lazy: a library may still hold a file there


@pytest.fixture
def read_only_disk(tmp_path):
    """(folder, seal): a tmpfs to fill, then seal() mounts it read-only, as data shared on a cluster often
    is (needs root; skipped where mount is not allowed)."""
    mount_point = tmp_path / "read-only"
    mount_point.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)], capture_output=True)
    if out.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({out.stderr.decode().strip()}): needs root")

    def seal():
        subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True)

    yield mount_point, seal
    subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


# --- lm-eval's Japanese tasks on fixture rows (tests/fixtures/japanese_tasks) --------------------------------

JAPANESE_ROWS = Path(__file__).parent / "fixtures" / "japanese_tasks"


def japanese_features(task):
    """The columns of each task's rows as the Hub's datasets yield them (JGLUE's labels are ClassLabels)."""
    from datasets import ClassLabel, Features, Value
    text = Value("string")
    if task == "jcommonsenseqa":
        return Features({"q_id": Value("int64"), "question": text, **{f"choice{i}": text for i in range(5)},
                         "label": ClassLabel(names=[f"choice{i}" for i in range(5)])})
    if task == "jnli":
        return Features({"sentence_pair_id": text, "yjcaptions_id": text, "sentence1": text, "sentence2": text,
                         "label": ClassLabel(names=["entailment", "contradiction", "neutral"])})
    return Features({"sentence1": text, "sentence2": text, "answer": text})  # xwinograd-ja: a JSON file


def japanese_sources(folder):
    """{task: (format, {split: file})}: the fixture rows written as the Hub serves them, Parquet for the JGLUE
    tasks (their Parquet conversion), JSON Lines for xwinograd-ja."""
    import datasets
    sources = {}
    for task, splits in (("jcommonsenseqa", ("train", "validation")), ("jnli", ("train", "validation")),
                         ("xwinograd", ("test",))):
        files = {}
        for split in splits:
            rows = datasets.load_dataset("json", data_files=str(JAPANESE_ROWS / f"{task}_{split}.jsonl"),
                                         split="train", features=japanese_features(task))
            data_format = "json" if task == "xwinograd" else "parquet"
            files[split] = str(folder / f"{task}_{split}.{data_format}")
            rows.to_json(files[split]) if data_format == "json" else rows.to_parquet(files[split])
        sources[task] = (data_format, files)
    return sources


@pytest.fixture(scope="session")
def japanese_tasks(tmp_path_factory):
    """An lm-eval include folder: the fixture tasks jcommonsenseqa_fixture, jnli_fixture and xwinograd_fixture
    (lm-eval's own Japanese configs, included by their absolute path, on the fixture rows), and
    ja_leaderboard_mc_fixture: the repository's group metrics/lm_eval_tasks/ja_leaderboard_mc.yaml with each
    task's data source swapped for the fixture rows (so its results carry lm-eval's real task names)."""
    return built_once(tmp_path_factory, "japanese_tasks", write_japanese_tasks)


def write_japanese_tasks(folder):
    import lm_eval.tasks
    import yaml

    from gpt2ja.settings import REPO_ROOT
    leaderboard = Path(lm_eval.tasks.__file__).parent / "japanese_leaderboard"
    folder.mkdir(parents=True)
    sources = japanese_sources(folder)

    def local(task):
        data_format, files = sources[task]
        return {"dataset_path": data_format, "dataset_name": None, "dataset_kwargs": {"data_files": files}}

    for task in sources:
        config = {"include": str(leaderboard / f"ja_leaderboard_{task}.yaml"), "task": f"{task}_fixture", **local(task)}
        (folder / f"{task}_fixture.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    group = yaml.safe_load((REPO_ROOT / "metrics" / "lm_eval_tasks" / "ja_leaderboard_mc.yaml").read_text())
    members = [member if isinstance(member, dict) else {"task": member} for member in group["task"]]
    group.update(group="ja_leaderboard_mc_fixture",
                 task=[{**member, **local(member["task"].removeprefix("ja_leaderboard_"))} for member in members])
    (folder / "ja_leaderboard_mc_fixture.yaml").write_text(yaml.safe_dump(group, allow_unicode=True),
                                                           encoding="utf-8")
    return folder


def run_lm_eval(model, prefix_token_id, tasks, include_path, output_path):
    """lm-eval's own command, offline, on a model folder: its result file, with the samples it logged."""
    import json
    import os
    import sys
    # the documented settings: the model's end-of-text id before an empty context, no special tokens added
    model_args = f"pretrained={model},prefix_token_id={prefix_token_id},add_bos_token=False"
    command = [sys.executable, "-m", "lm_eval", "run", "--model", "hf", "--model_args", model_args, "--tasks", *tasks,
               "--include_path", str(include_path), "--device", "cpu", "--batch_size", "8",
               "--output_path", str(output_path), "--log_samples"]
    offline = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    run = subprocess.run(command, env=offline, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    [results_file] = Path(output_path).rglob("results_*.json")
    assert json.loads(results_file.read_text())["config"]["model_args"]
    return results_file


@pytest.fixture(scope="session")
def japanese_results(tiny_model, japanese_tasks, tmp_path_factory):
    """lm-eval's result file of the fixture tasks and of the fixture group on the tiny model (prefix </s>)."""
    from transformers import AutoTokenizer
    eos = AutoTokenizer.from_pretrained(str(tiny_model)).eos_token_id
    return built_once(tmp_path_factory, "lm_eval_ours", lambda folder: run_lm_eval(
        tiny_model, eos, ["jcommonsenseqa_fixture", "jnli_fixture", "xwinograd_fixture", "ja_leaderboard_mc_fixture"],
        japanese_tasks, folder))


@pytest.fixture(scope="session")
def other_model_results(tiny_model, japanese_tasks, tmp_path_factory):
    """Another model's result file on the fixture group: a copy of the tiny model in a folder of its own, run
    with another prefix_token_id (<s>, as rinna's end-of-text id differs from ours)."""
    import shutil

    def build(folder):
        shutil.copytree(tiny_model, folder / "other-model")
        return run_lm_eval(folder / "other-model", 2, ["ja_leaderboard_mc_fixture"], japanese_tasks, folder / "lm_eval")
    return built_once(tmp_path_factory, "lm_eval_other", build)
