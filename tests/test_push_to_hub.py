import hashlib
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard, ModelCard, SpaceCard
from transformers import pipeline, set_seed

import push_to_hub
from gpt2ja.cards import example_output
from gpt2ja.errors import UserError
from gpt2ja.sources.files import files_record
from gpt2ja.run_folder import STAGING_RECORD
from gpt2ja.settings import PROMPT, SAMPLING
from hub_double import HubDouble, seen_from_this_process

REPO = Path(push_to_hub.__file__).parent
TOKEN = "hf_TestDoubleTokenThatMustNeverLeak0123456789"
EXPECTED_FILES = {"model.safetensors", "config.json", "generation_config.json", "spiece.model",
                  "tokenizer_config.json", "tokenizer.json", "README.md", "training_curve.png"}


def staged_files(stage_dir):
    """{path in the repo: bytes} of everything staged to upload."""
    return {p.relative_to(stage_dir).as_posix(): p.read_bytes() for p in stage_dir.rglob("*")
            if p.is_file() and p.name != STAGING_RECORD}


def tensorboard_files(files):
    return sorted(path for path in files if re.fullmatch(r"runs/.+/events\.out\.tfevents\..+", path))


@pytest.fixture(scope="module")
def staged(tiny_model, tmp_path_factory):
    stage_dir = tmp_path_factory.mktemp("hub") / "stage"
    push_to_hub.main(["--model_dir", str(tiny_model), "--repo_id", "tester/gpt2-small-ja-test", "--dry_run",
                      "--stage_dir", str(stage_dir)])
    return stage_dir


