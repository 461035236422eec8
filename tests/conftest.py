import os
import subprocess
from pathlib import Path

import pytest

from gpt2ja.settings import EXCERPT, FIRST20


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


@pytest.fixture(scope="session")
def tiny_model(excerpt_data, excerpt_tokenizer, tmp_path_factory):
    """A tiny GPT-2 trained for 30 steps on the excerpt: a complete model/ folder from train.py."""
    import train

    def build(folder):
        return train.main(["configs/tiny.yaml", "--data_dir", str(excerpt_data), "--tokenizer_dir",
                           str(excerpt_tokenizer), "--output_dir", str(folder), "--max_steps", "30",
                           "--eval_steps", "10", "--logging_steps", "5", "--save_steps", "30"])
    return built_once(tmp_path_factory, "tiny", build)


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
