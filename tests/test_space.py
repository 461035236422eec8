"""space/app.py, the live demo: served on 127.0.0.1 on the session's tiny model, used through gradio_client and
through a real headless Chromium (space/screenshot.py drives it)."""

import json
import shutil
import subprocess
import sys

import pytest
import screenshot  # space/screenshot.py (space/ is on pytest's pythonpath): starts the app, drives Chromium
from gradio_client import Client

from gpt2ja.settings import REPO_ROOT

pytestmark = pytest.mark.slow  # serves the session's trained tiny model

PROMPT = "近年の機械学習は"


@pytest.fixture(scope="module")
def app_url(tiny_model):
    app, url = screenshot.start_app(tiny_model, screenshot.free_port())
    yield url
    app.terminate()
    app.wait(timeout=30)


def generate(client, prompt=PROMPT, max_new_tokens=30, seed=0):
    return client.submit(prompt, max_new_tokens, 50, 0.95, 1.0, seed, api_name="/generate")


def test_the_output_streams_and_continues_the_prompt(app_url):
    job = generate(Client(app_url, verbose=False))
    job.result(timeout=120)
    outputs = [text for text, note in job.outputs()]
    assert len(outputs) >= 3  # several partial outputs, not one answer at the end
    assert all(text.startswith(PROMPT) for text in outputs)
    assert all(later.startswith(earlier) and len(later) > len(earlier)
               for earlier, later in zip(outputs, outputs[1:]))
    assert len(outputs[-1]) > len(PROMPT)


def test_the_page_names_the_model_by_its_folder_never_its_path_and_has_one_public_endpoint(app_url, tiny_model):
    import urllib.request
    page = urllib.request.urlopen(app_url.rstrip("/") + "/config").read().decode()
    assert str(tiny_model) not in page and str(tiny_model.parent) not in page  # it was started with the full path
    assert "Japanese GPT-2: tiny/model" in page and "プロンプト" in page and "Stop" in page
    api = Client(app_url, verbose=False).view_api(return_format="dict", print_info=False)
    assert list(api["named_endpoints"]) == ["/generate"] and not api["unnamed_endpoints"]


def test_the_same_seed_gives_the_same_text(app_url):
    client = Client(app_url, verbose=False)
    first, again, other = (generate(client, seed=seed).result(timeout=120) for seed in (1, 1, 2))
    assert first == again and first != other


@pytest.mark.parametrize("prompt, max_new_tokens, message", [
    ("  ", 30, "Write a prompt to continue .* / 続きを書く文章を入力してください"),
    ("日本の首都は東京である。" * 40, 30, "passes the model's context of 128.* / .*モデルの文脈長 128 を超えます"),
])
def test_an_empty_or_over_long_prompt_gets_a_message(app_url, prompt, max_new_tokens, message):
    with pytest.raises(Exception, match=message):
        generate(Client(app_url, verbose=False), prompt, max_new_tokens).result(timeout=120)


@pytest.mark.parametrize("seed", [None, 2**40, -1])  # (1.5: the box rounds it)
def test_a_seed_that_is_no_seed_gets_a_message(app_url, seed):
    with pytest.raises(Exception, match="The seed must be a whole number from 0 to 4294967295. / シードは 0 から"):
        generate(Client(app_url, verbose=False), seed=seed).result(timeout=120)


def test_unknown_tokens_show_as_unk_and_are_counted_in_both_languages(unk_model):
    app, url = screenshot.start_app(unk_model, screenshot.free_port())
    try:
        text, note = generate(Client(url, verbose=False), max_new_tokens=4).result(timeout=120)
    finally:
        app.terminate()
        app.wait(timeout=30)
    assert text == PROMPT + "<unk>" * 4
    assert note.startswith("4 × `<unk>`: text the tokenizer has no piece for") and "（4 個）" in note


def test_a_model_folder_that_is_not_there_is_one_sentence(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants
    from app import main
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    for model, message in ((str(tmp_path / "runs" / "demo" / "model"), "no such folder"),
                           ("nobody/no-such-model", "did not load")):
        with pytest.raises(SystemExit) as ended:  # `python space/app.py --model ...`, in this process
            main(["--model", model])
        stderr = capsys.readouterr().err
        assert ended.value.code in (1, 2), stderr[-2000:]
        assert message in stderr.strip().splitlines()[-1]


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="no Chromium here: apt-get install chromium chromium-driver fonts-noto-cjk "
                           "(.ci/run installs them, so CI runs this test)")
def test_a_person_types_a_prompt_in_a_browser_and_sees_it_continued(app_url, tiny_model):
    shot = tiny_model.parent / "space_screenshot.png"  # in the run folder
    run = subprocess.run([sys.executable, str(REPO_ROOT / "space" / "screenshot.py"), "--url", app_url,
                          "--prompt", "日本の首都は", "--out", str(shot)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    page = json.loads(run.stdout.splitlines()[-1])
    assert page["output"].startswith("日本の首都は") and len(page["output"]) > len("日本の首都は")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