@pytest.mark.slow
def test_dry_run_stages_exactly_the_repo_files(staged, tiny_model):
    assert {p.name for p in staged.iterdir()} == EXPECTED_FILES | {"runs", STAGING_RECORD}
    # the run's TensorBoard logs, byte for byte, where the Hub's Training metrics tab reads them
    events = sorted((tiny_model.parent / "logs").rglob("events.out.tfevents.*"))
    assert events and tensorboard_files(staged_files(staged)) == sorted(
        f"runs/{tiny_model.parent.name}/{p.relative_to(tiny_model.parent / 'logs').as_posix()}" for p in events)
    for name in EXPECTED_FILES - {"README.md", "training_curve.png"}:
        assert (staged / name).read_bytes() == (tiny_model / name).read_bytes()
    assert (staged / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(staged.parent.glob(".*partial"))


@pytest.mark.slow
def test_staged_folder_generates_with_pipeline(staged):
    set_seed(0)
    generator = pipeline("text-generation", model=str(staged))
    assert type(generator.tokenizer).__name__ == "BertGenerationTokenizer"
    text = generator("近年の機械学習は", max_new_tokens=10)[0]["generated_text"]
    assert text.startswith("近年の機械学習は") and len(text) > len("近年の機械学習は")


@pytest.mark.slow
def test_card_metadata_reads_back(staged, tiny_model):
    card = ModelCard.load(staged / "README.md")
    data = card.data.to_dict()
    assert data["language"] == "ja" and data["datasets"] == ["wikimedia/wikipedia"] and data["metrics"] == ["perplexity"]
    assert data["license"] == "cc-by-sa-3.0" and data["pipeline_tag"] == "text-generation"
    assert data["library_name"] == "transformers" and "japanese" in data["tags"]
    widget = data["widget"][0]
    assert widget["text"] == "近年の機械学習は" and widget["output"]["text"].startswith("近年の機械学習は")
    # the example is this model's own output with the card's seed
    assert widget["output"]["text"] == example_output(tiny_model, 42).text
    results = json.loads((tiny_model / "all_results.json").read_text())
    metrics = {(r["dataset"]["split"], m["type"]): m["value"]
               for r in data["model-index"][0]["results"] for m in r["metrics"]}
    for split, prefix in (("validation", "eval"), ("test", "test")):
        for metric in ("loss", "perplexity", "bits_per_character"):
            assert metrics[(split, metric)] == pytest.approx(results[f"{prefix}_{metric}"], abs=1e-4)
    body = card.text
    assert f"{results['eval_loss']:.3f}" in body and f"{results['test_bits_per_character']:.3f}" in body
    assert "CC BY-SA 3.0" in body and "contributors" in body and "pipeline(" in body
    # sampling and special ids as the model's own files say
    assert f"top_k={SAMPLING['top_k']}, top_p={SAMPLING['top_p']}" in body
    assert "`<pad>`=0, `<unk>`=1, `<s>`=2, `</s>`=3, `<cls>`=4, `<sep>`=5" in body
    assert f'generator("{PROMPT}"' in body
    assert "![Training and validation loss by tokens seen](training_curve.png)" in body
    assert "/work/" not in body and str(REPO) not in body  # no local paths


@pytest.mark.slow
def test_a_bad_model_folder_is_refused_before_anything_is_staged(tiny_model, tmp_path):
    model_dir = tmp_path / "model"  # the checks themselves: test_cards.py
    shutil.copytree(tiny_model, model_dir)
    (model_dir / "spiece.model").unlink()
    with pytest.raises(UserError, match="lacks spiece.model"):
        push_to_hub.main(["--model_dir", str(model_dir), "--dry_run", "--stage_dir", str(tmp_path / "stage")])
    assert not (tmp_path / "stage").exists()


@pytest.fixture
def run_push(command, monkeypatch):
    """run_push(hub, model_dir, stage_dir, *flags, token=TOKEN): push_to_hub.py's command line against the Hub
    double, with HF_ENDPOINT, HF_TOKEN and HF_HOME set as a user sets them, run in this process (`command`)."""
    def pushed(hub, model_dir, stage_dir, *flags, token=TOKEN):
        seen_from_this_process(hub.url, monkeypatch, stage_dir.parent / "hf_home", token)
        return command(push_to_hub.main, ["--model_dir", str(model_dir), "--stage_dir", str(stage_dir), *flags])
    return pushed


@pytest.mark.slow
def test_upload_sends_exactly_the_staged_files_through_lfs(tiny_model, tmp_path, run_push):
    with HubDouble(TOKEN) as hub:
        out = run_push(hub, tiny_model, tmp_path / "stage", "--repo_id", "tester/gpt2-small-ja-test",
                       "--revision_tag", "20220720.0.1", "--private")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "INFO push_to_hub:" in out.stderr and "HTTP Request" not in out.stderr  # no line per request
        repo = hub.repos["tester/gpt2-small-ja-test"]
        staged = staged_files(tmp_path / "stage")
        assert set(staged) == EXPECTED_FILES | set(tensorboard_files(staged))
        assert repo["files"] == staged  # byte for byte, nothing else
        assert repo["private"] is True and len(repo["commits"]) == 1
        assert repo["tags"] == {"20220720.0.1": repo["commits"][0]}
        assert repo["messages"][0].startswith("Upload GPT-2 small Japanese (validation loss")
        weights_oid = hashlib.sha256(staged["model.safetensors"]).hexdigest()
        assert hub.lfs[weights_oid] == staged["model.safetensors"]
        assert ("PUT", f"/lfs-upload/{weights_oid}") in [(m, p) for m, p, _ in hub.requests]
        assert any(p == "/api/validate-yaml" for _, p, _ in hub.requests)
        token = TOKEN.encode()
        assert not any(token in content for content in repo["files"].values())
        assert not any(token in body for _, _, body in hub.requests)
        assert TOKEN not in out.stdout + out.stderr
        assert not any(TOKEN.encode() in p.read_bytes() for p in (tmp_path / "stage").rglob("*") if p.is_file())


@pytest.mark.slow
def test_the_cards_snippet_runs_as_copied_in_a_fresh_process(tiny_model, tmp_path, run_push):
    with HubDouble(TOKEN) as hub:
        assert run_push(hub, tiny_model, tmp_path / "stage", "--repo_id", "tester/m").returncode == 0
        card = hub.repos["tester/m"]["files"]["README.md"].decode()
        how_to_use = card.split("## How to use", 1)[1].split("\n## ", 1)[0]
        install = re.search(r"```bash\n(.+?)\n```", how_to_use, re.S).group(1)
        snippet = re.search(r"```python\n(.+?)\n```", how_to_use, re.S).group(1)
        assert install == "pip install transformers torch sentencepiece"
        imported = {m.group(1) for m in re.finditer(r"^(?:from|import) (\w+)", snippet, re.M)}
        assert imported <= set(install.split()[2:])  # everything the snippet imports, the install line brings
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN, HF_HOME=str(tmp_path / "visitor"),
                   HF_HUB_DISABLE_TELEMETRY="1")
        visitor = subprocess.run([sys.executable, "-c", snippet], env=env, cwd=tmp_path, capture_output=True,
                                 text=True)
    assert visitor.returncode == 0, visitor.stderr[-3000:]
    assert visitor.stdout.startswith(PROMPT) and len(visitor.stdout.strip()) > len(PROMPT)


