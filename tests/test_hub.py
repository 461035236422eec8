"""gpt2ja.hub: the Hub client as push_to_hub.py uses it, against the loopback Hub double."""

import pytest
from huggingface_hub import HfApi

from gpt2ja.errors import UserError
from gpt2ja.hub import StagingRecord, check_repo_id, check_tag, hub_errors, mirror_folder
from hub_double import HubDouble

TOKEN = "hf_HubModuleTestToken0123456789"


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)  # the double speaks no Xet
    with HubDouble(TOKEN) as double:
        yield double


def api(hub, token=TOKEN):
    return HfApi(endpoint=hub.url, token=token)


@pytest.mark.parametrize("repo_id, message", [
    ("no spaces/allowed here", "is not a Hub repo id such as USER/NAME"),
    ("user/two..dots", "is not a Hub repo id such as USER/NAME"),
    ("nouser", "is not a Hub repo id such as USER/NAME: it names no user or organization"),
])
def test_a_repo_id_is_user_slash_name(repo_id, message):
    with pytest.raises(ValueError, match=f"--repo_id '{repo_id}' {message}"):
        check_repo_id("--repo_id", repo_id)
    check_repo_id("--repo_id", "tester/gpt2-small-ja")
    check_repo_id("--repo_id", None)


def staged(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    StagingRecord(identity={"repo_id": "tester/m"}).save(folder)
    return folder


def test_the_repo_becomes_the_staged_folders_mirror(hub, tmp_path):
    folder = staged(tmp_path / "stage", {"README.md": "card", "weights.safetensors": "w", "runs/a/events": "e"})
    url, commit = mirror_folder(api(hub), folder, "tester/m", "model", "first", private=True)
    repo = hub.repos["tester/m"]
    assert repo["files"] == {"README.md": b"card", "weights.safetensors": b"w", "runs/a/events": b"e"}
    assert repo["private"] and repo["commits"] == [commit.oid] and str(url).endswith("tester/m")
    (folder / "runs" / "a" / "events").unlink()  # gone from the staging: gone from the repo, in one commit
    mirror_folder(api(hub), folder, "tester/m", "model", "second", private=True)
    assert set(repo["files"]) == {"README.md", "weights.safetensors"} and len(repo["commits"]) == 2


def test_hub_failures_are_one_sentence_that_says_whether_to_rerun(hub, tmp_path, monkeypatch):
    import huggingface_hub.utils._http
    monkeypatch.setattr(huggingface_hub.utils._http.time, "sleep", lambda seconds: None)  # its retries, at once
    folder = staged(tmp_path / "stage", {"README.md": "card"})
    with pytest.raises(UserError, match=r"refused the token \(HTTP 401\) for tester/m: run `hf auth login`"):
        mirror_folder(api(hub, "hf_wrong"), folder, "tester/m", "model", "x", private=False)
    with pytest.raises(UserError, match=r"refused to let this token write someone/m \(HTTP 403: .*namespace.*\): "
                                        "check the USER or organization part of the id"):
        mirror_folder(api(hub), folder, "someone/m", "model", "x", private=False)
    hub.fail_commits = True
    with pytest.raises(UserError, match=r"answered HTTP 500 for tester/m .*; rerun the same command"):
        mirror_folder(api(hub), folder, "tester/m", "model", "x", private=False)
    hub.fail_commits = False
    (folder / "model.safetensors").write_bytes(b"weights")  # a large file: the Hub's LFS transfer
    hub.fail_lfs = True
    with pytest.raises(UserError, match=r"The Hub failed while receiving model.safetensors for tester/m \(HTTP 500\); "
                                        "nothing was committed: rerun the same command"):
        mirror_folder(api(hub), folder, "tester/m", "model", "x", private=False)
    hub.fail_lfs = False
    assert "model.safetensors" not in hub.repos["tester/m"]["files"]
    hub.yaml_errors = ['"license" must be one of [...]']
    with pytest.raises(UserError, match=r"rejected the card's metadata for tester/m") as raised:
        with hub_errors(api(hub), "tester/m"):
            raise ValueError("Invalid metadata in README.md.\n- \"license\" must be one of [...]")
    assert "rerun" not in str(raised.value)
    gone = HubDouble(TOKEN)
    with gone:
        url = gone.url
    with pytest.raises(UserError, match=r"Could not reach .*; check the network and rerun the same command"):
        mirror_folder(HfApi(endpoint=url, token=TOKEN), folder, "tester/m", "model", "x", private=False)
    with pytest.raises(FileNotFoundError):  # a local file that went missing is no network failure
        with hub_errors(api(hub), "tester/m"):
            (folder / "gone.bin").read_bytes()
    with pytest.raises(UserError, match=r"Could not reach .*OSError: transfer reset"):  # the Xet layer's kind
        with hub_errors(api(hub), "tester/m"):
            raise OSError("transfer reset")


def test_a_tag_that_exists_is_refused_unless_moved_or_already_on_the_same_files(hub, tmp_path):
    client = api(hub)
    files = {"README.md": "card", "model.safetensors": "weights", "logs/a": "x"}
    folder = staged(tmp_path / "stage", files)
    assert check_tag(client, "tester/m", "v1", move=False, staged=folder) == "create"  # no repo yet
    _, commit = mirror_folder(client, folder, "tester/m", "model", "x", private=False)
    client.create_tag("tester/m", tag="v1", revision=commit.oid)
    newer = staged(tmp_path / "newer", {**files, "README.md": "a newer card"})
    mirror_folder(client, newer, "tester/m", "model", "y", private=False)  # main moves on; v1 stays
    assert check_tag(client, "tester/m", "v1", move=False, staged=folder) == "done"  # a rerun of the first push
    (folder / "logs" / "a").unlink()
    with pytest.raises(UserError, match=r"whose files differ from these \(logs/a\)"):  # one the Hub has, not here
        check_tag(client, "tester/m", "v1", move=False, staged=folder)
    for name, changed in (("card", {"README.md": "a newer card"}), ("weights", {"model.safetensors": "other"}),
                          ("extra", {"extra.txt": "more"})):
        other = staged(tmp_path / name, {**files, **changed})
        with pytest.raises(UserError, match=f"The tag v1 of tester/m already points at commit {commit.oid[:12]}, "
                                            rf"whose files differ from these \({next(iter(changed))}\); pass "
                                            "--move_tag"):
            check_tag(client, "tester/m", "v1", move=False, staged=other)
        assert check_tag(client, "tester/m", "v1", move=True, staged=other) == "move"
    assert check_tag(client, "tester/m", "v2", move=False, staged=folder) == "create"

def test_the_double_lists_files_by_the_ids_git_and_the_hub_give_them():
    from hub_double import git_blob_id
    assert git_blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # `git hash-object` of an empty file
    assert git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
