"""The README's demo path, end to end, on the 20-page excerpt with the tiniest settings."""

import json
import re
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

import demo
from gpt2ja.errors import UserError

pytestmark = pytest.mark.slow  # each test runs the whole chain, training included

EXPECTED_HUB_FILES = {"model.safetensors", "config.json", "generation_config.json", "spiece.model",
                      "tokenizer_config.json", "tokenizer.json", "README.md", "training_curve.png",
                      "runs"}  # the TensorBoard logs


def table_shape(line):
    """A Markdown table line with its figures taken out."""
    return re.sub(r"\d[\d,.]*", "N", line)


def test_demo_chain_produces_every_artifact_and_reuses_them(first20, tmp_path, capsys):
    run_dir = tmp_path / "demo"
    argv = ["--run_dir", str(run_dir), "--dump", str(first20), "--vocab_size", "3000", "--max_steps", "6"]
    first = demo.main(argv)

    data = json.loads((run_dir / "data" / "preparation.json").read_text())
    assert data["pages_read"] == 20 and data["articles"] == 12
    assert (run_dir / "tokenizer" / "spiece.model").is_file() and (run_dir / "tokenizer" / "tokenizer.json").is_file()
    assert list((run_dir / "checkpoints").glob("checkpoint-6"))
    assert list((run_dir / "logs").iterdir())
    model_dir = run_dir / "model"
    assert json.loads((model_dir / "tokenizer_config.json").read_text())["model_max_length"] == 128
    results = json.loads((model_dir / "all_results.json").read_text())
    assert results["train_loss"] > 0
    # 12 articles at 5% / 5%: one lands in test, none in validation, and the chain copes
    assert "test_bits_per_character" in results and "eval_loss" not in results
    assert {p.name for p in (run_dir / "hub").iterdir() if not p.name.startswith(".")} == EXPECTED_HUB_FILES
    assert ModelCard.load(run_dir / "hub" / "README.md").data.license == "cc-by-sa-3.0"
    assert len(first["samples"]) == 3 and all(s.startswith("近年の機械学習は") for s in first["samples"])
    summary = capsys.readouterr().out.split("=== demo summary ===")[1]
    assert f"Written to {run_dir}: data/, tokenizer/, token_cache/, checkpoints/, logs/ (TensorBoard), model/, hub/" \
           in summary
    assert (f"| test | {results['test_loss']:.3f} | {results['test_perplexity']:.1f} | "
            f"{results['test_bits_per_character']:.3f} |") in summary
    assert "| data | 12 articles of 20 pages: train 11, validation 0, test 1 |" in summary
    # shaped like the README's "it prints this": the same tables, rows and columns (no validation split here)
    printed = [table_shape(line) for line in summary.splitlines() if line.startswith("|")]
    readme = (Path(demo.__file__).parent / "README.md").read_text(encoding="utf-8")
    readme = readme.split("It prints this")[1].split("![")[0]
    shown = [table_shape(line) for line in readme.splitlines() if line.startswith("|") and "| validation |" not in line]
    assert [line.split("|")[:2] for line in printed] == [line.split("|")[:2] for line in shown]
    assert {line for line in printed if "tokenizer" not in line} == {line for line in shown if "tokenizer" not in line}
    assert "| tokenizer | N pieces, no validation text to count tokens per character on |" in printed

    stamp = (model_dir / "model.safetensors").stat().st_mtime_ns
    second = demo.main(argv)  # a rerun reuses data, tokenizer and model
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == stamp
    assert second["samples"] == first["samples"]

    # a run folder moved elsewhere, with a copy of its dump, is the same run: nothing is redone
    moved = tmp_path / "elsewhere"
    shutil.copytree(run_dir, moved / "demo")
    shutil.copy(first20, moved / first20.name)
    stamp = (moved / "demo" / "model" / "model.safetensors").stat().st_mtime_ns
    third = demo.main(["--run_dir", str(moved / "demo"), "--dump", str(moved / first20.name), *argv[4:]])
    assert (moved / "demo" / "model" / "model.safetensors").stat().st_mtime_ns == stamp
    assert third["samples"] == first["samples"]

    with pytest.raises(UserError, match="trained with other settings or data"):  # not a silent 4,000 of 8,000
        demo.main(argv[:4] + ["--vocab_size", "4000", *argv[6:]])


def test_without_the_excerpt_the_demo_streams_the_latest_dump(mirror, tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "EXCERPT", tmp_path / "absent.xml.bz2")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    run_dir = tmp_path / "demo"
    result = demo.main(["--run_dir", str(run_dir), "--mirror", mirror, "--max_articles", "10",
                        "--vocab_size", "3000", "--max_steps", "4"])
    data = json.loads((run_dir / "data" / "preparation.json").read_text())
    assert data["articles"] == 10 and data["sources"][0].startswith(mirror)
    assert data["sources"][0].endswith("/jawiki/latest/jawiki-latest-pages-articles-multistream.xml.bz2")
    assert data["dump_date"] == "20220720"  # what latest stood for, as the mirror's RSS file says
    assert (result["stage_dir"] / "README.md").is_file()


def test_the_help_names_no_path_of_this_machine_and_its_sentence_count_is_the_excerpts(excerpt, tmp_path, capsys):
    with pytest.raises(SystemExit):
        demo.parse(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert str(Path(demo.__file__).resolve().parent.parent) not in help_text and "../shared/data/ja" in help_text
    said = int(re.search(r"train split holds ([\d,]+) sentences of 5 characters", help_text)[1].replace(",", ""))
    import prepare_data
    import tokenizer
    from gpt2ja.splits import load_split
    prepare_data.main(["--dump", str(excerpt), "--output_dir", str(tmp_path / "data"), "--validation_percent", "5",
                       "--test_percent", "5"])  # as demo.py prepares it
    train = load_split(tmp_path / "data", "train")
    assert said == sum(1 for text in train["text"] for _ in tokenizer.sentences_of(text, min_chars=5))