@pytest.mark.slow
def test_default_repo_id_comes_from_the_logged_in_user(tiny_model, tmp_path, run_push):
    with HubDouble(TOKEN, user="someone") as hub:
        out = run_push(hub, tiny_model, tmp_path / "stage")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "someone/gpt2-small-ja" in out.stderr and list(hub.repos) == ["someone/gpt2-small-ja"]
        assert 'model="someone/gpt2-small-ja"' in hub.repos["someone/gpt2-small-ja"]["files"]["README.md"].decode()


@pytest.mark.slow
def test_a_failed_commit_says_so_and_a_rerun_finishes(tiny_model, tmp_path, run_push):
    with HubDouble(TOKEN) as hub:
        hub.fail_commits = True
        out = run_push(hub, tiny_model, tmp_path / "stage", "--repo_id", "tester/m")
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert "error: The Hub answered HTTP 500 for tester/m" in out.stderr and "rerun" in out.stderr
        assert hub.repos["tester/m"]["files"] == {}
        hub.fail_commits = False
        out = run_push(hub, tiny_model, tmp_path / "stage", "--repo_id", "tester/m")
        assert out.returncode == 0, out.stdout + out.stderr
        assert set(hub.repos["tester/m"]["files"]) == set(staged_files(tmp_path / "stage"))


@pytest.mark.slow
def test_a_failed_large_file_transfer_says_so_and_a_rerun_finishes(tiny_model, tmp_path, run_push, monkeypatch):
    import huggingface_hub.utils._http
    monkeypatch.setattr(huggingface_hub.utils._http.time, "sleep", lambda seconds: None)  # its retries, at once
    with HubDouble(TOKEN) as hub:
        hub.fail_lfs = True  # the weights' transfer fails (after huggingface_hub's own retries)
        out = run_push(hub, tiny_model, tmp_path / "stage", "--repo_id", "tester/m")
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
        error = [line for line in out.stderr.splitlines() if line.startswith("error:")]
        assert len(error) == 1 and "failed while receiving" in error[0] and "rerun the same command" in error[0]
        assert hub.repos["tester/m"]["files"] == {}
        hub.fail_lfs = False
        out = run_push(hub, tiny_model, tmp_path / "stage", "--repo_id", "tester/m")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "model.safetensors" in hub.repos["tester/m"]["files"]


@pytest.mark.slow
def test_missing_or_rejected_token_fails_clearly(tiny_model, tmp_path, run_push):
    with HubDouble(TOKEN) as hub:
        out = run_push(hub, tiny_model, tmp_path / "stage", "--repo_id", "tester/m", token=None)
        assert out.returncode == 1 and "No Hugging Face token" in out.stderr and "Traceback" not in out.stderr
        out = run_push(hub, tiny_model, tmp_path / "stage", "--repo_id", "tester/m", token="hf_wrong")
        assert out.returncode == 1 and "refused the token (HTTP 401)" in out.stderr
        assert "hf_wrong" not in out.stderr + out.stdout
        assert hub.repos == {}


@pytest.mark.slow
def test_unreachable_hub_fails_clearly(tiny_model, tmp_path, run_push):
    with HubDouble(TOKEN) as hub:
        url = hub.url
    # the server is gone: nothing listens on that port any more
    hub.url = url
    out = run_push(hub, tiny_model, tmp_path / "stage", "--repo_id", "tester/m")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "Could not reach" in out.stderr and "rerun" in out.stderr


# --- never losing a user's work, never publishing a wrong model --------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("where", ["the run folder", "the model folder"])
def test_a_stage_dir_holding_anything_else_is_refused_and_kept(tiny_model, tmp_path, where):
    run = tmp_path / "run"
    shutil.copytree(tiny_model, run / "model")
    (run / "data").mkdir()
    (run / "data" / "dataset_dict.json").write_text("keep me")
    stage_dir = run if where == "the run folder" else run / "model"
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    with pytest.raises(UserError, match="--stage_dir .* holds files this step did not write"):
        push_to_hub.main(["--model_dir", str(run / "model"), "--dry_run", "--stage_dir", str(stage_dir)])
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


