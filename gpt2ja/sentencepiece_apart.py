"""SentencePiece's trainer in a process of its own, so that Ctrl-C stops it at once.

Its C++ trainer does not return to the interpreter until it is done (up to hours at the reference's size),
so in the calling process a Ctrl-C would wait for the end. `train` writes the sampled sentences to a file,
one a line, and runs `python -m gpt2ja.sentencepiece_apart` on it: a fresh interpreter that imports only
sentencepiece, reads the sentences back as an iterator (so that no file path is recorded in the model, which
stays byte-identical for the same sentences, options and seed), and writes the model. The child leaves
Ctrl-C to its parent, which kills it, and dies with its parent.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def train(sentences, model_file, options, seed):
    """Train on `sentences` (an iterable of one-line strings) into model_file with SentencePieceTrainer's
    `options`. Raises RuntimeError with the trainer's last words where it fails, ChildProcessError where the
    child is killed (by the kernel's out-of-memory killer, say); a Ctrl-C kills the child and goes on up."""
    model_file = Path(model_file)
    sentences_file = model_file.with_name(model_file.name + ".sentences.txt")
    with open(sentences_file, "w", encoding="utf-8") as out:
        for sentence in sentences:
            out.write(sentence + "\n")
    job = {"sentences": str(sentences_file), "model": str(model_file), "options": options, "seed": seed,
           "parent": os.getpid()}
    child = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        _, errors = child.communicate(json.dumps(job))
    except BaseException:
        child.kill()
        child.wait()
        raise
    finally:
        sentences_file.unlink(missing_ok=True)
    if child.returncode < 0:
        raise ChildProcessError(f"killed by signal {signal.Signals(-child.returncode).name}")
    if child.returncode:
        raise RuntimeError(errors.strip().splitlines()[-1] if errors.strip() else f"exit {child.returncode}")


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
