"""The docs' commands run as written: blocks taken from the Markdown pages themselves and run by bash on the CPU,
in a folder of their own, with only these substitutions: `python` is this interpreter with the repository's scripts,
the repository's files (configs/..., metrics/..., space/app.py) are named by their full path, `runs/demo/model` and its data are
the session's tiny model and excerpt, a URL is the same file on a loopback server, USER/NAME a dataset on the
loopback Hub, and a served app gets a free port."""

import functools
import gzip
import json
import os
import re
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gpt2ja.splits import Preparation
from hub_double import HubDouble

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_DocsTestToken0123456789"
# The blocks the tests below run, by a text each holds; every other block of these pages carries NOT_RUN before it,
# with the reason. (docs/options.md is left out: its blocks are each script's synopsis, as --help gives it.)
RUN = {("docs/data.md", "--train_file notes.txt"), ("docs/continue.md", "runs/novel/bocchan.txt"),
       ("README.md", 'pipeline("text-generation"'), ("README.md", "space/app.py --model"),
       ("docs/evaluation.md", "--tasks jawiki --include_path")}
PAGES = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md") if p.name != "options.md")]
NOT_RUN = re.compile(r"<!-- not run by tests/test_docs.py: \S.* -->\n$")
DOCUMENTS = [f"文書{n}の一段落目です。\n文書{n}の二段落目は、もう少し長い文です。" for n in range(30)]


def fenced_block(page, containing):
    """The one fenced block of a page holding `containing`, as written."""
    blocks = [block for block in re.findall(r"```[a-z]*\n(.*?)```", (REPO / page).read_text(encoding="utf-8"), re.S)
              if containing in block]
    assert len(blocks) == 1, f"{page}: {len(blocks)} blocks hold {containing!r}"
    return blocks[0]


def test_every_block_of_the_pages_is_run_here_or_says_why_not():
    assert len(PAGES) >= 8
    for page in PAGES:
        text = (REPO / page).read_text(encoding="utf-8")
        for fence in re.finditer(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M):
            run = [containing for where, containing in RUN if where == page and containing in fence[1]]
            said = NOT_RUN.search(text[:fence.start()])
            state = "run and marked" if run else "neither run nor marked"
            assert bool(run) != bool(said), f"{page}: {fence[1].splitlines()[0]!r} is {state}"
    for page, containing in RUN:
        fenced_block(page, containing)


def as_run_here(block, **substitutions):
    """The block with the substitutions this file's docstring names, and the repository's scripts by full path."""
    block = re.sub(r"^python (\w+\.py)", lambda m: f"{sys.executable} {REPO / m[1]}", block, flags=re.M)
    for written, here in substitutions.items():
        block = block.replace(written, here)
    return block


def run_block(block, cwd, env=None):
    done = subprocess.run(["bash", "-e", "-c", block], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, f"{block}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture
def web(tmp_path):
    """A loopback HTTP server of the folder web/."""
    root = tmp_path / "web"
    root.mkdir()
    quiet = type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.slow  # runs the block's scripts in processes of their own
def test_the_three_formats_of_the_data_page_prepare_as_written(tmp_path, web):
    block = fenced_block("docs/data.md", "--train_file notes.txt")
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("\n\n".join(DOCUMENTS[:10]), encoding="utf-8")
    with gzip.open(work / "more.jsonl.gz", "wt", encoding="utf-8") as more:
        more.writelines(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in DOCUMENTS[10:20])
    root, url = web
    (root / "corpus.jsonl").write_text("".join(json.dumps({"body": text}, ensure_ascii=False) + "\n"
                                               for text in DOCUMENTS[20:]), encoding="utf-8")
    with HubDouble(TOKEN) as hub:
        hub.publish("datasets", "tester/NAME", {"data/train.jsonl": (root / "corpus.jsonl").read_bytes().replace(
            b'"body"', b'"text"')})
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_XET="1",
                   HF_HUB_DISABLE_TELEMETRY="1")
        run_block(as_run_here(block, **{"https://example.org": url, "USER/NAME": "tester/NAME"}), work, env)
    folders = [line.split("--output_dir ")[1].split()[0] for line in block.splitlines() if "--output_dir" in line]
    assert len(set(folders)) == 3  # a data folder each: the second is not refused as "other settings"
    assert [Preparation.load(work / folder).articles for folder in folders] == [20, 10, 10]