@pytest.mark.slow
def test_an_existing_tag_is_refused_before_any_upload_unless_moved_or_already_there(tiny_model, tmp_path, run_push):
    with HubDouble(TOKEN) as hub:
        out = run_push(hub, tiny_model, tmp_path / "stage", "--repo_id", "tester/m", "--revision_tag", "v1")
        assert out.returncode == 0, out.stderr
        repo = hub.repos["tester/m"]
        first = repo["commits"][0]
        out = run_push(hub, tiny_model, tmp_path / "stage", "--repo_id", "tester/m", "--revision_tag", "v1")
        assert out.returncode == 0, out.stderr  # the same push again: it is done
        assert "The tag v1 of tester/m already holds exactly" in out.stderr and repo["commits"] == [first]
        out = run_push(hub, tiny_model, tmp_path / "stage", "--repo_id", "tester/m", "--revision_tag", "v1",
                       "--example_seed", "7")  # another card
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert f"The tag v1 of tester/m already points at commit {first[:12]}, whose files differ from these " \
               "(README.md); pass --move_tag" in out.stderr
        assert repo["commits"] == [first] and repo["tags"] == {"v1": first}  # nothing uploaded, tag untouched
        out = run_push(hub, tiny_model, tmp_path / "stage", "--repo_id", "tester/m", "--revision_tag", "v1",
                       "--example_seed", "7", "--move_tag", "--commit_message", "a second upload")
        assert out.returncode == 0, out.stderr
        assert len(repo["commits"]) == 2 and repo["tags"] == {"v1": repo["commits"][1]}
        assert "tag v1 moved to it" in out.stderr


@pytest.mark.parametrize("repo_id", ["no spaces/allowed here", "a/b/c", "user/two..dots"])
def test_an_invalid_repo_id_is_refused_even_in_a_dry_run(tmp_path, repo_id):
    with pytest.raises(UserError, match=f"^--repo_id {re.escape(repr(repo_id))} is not a Hub repo id"):
        push_to_hub.main(["--repo_id", repo_id, "--dry_run", "--model_dir", str(tmp_path / "model")])


# --- the live demo, the Training metrics tab, the repo as the staging's mirror ---------------------

@pytest.mark.slow
def test_a_space_is_created_that_runs_the_model_and_the_two_link_each_other(tiny_model, tmp_path, run_push):
    with HubDouble(TOKEN) as hub:
        out = run_push(hub, tiny_model, tmp_path / "stage", "--repo_id", "tester/m", "--space_id", "tester/m-demo",
                       "--space_stage_dir", str(tmp_path / "space"))
        assert out.returncode == 0, out.stdout + out.stderr
        space = hub.spaces["tester/m-demo"]
        assert space["sdk"] == "gradio" and space["hardware"] is None  # the Hub's default, free
        assert set(space["files"]) == {"app.py", "requirements.txt", "README.md"}
        assert space["files"]["app.py"] == (REPO / "space" / "app.py").read_bytes()
        space_card = SpaceCard(space["files"]["README.md"].decode()).data.to_dict()
        assert space_card["models"] == ["tester/m"] and space_card["sdk"] == "gradio"
        assert space_card["app_file"] == "app.py" and space_card["license"] == "cc-by-sa-3.0"
        from app import model_from_space_card
        assert model_from_space_card(tmp_path / "space" / "README.md") == "tester/m"  # what the app will run
        model_card = hub.repos["tester/m"]["files"]["README.md"].decode()
        assert "(https://huggingface.co/spaces/tester/m-demo)" in model_card
        assert tensorboard_files(hub.repos["tester/m"]["files"])


def test_the_space_app_without_a_card_naming_a_model_asks_for_one(monkeypatch, capsys):
    from app import main, model_from_space_card
    assert model_from_space_card(REPO / "space" / "README.md") is None  # the body alone names no model
    monkeypatch.delenv("MODEL_ID", raising=False)
    with pytest.raises(SystemExit) as ended:  # `python space/app.py`, in this process
        main([])
    assert ended.value.code == 2 and "no model: pass --model" in capsys.readouterr().err


@pytest.mark.slow
def test_a_file_dropped_from_the_staging_leaves_the_repo(tiny_model, tmp_path, run_push):
    run = tmp_path / "run"
    shutil.copytree(tiny_model, run / "model")
    shutil.copytree(tiny_model.parent / "logs", run / "logs")
    with HubDouble(TOKEN) as hub:
        assert run_push(hub, run / "model", tmp_path / "stage", "--repo_id", "tester/m").returncode == 0
        repo = hub.repos["tester/m"]
        logs = tensorboard_files(repo["files"])
        assert logs
        shutil.rmtree(run / "logs")
        out = run_push(hub, run / "model", tmp_path / "stage", "--repo_id", "tester/m")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "No TensorBoard logs" in out.stderr
        assert not tensorboard_files(repo["files"]) and set(repo["files"]) == EXPECTED_FILES
        assert len(repo["commits"]) == 2


