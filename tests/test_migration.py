"""The one migration rule: a run folder written by an earlier version (tests/fixtures/run_of_aed7588, made before
the run identity compared every setting and before preparation.json recorded its source) is still read, reused
and resumed by every step; a setting it did not record is read as that setting's default."""

import json
import shutil
from pathlib import Path

import pytest

import prepare_data
import push_to_hub
import tokenizer
import train
from gpt2ja.errors import UserError
from gpt2ja.rerun import differences, file_fingerprint, with_defaults
from gpt2ja.settings import FIRST20

FIXTURE = Path(__file__).parent / "fixtures" / "run_of_aed7588"
TRAIN = ["configs/tiny.yaml", "--n_embd", "16", "--n_head", "2", "--n_layer", "1", "--n_positions", "64",
         "--max_steps", "4", "--eval_steps", "2", "--save_steps", "2", "--logging_steps", "2",
         "--out_of_domain_text", ""]


def test_a_key_a_record_lacks_reads_as_its_default_and_differences_name_added_and_removed_keys():
    assert with_defaults({"recipe": {"seed": 1}}, {"recipe": {"seed": 0, "data_seed": None}}) == {
        "recipe": {"seed": 1, "data_seed": None}}
    assert differences({"seed": 1}, {"seed": 1, "data_seed": None}) == "data_seed added (None)"
    assert differences({"seed": 1, "old": 2}, {"seed": 1}) == "old removed (was 2)"
    assert differences({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}) == "a (c added (2))"


@pytest.fixture
def old_run(tmp_path):
    if not FIRST20.is_file():
        pytest.skip(f"{FIRST20} is absent: the shared jawiki excerpt lies beside the repository (../shared)")
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    return run


def steps(run, *train_flags):
    data = prepare_data.main(["--dump", str(FIRST20), "--output_dir", str(run / "data"), "--num_proc", "1",
                              "--validation_percent", "20", "--test_percent", "10"])
    report = tokenizer.main(["--data_dir", str(run / "data"), "--output_dir", str(run / "tokenizer"),
                             "--vocab_size", "2500"])
    model = train.main([*TRAIN, "--data_dir", str(run / "data"), "--tokenizer_dir", str(run / "tokenizer"),
                        "--output_dir", str(run), *train_flags])
    return data, report, model


@pytest.mark.slow
def test_every_step_reuses_what_the_earlier_version_wrote_and_the_card_reads_it(old_run, tmp_path):
    weights = file_fingerprint(old_run / "model" / "model.safetensors")
    data, report, model = steps(old_run, "--logging_steps", "1", "--dataloader_num_workers", "0")  # inert: reused
    assert data.source.title == "Japanese Wikipedia 20220720" and data.source.license == "cc-by-sa-3.0"
    assert report.sentences_trained_on == json.loads((FIXTURE / "tokenizer" / "tokenizer_report.json").read_text())[
        "sentences_trained_on"]
    assert file_fingerprint(Path(model) / "model.safetensors") == weights  # reused, not trained again
    stage, _ = push_to_hub.main(["--model_dir", str(model), "--dry_run", "--stage_dir", str(tmp_path / "hub")])
    card = (Path(stage) / "README.md").read_text()
    assert "Japanese Wikipedia, the `pages-articles` dump of 20220720" in card and "license: cc-by-sa-3.0" in card


@pytest.mark.slow
def test_a_checkpoint_of_the_earlier_version_resumes_and_a_weight_changing_setting_is_another_run(old_run,
                                                                                                 monkeypatch):
    shutil.rmtree(old_run / "model")
    shutil.rmtree(old_run / "checkpoints" / "checkpoint-4")
    with pytest.raises(UserError, match=r"checkpoint-2 belongs to another run \(recipe \(data_seed None -> 7\)\)"):
        steps(old_run, "--data_seed", "7")
    assert (old_run / "checkpoints" / "checkpoint-2").is_dir() and not (old_run / "model").exists()
    monkeypatch.setenv("HF_TOKEN", "hf_never_written_42")
    _, _, model = steps(old_run, "--logging_steps", "1")  # goes on from checkpoint-2: logging is inert
    written = [p for p in old_run.rglob("*") if p.is_file() and b"hf_never_written_42" in p.read_bytes()]
    assert written == []  # no record, checkpoint (training_args.bin) or log holds the token
    state = json.loads((Path(model) / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and json.loads((old_run / "checkpoints" / "run_identity.json").read_text()) == \
        json.loads((FIXTURE / "checkpoints" / "run_identity.json").read_text())