@pytest.mark.slow  # runs the block's scripts in processes of their own
def test_the_measured_cpu_example_of_the_continue_page_runs_as_written(tiny_model, tmp_path):
    block = fenced_block("docs/continue.md", "runs/novel/bocchan.txt")
    work = tmp_path / "work"
    work.mkdir()
    run_block(as_run_here(block, **{"runs/demo/model": str(tiny_model), " metrics/": f" {REPO}/metrics/",
                                    " configs/": f" {REPO}/configs/"}), work)
    data = Preparation.load(work / "runs" / "novel" / "data")
    # the page's figures of the data (the training figures are the demo model's, not the tiny one's)
    assert (data.articles, data.splits) == (469, {"train": 376, "validation": 42, "test": 51})
    info = json.loads((work / "runs" / "novel" / "model" / "run_info.json").read_text())
    assert info["base_model"]["name"] == str(tiny_model)


@pytest.mark.slow  # runs the block's scripts in processes of their own
def test_the_readmes_pipeline_snippet_runs_as_copied(tiny_model, tmp_path):
    snippet = fenced_block("README.md", 'pipeline("text-generation"')
    done = subprocess.run([sys.executable, "-c", snippet.replace("USER/gpt2-small-ja", str(tiny_model))],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("近年の機械学習は") and len(done.stdout.strip()) > len("近年の機械学習は")


@pytest.mark.slow  # runs the block's scripts in processes of their own
def test_the_readmes_space_block_serves_and_answers_once(tiny_model):
    from gradio_client import Client
    block = fenced_block("README.md", "space/app.py --model")
    port = screenshot_free_port()
    command = as_run_here(block, **{".venv/bin/python space/app.py": f"{sys.executable} {REPO / 'space' / 'app.py'}",
                                    "runs/demo/model": str(tiny_model),
                                    "# http://127.0.0.1:7860": f"--port {port}"})
    app = subprocess.Popen(["bash", "-c", f"exec {command}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    try:
        client = wait_for_client(Client, f"http://127.0.0.1:{port}/", app)
        text, _ = client.predict("近年の機械学習は", 10, 50, 0.95, 1.0, 0, api_name="/generate")
        assert text.startswith("近年の機械学習は") and len(text) > len("近年の機械学習は")
    finally:
        app.terminate()
        app.wait(timeout=30)


@pytest.mark.slow  # runs the block's scripts in processes of their own
def test_the_evaluation_pages_lm_eval_block_scores_as_written(tiny_model, excerpt_data, tmp_path):
    block = fenced_block("docs/evaluation.md", "--tasks jawiki --include_path")
    command = as_run_here(block, **{"lm-eval run": f"{Path(sys.executable).with_name('lm-eval')} run",
                                    "runs/demo/model": str(tiny_model), "runs/demo/data": str(excerpt_data),
                                    " metrics/": f" {REPO}/metrics/"})
    done = run_block(command, tmp_path)
    assert re.search(r"\|\s*jawiki\s*\|", done.stdout + done.stderr), (done.stdout + done.stderr)[-3000:]


def screenshot_free_port():
    import screenshot  # space/screenshot.py (space/ is on pytest's pythonpath)
    return screenshot.free_port()


def wait_for_client(client_type, url, process, timeout=180):
    import time
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, process.stdout.read()[-3000:]
        try:
            return client_type(url, verbose=False)
        except Exception:  # not serving yet
            assert time.monotonic() < deadline, f"{url} did not answer in {timeout} s"
            time.sleep(1)