@pytest.mark.parametrize("flags, message", [
    (["--space_id", "not a space"], "--space_id 'not a space' is not a Hub repo id"),
    (["--space_id", "nouser"], "--space_id 'nouser' is not a Hub repo id such as USER/NAME: it names no user"),
    (["--space_hardware", "cpu-basic"], "--space_hardware needs --space_id"),
    (["--space_id", "tester/d", "--space_hardware", "h100-pony"], "--space_hardware 'h100-pony' is not Space hard"),
    (["--dataset_repo_id", "tester/two..dots"], "--dataset_repo_id 'tester/two..dots' is not a Hub repo id"),
    (["--dataset_repo_id", "jawiki"], "--dataset_repo_id 'jawiki' is not a Hub repo id such as USER/NAME: it names"),
    (["--data_dir", "runs/demo/data"], "--data_dir needs --dataset_repo_id"),
    (["--space_id", "tester/d", "--stage_dir", "stage", "--space_stage_dir", "./stage"],
     "--stage_dir stage and --space_stage_dir stage overlap"),
    (["--dataset_repo_id", "tester/d", "--stage_dir", "stage", "--dataset_stage_dir", "stage/dataset"],
     "--stage_dir stage and --dataset_stage_dir stage/dataset overlap"),
])
def test_bad_space_and_dataset_flags_are_refused_before_anything_is_staged(tmp_path, flags, message):
    with pytest.raises(UserError, match=re.escape(message)):
        push_to_hub.main(["--dry_run", "--model_dir", str(tmp_path / "model"), *flags])
    assert not any(tmp_path.iterdir())


# --- a card the Hub can read fully -------------------------------------------------------------------

@pytest.mark.slow
def test_the_card_names_its_dataset_source_version_demo_and_code(tiny_model, tmp_path):
    push_to_hub.main(["--model_dir", str(tiny_model), "--repo_id", "tester/m", "--dry_run", "--stage_dir",
                      str(tmp_path / "stage"), "--space_id", "tester/m-demo", "--space_stage_dir",
                      str(tmp_path / "space"), "--revision_tag", "20220720.1.0",
                      "--code_url", "https://github.com/tester/gpt2-small-ja"])
    card = ModelCard.load(tmp_path / "stage" / "README.md")
    results = card.data.to_dict()["model-index"][0]["results"]
    assert {(r["dataset"]["split"], r["dataset"]["args"]["language"]) for r in results} == {
        ("validation", "ja"), ("test", "ja")}
    assert all(r["source"]["url"] == "https://github.com/tester/gpt2-small-ja" for r in results)
    assert "[gpt2-small-ja training code](https://github.com/tester/gpt2-small-ja)" in card.text
    assert "## Versions" in card.text and 'revision="20220720.1.0")' in card.text
    assert "[tester/m-demo](https://huggingface.co/spaces/tester/m-demo)" in card.text
    plain = ModelCard.load(tmp_path / "stage" / "README.md")  # a second look: the table rows the Hub shows
    assert "| hardware |" in plain.text and "| training time |" in plain.text


@pytest.mark.slow
def test_lm_eval_results_enter_the_model_index_and_other_models_only_the_comparison_table(
        tiny_model, japanese_results, other_model_results, tmp_path):
    from huggingface_hub.repocard_data import model_index_to_eval_results
    push_to_hub.main(["--model_dir", str(tiny_model), "--repo_id", "tester/m", "--dry_run", "--stage_dir",
                      str(tmp_path / "stage"), "--eval_results", str(japanese_results),
                      "--compare_results", str(other_model_results)])
    card = ModelCard.load(tmp_path / "stage" / "README.md")
    name, entries = model_index_to_eval_results(card.data.to_dict()["model-index"])
    ours = json.loads(japanese_results.read_text())["results"]
    downstream = {entry.metric_args["task"]: entry.metric_value for entry in entries if entry.metric_args}
    assert name == "m" and downstream == {task: round(ours[task]["acc,none"], 4) for task in (
        "ja_leaderboard_jcommonsenseqa", "ja_leaderboard_jnli", "ja_leaderboard_xwinograd")}
    # besides them, only the run's own language-modelling figures: nothing of the other model
    assert {entry.task_type for entry in entries if not entry.metric_args} == {"text-generation"}
    assert "other-model" not in str(card.data.to_dict())
    table = card.text.split("## Japanese tasks (lm-eval)")[1].split("## Training curve")[0]
    assert "| **tester/m** (this model) |" in table and "other-model` (a local folder) |" in table
    assert "result files that the publisher of this model gave" in table


