import subprocess

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


@pytest.fixture(scope="session")
def excerpt_data(tmp_path_factory):
    """The 262-page excerpt prepared once for the session, with 5% validation and 1% test (2 articles: every
    training run of the tests scores the whole test split at its end)."""
    import prepare_data
    out = tmp_path_factory.mktemp("excerpt") / "data"
    prepare_data.main(["--dump", str(shared_file(EXCERPT)), "--output_dir", str(out),
                       "--validation_percent", "5", "--test_percent", "1", "--num_proc", "1"])
    return out


@pytest.fixture(scope="session")
def excerpt_tokenizer(excerpt_data):
    """A 8,000-piece tokenizer trained on the excerpt (all it supports is about 9,000)."""
    import tokenizer
    out = excerpt_data.parent / "tokenizer"
    tokenizer.main(["--data_dir", str(excerpt_data), "--output_dir", str(out), "--vocab_size", "8000"])
    return out


@pytest.fixture(scope="session")
def tiny_model(excerpt_data, excerpt_tokenizer):
    """A tiny GPT-2 trained for 30 steps on the excerpt: a complete model/ folder from train.py."""
    import train
    return train.main(["configs/tiny.yaml", "--data_dir", str(excerpt_data), "--tokenizer_dir",
                       str(excerpt_tokenizer), "--output_dir", str(excerpt_data.parent / "tiny"),
                       "--max_steps", "30", "--eval_steps", "10", "--logging_steps", "5", "--save_steps", "30"])


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
