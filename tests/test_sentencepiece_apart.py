"""gpt2ja.sentencepiece_apart: SentencePiece's trainer in a process of its own."""

import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import sentencepiece as spm

from gpt2ja import sentencepiece_apart
from processes import children_of

OPTIONS = dict(model_type="unigram", vocab_size=40, character_coverage=1.0, minloglevel=2, input_sentence_size=0)
SENTENCES = [f"日本語の文の{i}番目である。東京と大阪と京都。" for i in range(300)]


def test_the_same_sentences_options_and_seed_give_the_same_model_wherever_it_is_written(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        sentencepiece_apart.train(iter(SENTENCES), tmp_path / name / "spiece.model", OPTIONS, seed=1)
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["spiece.model"]  # sentences and log went
    assert (tmp_path / "a" / "spiece.model").read_bytes() == (tmp_path / "b" / "spiece.model").read_bytes()
    processor = spm.SentencePieceProcessor(model_file=str(tmp_path / "a" / "spiece.model"))
    assert processor.get_piece_size() == 40 and processor.decode(processor.encode("東京と大阪")) == "東京と大阪"


def test_the_trainers_own_error_comes_back_as_its_last_words(tmp_path):
    with pytest.raises(RuntimeError, match=r"Vocabulary size is too high|vocab_size|value <= \d+"):
        sentencepiece_apart.train(iter(SENTENCES[:3]), tmp_path / "spiece.model", {**OPTIONS, "vocab_size": 5000},
                                  seed=1)
    assert list(tmp_path.iterdir()) == []


def test_progress_is_reported_from_the_trainers_own_log(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="gpt2ja.sentencepiece_apart"):
        sentencepiece_apart.train(iter(SENTENCES * 20), tmp_path / "spiece.model", OPTIONS, seed=1, progress_every=0.01)
    assert "SentencePiece, 0 min in:" in caplog.text
    log = "Loaded all 10 sentences\nInitialized 229 seed pieces\nEM sub_iter=0 size=223 obj=46\nEM sub_iter=1 size=164"
    assert sentencepiece_apart.progress(log, 40) == "pruning by EM: 164 pieces, down to 40"
    assert sentencepiece_apart.progress("Loaded all 10 sentences", 40) == "sentences loaded"


def kill_the_trainer_with(signal_number):
    """Send signal_number to this process's SentencePiece child as soon as it runs."""
    while True:
        for pid in children_of(os.getpid()):
            try:
                if b"sentencepiece_apart" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal_number)
                    return
            except OSError:
                continue
        time.sleep(0.005)


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_a_trainer_killed_by_a_signal_is_named_by_it(tmp_path, signal_name):
    killer = threading.Thread(target=kill_the_trainer_with, args=(signal.Signals[signal_name],), daemon=True)
    killer.start()
    with pytest.raises(ChildProcessError, match=f"killed by signal {signal_name}"):
        sentencepiece_apart.train(iter(SENTENCES * 20), tmp_path / "spiece.model", OPTIONS, seed=1)
    killer.join(5)
    assert list(tmp_path.iterdir()) == []