@pytest.mark.slow
def test_another_models_lm_eval_results_given_as_ours_are_refused_before_staging(
        tiny_model, other_model_results, tmp_path):
    with pytest.raises(UserError, match=r"--eval_results .* is of .*other-model, not of the model being published"):
        push_to_hub.main(["--model_dir", str(tiny_model), "--repo_id", "tester/m", "--dry_run", "--stage_dir",
                          str(tmp_path / "stage"), "--eval_results", str(other_model_results)])
    assert not (tmp_path / "stage").exists()


@pytest.mark.slow
def test_results_that_are_not_finite_are_never_published(tiny_model, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model, model_dir)
    results = json.loads((model_dir / "all_results.json").read_text())
    results["test_loss"] = float("nan")
    (model_dir / "all_results.json").write_text(json.dumps(results))
    with pytest.raises(UserError, match=r"not all finite numbers \(test loss nan\).*nothing was uploaded"):
        push_to_hub.main(["--model_dir", str(model_dir), "--dry_run", "--stage_dir", str(tmp_path / "stage")])
    assert not (tmp_path / "stage").exists()


@pytest.mark.slow
def test_a_card_the_hub_rejects_says_why_and_not_to_rerun(tiny_model, tmp_path, run_push):
    with HubDouble(TOKEN) as hub:
        hub.yaml_errors = ['"license" must be one of [apache-2.0, mit, ...]']
        out = run_push(hub, tiny_model, tmp_path / "stage", "--repo_id", "tester/m")
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert "The Hub rejected the card's metadata for tester/m" in out.stderr
        assert '"license" must be one of' in out.stderr and "rerun" not in out.stderr
        assert hub.repos["tester/m"]["files"] == {}


@pytest.mark.parametrize("code_url", ["github.com/tester/x", "ftp://example.org/x", "https://"])
def test_a_code_url_that_is_no_web_address_is_refused(tmp_path, code_url):
    with pytest.raises(UserError, match="--code_url .* is not a web address"):
        push_to_hub.main(["--dry_run", "--model_dir", str(tmp_path / "model"), "--code_url", code_url])


# --- the prepared data on the Hub ------------------------------------------------------------------

