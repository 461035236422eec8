"""SentencePiece's trainer in a process of its own, so that Ctrl-C stops it at once.

Its C++ trainer does not return to the interpreter until it is done (up to hours at the reference's size),
so in the calling process a Ctrl-C would wait for the end. `train` writes the sampled sentences to a file,
one a line, and runs `python -m gpt2ja.sentencepiece_apart` on it: a fresh interpreter that imports only
sentencepiece, reads the sentences back as an iterator (so that no file path is recorded in the model, which
stays byte-identical for the same sentences, options and seed), and writes the model. The child leaves
Ctrl-C to its parent, which kills it, and dies with its parent. Its own log goes to a file beside the model,
from which the parent reports the stage it is at every minute (the reference's 10M sentences take hours).
"""

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Measured for issue 34, the same model either way: two malloc arenas instead of one a thread hold 4% less memory,
# and the trainer's OpenMP threads that sleep instead of spinning while they wait spent a fifth less CPU on a
# busy 2-core machine (the excerpt, 2 threads: 21.0-22.4 CPU-s against 26.8-27.4). A value the user set wins.
CHILD_ENVIRONMENT = {"MALLOC_ARENA_MAX": "2", "OMP_WAIT_POLICY": "passive"}


def train(sentences, model_file, options, seed, progress_every=60):
    """Train on `sentences` (an iterable of one-line strings) into model_file with SentencePieceTrainer's
    `options`. Raises RuntimeError with the trainer's last words where it fails, ChildProcessError where the
    child is killed (by the kernel's out-of-memory killer, say); a Ctrl-C kills the child and goes on up."""
    model_file = Path(model_file)
    sentences_file = model_file.with_name(model_file.name + ".sentences.txt")
    with open(sentences_file, "w", encoding="utf-8") as out:
        for sentence in sentences:
            out.write(sentence + "\n")
    log_file = model_file.with_name(model_file.name + ".log")
    job = {"sentences": str(sentences_file), "model": str(model_file), "options": {**options, "minloglevel": 0},
           "seed": seed, "parent": os.getpid()}
    start = time.monotonic()
    with open(log_file, "w") as log:
        child = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=log, stderr=log,
                                 text=True, env={**CHILD_ENVIRONMENT, **os.environ})
    try:
        # a child that ended before reading its job breaks the pipe: its exit status and log say why, below
        with contextlib.suppress(BrokenPipeError):
            child.stdin.write(json.dumps(job))
        with contextlib.suppress(BrokenPipeError):
            child.stdin.close()
        while True:
            try:
                child.wait(timeout=progress_every)
                break
            except subprocess.TimeoutExpired:
                logger.info("SentencePiece, %.0f min in: %s", (time.monotonic() - start) / 60,
                            progress(log_file.read_text(errors="replace"), options.get("vocab_size")))
    except BaseException:
        child.kill()
        child.wait()
        raise
    finally:
        sentences_file.unlink(missing_ok=True)
    last_words = log_file.read_text(errors="replace").strip().splitlines()
    log_file.unlink(missing_ok=True)
    if child.returncode < 0:
        raise ChildProcessError(f"killed by signal {signal.Signals(-child.returncode).name}")
    if child.returncode:
        raise RuntimeError(last_words[-1] if last_words else f"exit {child.returncode}")


def progress(log, vocab_size):
    """Where SentencePiece's trainer is, from its own log: loading, seeding, or pruning the pieces by EM
    down to vocab_size (the longest stage)."""
    sizes = re.findall(r"EM sub_iter=\d+ size=(\d+)", log)
    if sizes:
        return f"pruning by EM: {int(sizes[-1]):,} pieces, down to {vocab_size:,}"
    for stage, words in (("Initialized", "seed pieces found; EM next"), ("Extracting seed", "finding seed pieces"),
                         ("Normalizing", "normalizing the sentences"), ("Loaded all", "sentences loaded")):
        if stage in log:
            return words
    return "reading the sentences"


def _leave_interrupts_to(parent):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took hold
        sys.exit(1)


def _sentences(path):
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            yield line[:-1]


def main():
    job = json.loads(sys.stdin.read())
    _leave_interrupts_to(job["parent"])
    import io

    import sentencepiece as spm
    spm.set_random_generator_seed(job["seed"])
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=_sentences(job["sentences"]), model_writer=model,
                                   **job["options"])
    Path(job["model"]).write_bytes(model.getvalue())


if __name__ == "__main__":
    main()