def load_from_hub(hub, code, home):
    """What `code` prints, run in a fresh process that reads the Hub double, as anyone reads the Hub."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1",
               PYTHONPATH=str(REPO / "metrics" / "lm_eval_tasks"))
    out = subprocess.run([sys.executable, "-c", f"import json, datasets, jawiki; print(json.dumps({code}))"],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.slow
def test_the_prepared_splits_are_published_as_the_dataset_the_model_card_names(tiny_model, excerpt_data, tmp_path,
                                                                               run_push):
    import datasets
    with HubDouble(TOKEN) as hub:
        out = run_push(hub, tiny_model, tmp_path / "stage", "--repo_id", "tester/m", "--dataset_repo_id",
                       "tester/jawiki", "--data_dir", str(excerpt_data), "--dataset_stage_dir", str(tmp_path / "ds"))
        assert out.returncode == 0, out.stdout + out.stderr
        files = hub.datasets["tester/jawiki"]["files"]
        assert set(files) == {"README.md"} | {f"data/{split}-00000-of-00001.parquet"
                                              for split in ("train", "validation", "test")}
        card = DatasetCard(files["README.md"].decode())
        data = card.data.to_dict()
        assert data["license"] == "cc-by-sa-3.0" and data["language"] == ["ja"]
        local = datasets.load_from_disk(str(excerpt_data))
        # datasets added its entries to our card's YAML, and kept our text
        assert {s["name"]: s["num_examples"] for s in data["dataset_info"]["splits"]} == {
            name: len(split) for name, split in local.items()}
        assert {c["split"] for c in data["configs"][0]["data_files"]} == {"train", "validation", "test"}
        record = json.loads((excerpt_data / "preparation.json").read_text())
        assert f"dump of {record['dump_date']}" in card.text and "CC BY-SA 3.0" in card.text
        assert f"| test | {record['splits']['test']:,} | {record['characters']['test']:,} |" in card.text
        assert f"Of {record['pages_read']:,} pages read" in card.text and "headings" in card.text
        # anyone can re-score the exact test split: with datasets, and with the lm-eval task, which reads
        # only the scored splits
        assert load_from_hub(hub, "datasets.load_dataset('tester/jawiki', split='test')['text'][:]",
                             tmp_path / "reader") == local["test"]["text"][:]
        before = len(hub.requests)
        scored = load_from_hub(hub, "{k: v['text'][:] for k, v in jawiki.prepared_splits('tester/jawiki').items()}",
                               tmp_path / "lm-eval")
        assert scored == {split: local[split]["text"][:] for split in ("validation", "test")}
        assert not [path for _, path, _ in hub.requests[before:] if "/data/train-" in path]
        model_card = ModelCard(hub.repos["tester/m"]["files"]["README.md"].decode())
        assert model_card.data.to_dict()["datasets"] == ["tester/jawiki"]
        assert {r.dataset_type for r in model_card.data.eval_results} == {"tester/jawiki"}
        assert "(https://huggingface.co/datasets/tester/jawiki)" in model_card.text
        assert '"data_dir": "tester/jawiki"' in model_card.text
        # the dataset is committed before the model card that names it
        commits = [path for method, path, _ in hub.requests if method == "POST" and "/commit/" in path]
        assert commits[0].startswith("/api/datasets/tester/jawiki/") and commits[-1].startswith("/api/models/")


@pytest.mark.slow
def test_a_failed_dataset_upload_publishes_no_model_and_a_rerun_finishes(tiny_model, excerpt_data, tmp_path,
                                                                         run_push):
    flags = ["--repo_id", "tester/m", "--dataset_repo_id", "tester/jawiki", "--data_dir", str(excerpt_data),
             "--dataset_stage_dir", str(tmp_path / "ds")]
    with HubDouble(TOKEN) as hub:
        hub.fail_commits = True
        out = run_push(hub, tiny_model, tmp_path / "stage", *flags)
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert "The Hub answered HTTP 500 for tester/jawiki" in out.stderr and "rerun" in out.stderr
        assert hub.repos == {} and hub.datasets["tester/jawiki"]["files"] == {}
        hub.fail_commits = False
        out = run_push(hub, tiny_model, tmp_path / "stage", *flags)
        assert out.returncode == 0, out.stdout + out.stderr
        assert len(hub.datasets["tester/jawiki"]["files"]) == 4 and "README.md" in hub.repos["tester/m"]["files"]
        readme = DatasetCard(hub.datasets["tester/jawiki"]["files"]["README.md"].decode())
        assert readme.data.to_dict()["license"] == "cc-by-sa-3.0" and "dataset_info" in readme.data.to_dict()


@pytest.mark.slow
def test_a_rerun_after_a_failed_model_upload_does_not_upload_the_dataset_again(tiny_model, excerpt_data, tmp_path,
                                                                               run_push):
    flags = ["--repo_id", "tester/m", "--dataset_repo_id", "tester/jawiki", "--data_dir", str(excerpt_data),
             "--dataset_stage_dir", str(tmp_path / "ds")]
    with HubDouble(TOKEN) as hub:
        hub.fail_commits = {"models"}
        out = run_push(hub, tiny_model, tmp_path / "stage", *flags)
        assert out.returncode == 1 and "The Hub answered HTTP 500 for tester/m " in out.stderr
        dataset = hub.datasets["tester/jawiki"]
        published, commits = dict(dataset["files"]), list(dataset["commits"])
        assert len(published) == 4 and hub.repos["tester/m"]["files"] == {}
        hub.fail_commits = False
        out = run_push(hub, tiny_model, tmp_path / "stage", *flags)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "tester/jawiki holds these splits and this card already: not uploaded again" in out.stderr
        assert dataset["commits"] == commits and dataset["files"] == published
        assert "README.md" in hub.repos["tester/m"]["files"]
        # a changed card is uploaded again (here: the model's card links the code now, and so does the dataset's)
        out = run_push(hub, tiny_model, tmp_path / "stage", *flags, "--code_url", "https://example.org/code")
        assert out.returncode == 0, out.stdout + out.stderr
        assert len(dataset["commits"]) == len(commits) + 2 and b"https://example.org/code" in dataset["files"]["README.md"]


@pytest.mark.slow
def test_only_the_articles_the_model_was_trained_on_are_published(tiny_model, excerpt_data, tmp_path):
    import datasets
    edited = tmp_path / "edited"
    splits = datasets.load_from_disk(str(excerpt_data))
    splits["test"] = splits["test"].select(range(len(splits["test"]) - 1))  # an article gone since training
    splits.save_to_disk(str(edited))
    shutil.copy(excerpt_data / "preparation.json", edited)  # its record unchanged: only the content tells
    for data_dir, message in ((edited, "holds other articles than .* was trained on"),
                              (tmp_path / "none", "holds no prepared data")):
        with pytest.raises(UserError, match=message):
            push_to_hub.main(["--model_dir", str(tiny_model), "--dry_run", "--stage_dir", str(tmp_path / "stage"),
                              "--dataset_repo_id", "tester/jawiki", "--data_dir", str(data_dir),
                              "--dataset_stage_dir", str(tmp_path / "ds")])
        assert not (tmp_path / "ds").exists()


# --- a model continued on the user's own text ------------------------------------------------------

@pytest.fixture(scope="module")
def continued_model(tiny_model, tmp_path_factory):
    """The tests' model folder as if train.py --model_name_or_path tester/base had continued that model on the
    user's files (their counts are the excerpt's: only run_info.json says otherwise)."""
    model_dir = tmp_path_factory.mktemp("continued") / "model"
    shutil.copytree(tiny_model, model_dir)
    info = json.loads((model_dir / "run_info.json").read_text())
    info["preparation"].update(
        source=dataclasses.asdict(files_record(["/home/me/novels.jsonl"], "text")), dump_date=None,
        sources=["/home/me/novels.jsonl"], dropped={"empty": 1, "duplicate": 0},
        identity={k: v for k, v in info["preparation"]["identity"].items() if k not in ("cleaner", "dumps")})
    info.update(base_model={"name": "tester/base", "revision": "a" * 40, "fingerprint": "c" * 64,
                            "license": "cc-by-sa-3.0"}, tokenizer_report=None)
    (model_dir / "run_info.json").write_text(json.dumps(info))
    return model_dir


@pytest.mark.slow
def test_a_continued_model_of_own_text_is_staged_under_the_license_given_with_its_space_and_dataset(
        continued_model, excerpt_data, tmp_path):
    push_to_hub.main(["--model_dir", str(continued_model), "--repo_id", "tester/m", "--dry_run", "--stage_dir",
                      str(tmp_path / "stage"), "--license", "cc-by-sa-4.0", "--space_id", "tester/m-demo",
                      "--space_stage_dir", str(tmp_path / "space"), "--dataset_repo_id", "tester/ds",
                      "--data_dir", str(excerpt_data), "--dataset_stage_dir", str(tmp_path / "ds")])
    card = ModelCard.load(tmp_path / "stage" / "README.md")
    data = card.data.to_dict()
    assert data["base_model"] == "tester/base" and data["base_model_relation"] == "finetune"
    assert data["license"] == "cc-by-sa-4.0" and data["datasets"] == ["tester/ds"]
    assert {(r.dataset_type, r.dataset_name) for r in card.data.eval_results} == {("tester/ds", "novels.jsonl")}
    assert "continued from\n[tester/base](https://huggingface.co/tester/base)" in card.text
    assert "Wikipedia" not in card.text and "/home/" not in card.text
    assert SpaceCard.load(tmp_path / "space" / "README.md").data.license == "cc-by-sa-4.0"
    dataset = DatasetCard.load(tmp_path / "ds" / "README.md")
    assert dataset.data.license == "cc-by-sa-4.0" and "Wikipedia" not in dataset.text
    assert set(staged_files(tmp_path / "stage")) == EXPECTED_FILES  # no logs beside this copy of the model


@pytest.mark.slow
@pytest.mark.parametrize("flags, message", [
    ([], "--license is required for a model trained on your own text: give the Hub license id its terms allow"),
    (["--license", "mit"], "--license mit is refused: the base model tester/base is under CC BY-SA 3.0, whose "
                           "ShareAlike terms ask that what is made from it be under cc-by-sa-3.0 or cc-by-sa-4.0."),
])
def test_a_continued_model_without_a_license_its_data_and_base_allow_is_refused_before_staging(
        continued_model, tmp_path, flags, message):
    with pytest.raises(UserError, match=re.escape(message)):
        push_to_hub.main(["--model_dir", str(continued_model), "--dry_run", "--stage_dir", str(tmp_path / "stage"),
                          *flags])
    assert not (tmp_path / "stage").exists()


@pytest.mark.parametrize("license", ["CC BY-SA 4.0", "MIT", "cc_by_sa", "foo-bar", "cc-by-sa-5.0"])
def test_a_license_that_is_no_hub_license_id_is_refused(tmp_path, license):
    with pytest.raises(UserError, match=f"^--license {re.escape(repr(license))} is not a Hub license id"):
        push_to_hub.main(["--dry_run", "--model_dir", str(tmp_path / "model"), "--license", license])


def test_help_gives_the_rule_of_the_license(command):
    out = command(push_to_hub.main, ["--help"])
    assert out.returncode == 0 and "--license" in out.stdout
    assert "Required for a model trained on your own text" in " ".join(out.stdout.split())
