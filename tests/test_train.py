import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import TrainerCallback, TrainingArguments, pipeline, set_seed

import train
from benchmarks.drills import SignalAtStep
from gpt2ja.errors import UserError
from gpt2ja.run_folder import RunFolder, last_complete_checkpoint
from gpt2ja.settings import REFERENCE_RECIPE
from conftest import tiny_run_argv
from processes import Launch, Script, children_of

REPO = Path(train.__file__).parent
# tiny.yaml shortened for drills about a run's life (kills, resumes, backups, processes), not its figures: 30 steps
# of 4 x 128 tokens, evaluated on 16 blocks of validation every 10; the out-of-domain novel is scored by the
# session's tiny run (conftest.tiny_run_argv: 16 sequences a step, the whole validation split), not at the end of
# every run. A flag given after them wins.
SHORT = ["--max_steps", "30", "--logging_steps", "5", "--eval_steps", "10", "--save_steps", "10",
         "--out_of_domain_text", "", "--global_batch_size", "4", "--per_device_train_batch_size", "4",
         "--max_eval_blocks", "16"]


def run_args(data, tokenizer, out, *extra):
    return ["configs/tiny.yaml", "--data_dir", str(data), "--tokenizer_dir", str(tokenizer),
            "--output_dir", str(out), *SHORT, *extra]


def losses(run_dir):
    state = json.loads((Path(run_dir) / "model" / "trainer_state.json").read_text())
    return [(entry["step"], entry["loss"]) for entry in state["log_history"] if "loss" in entry]


def Run(argv, log, env=None):
    """train.py in a child process."""
    return Script(["train.py", *argv], log, env)


# --- arguments --------------------------------------------------------------------------------

def test_reference_recipe_is_the_reference():
    recipe = yaml.safe_load((REPO / "configs" / "reference.yaml").read_text())
    assert recipe["bf16"] is True  # mixed precision on the GPU; this machine has no bf16 GPU, so off below
    model_args, data_args, args = train.parse_arguments(["--bf16", "false"])  # no recipe: the reference
    assert (model_args.n_positions, model_args.n_embd, model_args.n_head, model_args.n_layer) == (1024, 768, 12, 12)
    assert model_args.vocab_size == 32000
    assert args.num_train_epochs == 10
    assert args.global_batch_size * model_args.n_positions == 2048
    assert args.optim == "adamw_torch" and args.weight_decay == 0.0
    assert args.learning_rate == 1e-4 and args.lr_scheduler_type == "linear"
    assert args.warmup_steps == 0 and recipe.get("warmup_ratio", 0) == 0
    assert args.max_grad_norm == 1.0
    assert REFERENCE_RECIPE == REPO / "configs" / "reference.yaml"


@pytest.mark.parametrize("world, most, total, expected", [
    (1, 2, 2, (2, 1)), (2, 2, 2, (1, 1)), (1, 8, 64, (8, 8)), (8, 16, 512, (16, 4)), (3, 4, 24, (4, 2)),
])
def test_global_batch_is_split_over_processes(world, most, total, expected):
    per_device, accumulation = train.split_global_batch(total, most, world)
    assert (per_device, accumulation) == expected and per_device <= most
    assert world * per_device * accumulation == total


def test_a_global_batch_that_cannot_be_split_is_refused():
    with pytest.raises(UserError, match="cannot be split evenly over 8 processes"):
        train.split_global_batch(2, 2, 8)


@pytest.mark.parametrize("flags, message", [
    (["--max_steps", "0"], "--max_steps must be 1 or more"),
    (["--max_steps", "-5"], "--max_steps must be 1 or more"),
    (["--n_head", "5"], "must be a multiple of --n_head 5"),
    (["--dropout", "1.5"], "--dropout must be in"),
    (["--global_batch_size", "0"], "--global_batch_size must be 1 or more"),
    (["--sdpa_backends", "cudnn,fast"], "--sdpa_backends 'cudnn,fast' must be a comma list of cudnn, flash, "
                                        "efficient, math \\(unknown: fast\\)"),
])
def test_out_of_range_values_are_refused_at_parse_time(flags, message):
    with pytest.raises(UserError, match=message):
        train.parse_arguments(["configs/tiny.yaml", *flags])


def test_training_arguments_are_built_once_with_what_train_decides(tmp_path):
    model_args, data_args, given = train.parse_arguments(["configs/tiny.yaml", "--output_dir", str(tmp_path / "run"),
                                                         "--per_device_train_batch_size", "4"])
    run = RunFolder(given.output_dir)
    args = train.training_arguments(given, run, evaluate=False)
    assert isinstance(args, TrainingArguments) and args is not given
    assert args.output_dir == str(tmp_path / "run" / "checkpoints")
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (4, 4)  # global batch 16
    assert args.eval_strategy == "no" and not args.logging_nan_inf_filter
    assert train.training_arguments(given, run, evaluate=True).eval_strategy == "steps"
    assert given.output_dir == str(tmp_path / "run") and given.per_device_train_batch_size == 4  # untouched


# --- training ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_tiny_training_lowers_the_loss_and_saves_a_generating_model(tiny_model):
    model_dir = tiny_model  # the session's tiny run: conftest.tiny_run_argv, the novel scored
    state = json.loads((model_dir / "trainer_state.json").read_text())
    evals = [entry["eval_loss"] for entry in state["log_history"] if "eval_loss" in entry]
    assert len(evals) >= 3 and evals[-1] < evals[0] - 0.5
    assert all("tokens_per_second" in entry for entry in state["log_history"][1:] if "loss" in entry)
    names = {p.name for p in model_dir.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "spiece.model", "tokenizer.json",
            "tokenizer_config.json", "train_results.json", "eval_results.json", "test_results.json",
            "all_results.json"} <= names
    results = json.loads((model_dir / "all_results.json").read_text())
    for split in ("eval", "test", "ood"):
        assert results[f"{split}_perplexity"] == pytest.approx(np.exp(results[f"{split}_loss"]))
        assert results[f"{split}_bits_per_character"] > 0 and results[f"{split}_tokens"] > 0
        assert 0 <= results[f"{split}_unk_share"] < 0.05
    assert results["ood_characters"] == len(train.OUT_OF_DOMAIN_TEXT.read_text(encoding="utf-8").strip())
    config = json.loads((model_dir / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"], config["unk_token_id"]) == (2, 3, 0, 1)
    assert config["tokenizer_class"] == "BertGenerationTokenizer" and config["use_cache"] is True
    # the tokenizer saved with the model knows the model's context, not GPT-2 small's
    assert json.loads((model_dir / "tokenizer_config.json").read_text())["model_max_length"] == 128
    generation = json.loads((model_dir / "generation_config.json").read_text())
    assert generation["do_sample"] and generation["top_k"] == 50 and generation["top_p"] == 0.95
    assert (model_dir.parent / "logs").is_dir() and list((model_dir.parent / "logs").iterdir())

    set_seed(0)
    generator = pipeline("text-generation", model=str(model_dir))
    text = generator("近年の機械学習は", max_new_tokens=20)[0]["generated_text"]
    assert text.startswith("近年の機械学習は") and len(text) > len("近年の機械学習は")


@pytest.mark.slow
def test_final_metrics_match_the_trainers_eval_loss(tiny_model):
    state = json.loads((tiny_model / "trainer_state.json").read_text())
    trainer_loss = [e["eval_loss"] for e in state["log_history"] if "eval_loss" in e][-1]
    results = json.loads((tiny_model / "eval_results.json").read_text())
    # the same model and tokens; the metric scores each article on its own, every token, where the Trainer
    # scores packed blocks whose first tokens have little or no context
    assert results["eval_loss"] == pytest.approx(trainer_loss, rel=0.02)


def weights(run_dir):
    return load_file(Path(run_dir) / "model" / "model.safetensors")


def results(run_dir):
    return json.loads((Path(run_dir) / "model" / "all_results.json").read_text())


@pytest.mark.slow
def test_a_run_killed_anywhere_then_rerun_ends_as_an_uninterrupted_run(excerpt_data, excerpt_tokenizer, tmp_path):
    """One run killed (SIGKILL) at each point in turn and rerun after each kill: it ends with the weights,
    losses and figures of a run never killed. Each rerun's own log says how it took up the killed one."""
    extra = ("--dropout", "0.1")  # dropout makes the restored RNG state matter
    train.main(run_args(excerpt_data, excerpt_tokenizer, tmp_path / "straight", *extra))  # the process is not the point
    expected = results(tmp_path / "straight")
    assert expected["train_steps"] == 30 and expected["train_runtime"] > 0

    run_dir = tmp_path / "killed"  # no token cache yet
    kill_points = {
        "while tokenizing": lambda: any((run_dir / "token_cache").glob(".*.partial/output")),
        "after a checkpoint": lambda: (run_dir / "checkpoints" / "checkpoint-10" / "trainer_state.json").exists(),
        "during the final evaluation": lambda: (run_dir / ".model.partial" / "output" / "model.safetensors").exists(),
    }
    how_the_rerun_goes_on = {  # what the run after each kill says, and must not say
        "while tokenizing": (["left by a run that was stopped"], ["Resuming"]),
        "after a checkpoint": (["Resuming from"], []),
        "during the final evaluation": (["is the last step of this run", "left by a run that was stopped"], []),
    }
    previous = None
    for name, reached in [*kill_points.items(), ("not killed", None)]:
        run = Run(run_args(excerpt_data, excerpt_tokenizer, run_dir, *extra), tmp_path / f"{name}.log")
        if reached:
            run.wait_until(reached)
            run.process.send_signal(signal.SIGKILL)
            run.wait()
            assert not (run_dir / "model").exists(), name
        else:
            assert run.wait() == 0, run.output()
        if previous:
            said, unsaid = how_the_rerun_goes_on[previous]
            assert all(s in run.output() for s in said) and not any(s in run.output() for s in unsaid), (
                previous, run.output()[-3000:])
        if previous == "after a checkpoint":  # it resumed mid-run, not from the last step
            assert re.search(r"Resuming from \S*checkpoint-(10|20)\b", run.output()), run.output()[-3000:]
        previous = name

    a, b = weights(tmp_path / "straight"), weights(run_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert losses(tmp_path / "straight") == losses(run_dir)
    got = results(run_dir)
    # every figure but the time, which counts the killed sessions up to their last checkpoint too
    assert {k: v for k, v in got.items() if k != "train_runtime"} == {
        k: v for k, v in expected.items() if k != "train_runtime"}
    assert got["train_runtime"] > 0
    assert json.loads((run_dir / "model" / "trainer_state.json").read_text())["global_step"] == 30


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_a_new_machine_resumes_from_its_hub_backup(excerpt_data, excerpt_tokenizer,
                                                                                 tmp_path):
    """Ctrl-C saves a checkpoint and stops. The run backs itself up as the README says (Trainer's own push of
    the last checkpoint to a separate private repo; the Hub is the loopback double), so a new machine brings
    the pushed checkpoint into checkpoints/ and the same command finishes the run there.
    SIGTERM takes the same path: benchmarks/gpu_check.py's test sends it to a train.py process, and
    test_recipes.py to every recipe in the test process."""
    from hub_double import HubDouble
    token = "hf_BackupTestToken0123456789"
    backup = ["--push_to_hub", "true", "--hub_model_id", "tester/run-backup", "--hub_strategy", "checkpoint",
              "--hub_private_repo", "true"]
    with HubDouble(token) as hub:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("HF_")}, "HF_ENDPOINT": hub.url,
               "HF_TOKEN": token, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf_home")}

        def command(machine):
            return run_args(excerpt_data, excerpt_tokenizer, tmp_path / machine, "--max_steps", "40",
                            "--save_steps", "1000", *backup)

        run = Run(command("machine1"), tmp_path / "a.log", env)
        run.wait_until(lambda: "'loss'" in run.output())  # a few steps in
        run.process.send_signal(signal.SIGINT)
        assert run.wait(timeout=120) == 128 + signal.SIGINT, run.output()
        assert "Traceback" not in run.output() and "Stopped by SIGINT" in run.output()
        checkpoint = last_complete_checkpoint(tmp_path / "machine1" / "checkpoints")
        step = int(Path(checkpoint).name.split("-")[1])
        assert 5 <= step < 40
        assert (Path(checkpoint) / "spiece.model").is_file()  # the tokenizer travels with every checkpoint

        # the backup: the checkpoint Ctrl-C saved, in a private repo
        files = hub.repos["tester/run-backup"]["files"]
        assert hub.repos["tester/run-backup"]["private"]
        assert json.loads(files["last-checkpoint/trainer_state.json"])["global_step"] == step
        assert files["last-checkpoint/model.safetensors"] == (Path(checkpoint) / "model.safetensors").read_bytes()
        assert {"last-checkpoint/optimizer.pt", "last-checkpoint/spiece.model", "run_identity.json"} <= set(files)
        assert not [name for name, content in files.items() if token.encode() in content]  # HF_TOKEN stays out

        # a new machine, as the README says
        subprocess.run([str(Path(sys.executable).parent / "hf"), "download", "tester/run-backup", "--include",
                        "last-checkpoint/*", "--include", "run_identity.json", "--local-dir",
                        str(tmp_path / "backup")], env=env, check=True, capture_output=True)
        state = json.loads((tmp_path / "backup" / "last-checkpoint" / "trainer_state.json").read_text())
        restored = tmp_path / "machine2" / "checkpoints" / f"checkpoint-{state['global_step']}"
        restored.parent.mkdir(parents=True)
        shutil.move(tmp_path / "backup" / "last-checkpoint", restored)
        shutil.move(tmp_path / "backup" / "run_identity.json", restored.parent / "run_identity.json")
        finish = Run(command("machine2"), tmp_path / "b.log", env)
        assert finish.wait() == 0, finish.output()
    assert f"Resuming from {restored}" in finish.output()
    state = json.loads((tmp_path / "machine2" / "model" / "trainer_state.json").read_text())
    assert state["global_step"] == 40


@pytest.mark.slow
def test_a_checkpoint_or_model_of_another_run_is_refused(excerpt, excerpt_data, finished_run, tmp_path):
    import prepare_data
    import tokenizer
    run, base = finished_run
    with pytest.raises(UserError, match=r"model of another run \(recipe \(learning_rate 0.001 -> 0.0005\)\).*"
                                        "--overwrite_output_dir"):
        train.main(base + ["--learning_rate", "5e-4"])
    shutil.rmtree(run / "model")  # as a run killed after its last checkpoint leaves it

    other_tokenizer = tmp_path / "tokenizer"  # the same size, other pieces
    tokenizer.main(["--data_dir", str(excerpt_data), "--output_dir", str(other_tokenizer), "--vocab_size", "8000",
                    "--num_samples", "5000"])
    other_data = tmp_path / "data"  # the same dump prepared again with other splits
    prepare_data.main(["--dump", str(excerpt), "--output_dir", str(other_data), "--validation_percent", "6",
                       "--test_percent", "5", "--num_proc", "1"])
    for changed, what in [(["--learning_rate", "5e-4"], r"recipe \(learning_rate"), (["--n_layer", "3"], "config"),
                          (["--tokenizer_dir", str(other_tokenizer)], "the tokenizer"),
                          (["--data_dir", str(other_data)], "the data")]:
        with pytest.raises(UserError, match=f"checkpoint-30 belongs to another run .*{what}"):
            train.main(base + changed)
    assert last_complete_checkpoint(run / "checkpoints").endswith("checkpoint-30")

    train.main(base + ["--learning_rate", "5e-4", "--overwrite_output_dir", "--max_steps", "2", "--out_of_domain_text",
                       ""])
    identity = json.loads((run / "checkpoints" / "run_identity.json").read_text())["identity"]
    assert identity["recipe"]["learning_rate"] == 5e-4 and results(run)["train_steps"] == 2


@pytest.mark.slow
def test_a_second_run_on_the_same_run_folder_is_refused(excerpt_data, excerpt_tokenizer, tmp_path):
    first = Run(run_args(excerpt_data, excerpt_tokenizer, tmp_path / "run", "--max_steps", "200"), tmp_path / "a.log")
    first.wait_until(lambda: "'loss'" in first.output())
    try:
        with pytest.raises(UserError, match="Another run is writing .*run/model"):
            train.main(run_args(excerpt_data, excerpt_tokenizer, tmp_path / "run", "--max_steps", "200"))
    finally:
        first.process.kill()
        first.wait()


@pytest.mark.slow
def test_runs_that_meet_at_a_fresh_token_cache_wait_for_each_other(excerpt_data, excerpt_tokenizer, tmp_path):
    shared = tmp_path / "tokens"  # --token_cache_dir: one cache for runs on the same data and tokenizer
    runs = [Run(run_args(excerpt_data, excerpt_tokenizer, tmp_path / f"run{i}", "--max_steps", "2",
                         "--token_cache_dir", str(shared)), tmp_path / f"{i}.log")
            for i in range(2)]
    assert [run.wait() for run in runs] == [0, 0], runs[0].output() + runs[1].output()
    assert sum("Reusing the token cache" in run.output() for run in runs) == 1
    assert len(list(shared.iterdir())) == 1
    assert not any((tmp_path / f"run{i}" / "token_cache").exists() for i in range(2))


@pytest.mark.slow
@pytest.mark.parametrize("small_disk", ["12m"], indirect=True)
def test_out_of_space_while_training_is_one_sentence(excerpt_data, excerpt_tokenizer, small_disk, command):
    out = command(train.main, run_args(excerpt_data, excerpt_tokenizer, small_disk / "run", "--max_steps", "4",
                                       "--save_steps", "2"))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ran out of space while writing" in errors[0], errors


@pytest.mark.slow
def test_training_puts_the_sigterm_handler_back(excerpt_data, excerpt_tokenizer, tmp_path):
    # Left installed, the handler passes to worker pools forked later in the process (datasets' num_proc);
    # Pool.terminate() stops them with SIGTERM, they ignore it, and the pool waits forever (it hung CI).
    before = signal.getsignal(signal.SIGTERM)
    train.main(run_args(excerpt_data, excerpt_tokenizer, tmp_path / "run", "--max_steps", "2"))
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.slow
def test_two_processes_train_together_like_one(excerpt_data, excerpt_tokenizer, tmp_path):
    train.main(run_args(excerpt_data, excerpt_tokenizer, tmp_path / "one", "--max_steps", "10"))
    argv = run_args(excerpt_data, excerpt_tokenizer, tmp_path / "two", "--max_steps", "10")
    launched = Launch(["--num_processes", "2", "-m"], ["tests.record_batches", str(tmp_path / "rec2"), *argv],
                      tmp_path / "two.log")
    assert launched.wait() == 0, launched.output()
    ranks = [json.loads((tmp_path / "rec2" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert len(ranks[0]["digests"]) == len(ranks[1]["digests"]) == 10
    assert not set(ranks[0]["digests"]) & set(ranks[1]["digests"])  # each rank its own half of the batch
    assert "Global batch 4 sequences = 2 processes x 2 per device x 1 accumulation steps" in launched.output()
    # the same global batches, so the same losses, up to float summation order
    for (step1, loss1), (step2, loss2) in zip(losses(tmp_path / "one"), losses(tmp_path / "two"), strict=True):
        assert step1 == step2 and loss2 == pytest.approx(loss1, abs=1e-4)


@pytest.mark.parametrize("folder", ["checkpoints", "logs", "model"])
def test_a_run_folder_whose_subfolders_train_did_not_write_is_refused(excerpt_data, excerpt_tokenizer, tmp_path,
                                                                     folder):
    (tmp_path / "run" / folder).mkdir(parents=True)
    (tmp_path / "run" / folder / "notes.txt").write_text("keep me")
    for flags in ([], ["--overwrite_output_dir"]):
        with pytest.raises(UserError, match="did not write"):
            train.main(run_args(excerpt_data, excerpt_tokenizer, tmp_path / "run", *flags))
        assert (tmp_path / "run" / folder / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [folder]


def test_a_tokenizer_of_another_size_is_refused(excerpt_data, excerpt_tokenizer, tmp_path):
    with pytest.raises(UserError, match="holds 8000 entries but the recipe's vocab_size is 32000"):
        train.main(run_args(excerpt_data, excerpt_tokenizer, tmp_path / "run", "--vocab_size", "32000"))


@pytest.mark.slow
def test_a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(excerpt_data, excerpt_tokenizer, tmp_path):
    argv = run_args(excerpt_data, excerpt_tokenizer, tmp_path / "run", "--learning_rate", "1e5", "--warmup_steps",
                    "0", "--max_grad_norm", "0", "--save_steps", "1", "--logging_steps", "1")
    handler_before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(UserError, match=r"loss became (nan|inf) at step (\d+)") as raised:
        train.main(argv)
    assert signal.getsignal(signal.SIGTERM) is handler_before  # put back on the way out of an error too
    step = int(raised.value.args[0].split(" at step ")[1].split(";")[0])
    last = last_complete_checkpoint(tmp_path / "run" / "checkpoints")
    assert last == str(tmp_path / "run" / "checkpoints" / f"checkpoint-{step - 1}")
    assert last in str(raised.value)
    assert not (tmp_path / "run" / "model").exists()


class NanLossAtMicroBatch(TrainerCallback):
    """A test double of a diverging run: the training loss of micro-batch `number` (counted from 1) becomes NaN,
    and with it the gradients and every weight after it."""

    def __init__(self, number):
        self.number, self.seen = number, 0

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        model.register_forward_hook(self.spoil)

    def spoil(self, module, inputs, output):
        if module.training:
            self.seen += 1
            if self.seen == self.number:
                output.loss = output.loss * float("nan")
        return output


@pytest.mark.slow
def test_a_nan_at_a_chosen_micro_batch_stops_the_run_before_the_next_save(excerpt_data, excerpt_tokenizer, tmp_path):
    # 2 micro-batches a step: micro-batch 25 is step 13's first; saves every 10 steps, no log before step 20's save
    nan = NanLossAtMicroBatch(25)
    argv = run_args(excerpt_data, excerpt_tokenizer, tmp_path / "run", "--global_batch_size", "16",
                    "--per_device_train_batch_size", "8", "--logging_steps", "100", "--eval_strategy", "no")
    with pytest.raises(UserError, match=r"loss became nan at step 13; stopped without saving\. The last good "
                                        r"checkpoint is .*checkpoint-10:") as raised:
        train.main(argv, callbacks=[nan])
    checkpoints = tmp_path / "run" / "checkpoints"
    assert last_complete_checkpoint(checkpoints) == str(checkpoints / "checkpoint-10") in str(raised.value)
    assert nan.seen == 40  # the host read the loss only when step 20 was to be saved, not at each micro-batch
    assert not (checkpoints / "checkpoint-20").exists() and not (tmp_path / "run" / "model").exists()


class HostReads:
    """Tensor.item, .tolist, __bool__, __float__ and __int__ (each makes the host wait for the device), patched to
    note the file that called them while `counting`; the calls a file under `ours` made are `ours_seen`."""

    NAMES = ("item", "tolist", "__bool__", "__float__", "__int__")

    def __init__(self, monkeypatch, ours):
        self.ours, self.counting, self.in_window, self.outside = ours, False, [], []
        for name in self.NAMES:
            monkeypatch.setattr(torch.Tensor, name, self.noting(name, getattr(torch.Tensor, name)))

    def noting(self, name, read):
        def noted(tensor, *args):
            caller = sys._getframe(1).f_code.co_filename
            if any(caller.startswith(str(path)) for path in self.ours):
                (self.in_window if self.counting else self.outside).append(f"{name} in {caller}")
            return read(tensor, *args)
        return noted


class CountBetweenSteps(TrainerCallback):
    def __init__(self, reads, first, second):
        self.reads, self.first, self.second = reads, first, second

    def on_step_end(self, args, state, control, **kwargs):
        self.reads.counting = self.first <= state.global_step < self.second


@pytest.mark.slow
def test_no_host_read_of_our_code_between_two_optimizer_steps(excerpt_data, excerpt_tokenizer, tmp_path,
                                                             monkeypatch):
    reads = HostReads(monkeypatch, ours=[REPO / "train.py", REPO / "gpt2ja"])
    argv = run_args(excerpt_data, excerpt_tokenizer, tmp_path / "run", "--max_steps", "6", "--global_batch_size",
                    "16", "--per_device_train_batch_size", "8", "--logging_steps", "100", "--save_steps", "100",
                    "--eval_strategy", "no")
    train.main(argv, callbacks=[CountBetweenSteps(reads, 3, 4)])  # from the end of step 3 to the end of step 4
    assert reads.in_window == []
    assert any("preemption.py" in read for read in reads.outside)  # the watch read once, before the last save


class AttentionBackendsSeen(TrainerCallback):
    """Notes, at every forward of the model, whether the flash and math kernels of sdpa were allowed."""

    def __init__(self):
        self.seen = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        model.register_forward_pre_hook(lambda module, inputs: self.seen.append(
            (module.training, torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.math_sdp_enabled())))


@pytest.mark.slow
def test_the_speed_settings_keep_the_losses_and_the_run(excerpt_data, excerpt_tokenizer, tmp_path, caplog):
    few = ["--max_steps", "6", "--logging_steps", "1", "--eval_steps", "3", "--save_steps", "6",
           "--max_eval_blocks", "2"]
    order = ["--sdpa_backends", "cudnn,flash,efficient,math"]
    train.main(run_args(excerpt_data, excerpt_tokenizer, tmp_path / "default", *few))
    model = train.main(run_args(excerpt_data, excerpt_tokenizer, tmp_path / "cudnn", *few, *order))
    # the CPU has no cuDNN attention: cuDNN first leaves PyTorch's own choice, the same math
    assert losses(tmp_path / "cudnn") == losses(tmp_path / "default") and len(losses(tmp_path / "default")) == 6
    seen = AttentionBackendsSeen()
    train.main(run_args(excerpt_data, excerpt_tokenizer, tmp_path / "math", *few, "--sdpa_backends", "math"),
               callbacks=[seen])
    assert {training for training, _, _ in seen.seen} == {True, False}  # training steps and evaluations
    assert {(flash, math) for _, flash, math in seen.seen} == {(False, True)}  # math only, in every step
    assert torch.backends.cuda.flash_sdp_enabled()  # and PyTorch's own order again outside them
    recipe = json.loads((model / "run_info.json").read_text())["recipe"]
    assert (recipe["sdpa_backends"], recipe["torch_compile_mode"]) == ("cudnn,flash,efficient,math", None)
    caplog.set_level(logging.INFO)
    train.main(run_args(excerpt_data, excerpt_tokenizer, tmp_path / "cudnn", *few))  # speed only: the same run
    assert "already holds this output" in caplog.text


def test_missing_inputs_fail_clearly(tmp_path, excerpt_data, command):
    out = command(train.main, ["configs/tiny.yaml", "--data_dir", str(excerpt_data), "--tokenizer_dir",
                               str(tmp_path / "none"), "--output_dir", str(tmp_path / "run")])
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "holds no tokenizer" in out.stderr and "tokenizer.py" in out.stderr


@pytest.mark.parametrize("recipe", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_names_only_known_settings(recipe):
    import dataclasses
    known = {f.name for t in (train.ModelArguments, train.DataTrainingArguments, train.LMTrainingArguments)
             for f in dataclasses.fields(t)}
    assert set(yaml.safe_load(recipe.read_text())) <= known


def test_fast_recipe_keeps_the_model_and_scales_the_batch():
    fast = yaml.safe_load((REPO / "configs" / "fast.yaml").read_text())
    reference = yaml.safe_load((REPO / "configs" / "reference.yaml").read_text())
    for key in ("n_positions", "n_embd", "n_layer", "n_head", "vocab_size"):
        assert fast[key] == reference[key]
    assert fast["global_batch_size"] % fast["per_device_train_batch_size"] == 0
    assert fast["bf16"] and fast["torch_compile"] and fast["optim"] == "adamw_torch_fused"
    assert fast["attn_implementation"] == "sdpa" and fast["warmup_steps"] > 0


@pytest.mark.slow
def test_sigterm_to_one_of_two_processes_stops_both_at_the_same_checkpoint(excerpt_data, excerpt_tokenizer,
                                                                           tmp_path):
    argv = run_args(excerpt_data, excerpt_tokenizer, tmp_path / "run", "--max_steps", "400", "--save_steps", "1000")
    launched = Launch(["--num_processes", "2"], ["train.py", *argv], tmp_path / "launch.log")
    launched.wait_until(lambda: "'loss'" in launched.output())
    workers = children_of(launched.process.pid)
    assert len(workers) == 2
    os.kill(workers[1], signal.SIGTERM)  # the preemption reaches one rank first
    launched.wait(timeout=120)
    output = launched.output()
    assert output.count("Stopped by SIGTERM") == 2, output  # both ranks agreed to stop
    # The rank that exits first ends with 143; torchrun then sends SIGTERM to the other, which may
    # still be shutting down after its own "Stopped by SIGTERM" and then dies of it (-15) instead.
    exit_codes = re.findall(r"exitcode\s+: (-?\d+)", output)
    assert "143" in exit_codes and set(exit_codes) <= {"143", "-15"}, exit_codes
    checkpoints = list((tmp_path / "run" / "checkpoints").glob("checkpoint-*"))
    assert len(checkpoints) == 1 and (checkpoints[0] / "trainer_state.json").is_file()
    assert {p.name for p in checkpoints[0].glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}


@pytest.mark.slow
def test_two_nodes_from_a_fresh_token_cache_train_like_one_process(excerpt_data, excerpt_tokenizer, tmp_path):
    # Two "nodes" side by side on 127.0.0.1, one process each, sharing a filesystem as cluster nodes do:
    # the token cache is written once (the other node waits for it), and the run matches one process.
    train.main(run_args(excerpt_data, excerpt_tokenizer, tmp_path / "one", "--max_steps", "10"))
    argv = run_args(excerpt_data, excerpt_tokenizer, tmp_path / "two", "--max_steps", "10")  # no token cache yet
    port = str(29500 + os.getpid() % 1000)
    nodes = [Launch(["--num_machines", "2", "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1",
                     "--main_process_port", port, "--num_processes", "2"], ["train.py", *argv],
                    tmp_path / f"node{rank}.log")
             for rank in (0, 1)]
    codes = [node.wait(timeout=600) for node in nodes]
    outputs = [node.output() for node in nodes]
    assert codes == [0, 0], "\n".join(output[-3000:] for output in outputs)
    assert len(list((tmp_path / "two" / "token_cache").iterdir())) == 1
    assert sum("Reusing the token cache" in output for output in outputs) == 1
    assert "Global batch 4 sequences = 2 processes x 2 per device" in outputs[0]
    for (step1, loss1), (step2, loss2) in zip(losses(tmp_path / "one"), losses(tmp_path / "two"), strict=True):
        assert step1 == step2 and loss2 == pytest.approx(loss1, abs=1e-4)


# --- checkpoints that stand alone ---------------------------------------------------------------

@pytest.mark.slow
def test_every_checkpoint_holds_the_tokenizer_and_generates(tiny_model):
    checkpoint = last_complete_checkpoint(tiny_model.parent / "checkpoints")
    assert (Path(checkpoint) / "spiece.model").is_file()
    set_seed(0)
    text = pipeline("text-generation", model=checkpoint)("日本の首都は", max_new_tokens=5)[0]["generated_text"]
    assert text.startswith("日本の首都は") and len(text) > len("日本の首都は")


# --- flags: every one given is honoured or refused --------------------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--do_eval"], "--do_eval is not a setting of this script: train.py evaluates every --eval_steps"),
    (["--do-predict", "true"], "--do_predict is not a setting of this script"),
    (["--logging_nan_inf_filter=true"], "a loss that is not finite stops the run"),
    (["--gradient_accumulation_steps", "4"], "is derived from --global_batch_size \\(16\\)"),
])
def test_trainer_flags_that_train_py_decides_are_refused_not_ignored(flags, message):
    with pytest.raises(UserError, match=message):
        train.parse_arguments(["configs/tiny.yaml", *flags])


def test_help_hides_what_train_py_decides_and_shows_what_it_takes(command):
    out = command(train.main, ["--help"])
    assert out.returncode == 0 and "--resume_from_checkpoint" in out.stdout and "--token_cache_dir" in out.stdout
    assert not any(f"--{name}" in out.stdout for name in train.NOT_TAKEN)


def test_another_steps_folder_is_refused_as_the_run_folder(excerpt_data, excerpt_tokenizer):
    before = sorted(p.name for p in excerpt_data.iterdir())
    with pytest.raises(UserError, match="is another step's output folder \\(it holds preparation.json\\)"):
        train.main(run_args(excerpt_data, excerpt_tokenizer, excerpt_data))
    assert sorted(p.name for p in excerpt_data.iterdir()) == before


@pytest.mark.slow
def test_resume_from_checkpoint_takes_a_moved_checkpoint_of_this_run_and_refuses_others(tiny_model, excerpt_data,
                                                                                      excerpt_tokenizer, tmp_path):
    first = tiny_model  # the session's finished tiny run, checkpoints 20 and 30
    shutil.copytree(first.parent / "checkpoints", tmp_path / "moved")  # a backup, elsewhere
    moved = tmp_path / "moved" / "checkpoint-20"

    def elsewhere(run, *flags):  # the tiny run's own command line, into another run folder (the novel not scored)
        return [*tiny_run_argv(excerpt_data, excerpt_tokenizer, tmp_path / run), "--out_of_domain_text", "", *flags]

    for named, message in ((tmp_path / "absent", "is not a complete checkpoint"),
                           (moved, r"is not a checkpoint of this run \(recipe \(learning_rate")):
        with pytest.raises(UserError, match=message):
            train.main(elsewhere("other", "--learning_rate", "5e-4", "--resume_from_checkpoint", str(named)))
    second = train.main(elsewhere("second", "--resume_from_checkpoint", str(moved)))
    state = json.loads((second / "trainer_state.json").read_text())
    assert state["global_step"] == 30 and [e["step"] for e in state["log_history"] if "loss" in e][0] <= 20
    assert not (tmp_path / "second" / "checkpoints" / "checkpoint-20").exists()  # it went on from the moved one
    last = train.main(elsewhere("third", "--resume_from_checkpoint", str(tmp_path / "moved" / "checkpoint-30")))
    assert not (tmp_path / "third" / "checkpoints" / "checkpoint-30").exists()  # exported straight from it
    a, b, c = (load_file(model / "model.safetensors") for model in (first, second, last))
    assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a)


# --- read-only and full disks ----------------------------------------------------------------------

@pytest.mark.slow
def test_data_and_tokenizer_on_a_read_only_disk_train(excerpt_data, excerpt_tokenizer, read_only_disk, tmp_path):
    disk, seal = read_only_disk
    shutil.copytree(excerpt_data, disk / "data")
    shutil.copytree(excerpt_tokenizer, disk / "tokenizer")
    seal()
    model = train.main(run_args(disk / "data", disk / "tokenizer", tmp_path / "run", "--max_steps", "4"))
    assert json.loads((model / "all_results.json").read_text())["train_steps"] == 4


def test_a_run_folder_on_a_read_only_disk_is_one_sentence(excerpt_data, excerpt_tokenizer, read_only_disk):
    disk, seal = read_only_disk
    seal()
    with pytest.raises(UserError, match=r"--output_dir .*read-only/run/token_cache/\w+ cannot be written "
                                        r"\(Read-only file system\); pass a folder you can write to"):
        train.main(run_args(excerpt_data, excerpt_tokenizer, disk / "run"))


@pytest.mark.slow
def test_a_damaged_last_checkpoint_is_named_with_what_to_do(excerpt_data, excerpt_tokenizer, tmp_path):
    argv = run_args(excerpt_data, excerpt_tokenizer, tmp_path / "run", "--max_steps", "4", "--save_steps", "2")
    with pytest.raises(SystemExit):
        train.main(argv, callbacks=[SignalAtStep(2)])  # stopped with checkpoint-2, as a preempted job is
    weights = tmp_path / "run" / "checkpoints" / "checkpoint-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # as a disk that filled while it was written leaves it
    with pytest.raises(UserError, match=r"checkpoint-2 is damaged: its files do not load \(SafetensorError.*remove it "
                                        "and rerun to resume from the checkpoint before it"):
        train.main(argv)
    shutil.rmtree(weights.parent)
    assert json.loads((train.main(argv) / "trainer_state.json").read_text())["global_step"] == 4


@pytest.mark.slow
def test_stop_at_eval_loss_ends_a_finished_run_and_a_lower_threshold_goes_on(excerpt_data, excerpt_tokenizer,
                                                                            tmp_path, caplog):
    # SHORT's validation loss (16 blocks): 8.6 at step 10, 8.05 at 20, 7.9 at 30 (30 steps in all)
    argv = run_args(excerpt_data, excerpt_tokenizer, tmp_path / "run")
    model = train.main([*argv, "--stop_at_eval_loss", "8.2"])
    state = json.loads((model / "trainer_state.json").read_text())
    assert state["global_step"] == 20 and results(tmp_path / "run")["train_steps"] == 20
    assert json.loads((model / "run_info.json").read_text())["recipe"]["stop_at_eval_loss"] == 8.2
    stamp = (model / "model.safetensors").stat().st_mtime_ns
    caplog.set_level(logging.INFO)
    train.main([*argv, "--stop_at_eval_loss", "8.2"])  # finished: reused as it is
    assert (model / "model.safetensors").stat().st_mtime_ns == stamp and "already holds this output" in caplog.text
    train.main([*argv, "--stop_at_eval_loss", "7.0"])  # not reached: the run goes on from its last checkpoint
    assert "Resuming from" in caplog.text and "checkpoint-20" in caplog.text
    assert json.loads((model / "trainer_state.json").read_text())["global_step"] == 30


@pytest.mark.slow
def test_a_base_without_tokenizer_json_is_exported_with_one_that_encodes_as_its_spiece_model(tiny_model, tmp_path):
    import sentencepiece as spm
    from transformers import PreTrainedTokenizerFast
    checkpoint = Path(last_complete_checkpoint(tiny_model.parent / "checkpoints"))
    assert not (checkpoint / "tokenizer.json").exists()  # Trainer saves the tokenizer without one
    (tmp_path / "model").mkdir()
    train.export_model(str(checkpoint), checkpoint, tmp_path / "model")
    fast = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "model" / "tokenizer.json"))
    texts = ["吾輩は猫である。\n名前はまだ無い。", "東京 2024年 </s> 終わり"]
    pieces = spm.SentencePieceProcessor(model_file=str(checkpoint / "spiece.model"))
    assert fast(texts[0])["input_ids"] == pieces.encode(texts[0])
    assert 3 in fast(texts[1])["input_ids"]  # the special token is split out of the text, as the slow tokenizer does


def test_a_model_starts_training_without_transformers_loss_type_warning_and_its_config_is_unchanged(tmp_path):
    from transformers import GPT2Config
    from transformers.utils import logging as transformers_logging
    config = GPT2Config(n_positions=16, n_embd=8, n_layer=1, n_head=2, vocab_size=32)
    trainer = train.make_trainer(config, "sdpa", TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True,
                                                                   report_to=[]), train_dataset=[])
    transformers_logging.warning_once.cache_clear()  # said once a process: another test may have said it already
    said = []
    handler = logging.Handler()
    handler.emit = said.append
    transformers_logging.get_logger("transformers.modeling_utils").addHandler(handler)
    try:
        trainer.model.loss_function  # where transformers looks the loss up by the model's class name
    finally:
        transformers_logging.get_logger("transformers.modeling_utils").removeHandler(handler)
    assert [record.getMessage() for record in said if "loss_type" in record.getMessage()] == []
    trainer.model.save_pretrained(tmp_path / "model")
    assert "loss_type" not in (tmp_path / "model" / "config.json").read_text()


@pytest.mark.slow
def test_the_final_scores_are_tensorboard_scalars_at_the_last_step(tiny_model):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    results = json.loads((tiny_model / "all_results.json").read_text())
    step = json.loads((tiny_model / "trainer_state.json").read_text())["global_step"]
    events = EventAccumulator(str(tiny_model.parent / "logs")).Reload()
    for tag, name in [("final/validation_loss", "eval_loss"), ("final/test_perplexity", "test_perplexity"),
                      ("final/test_bits_per_character", "test_bits_per_character"),
                      ("final/out_of_domain_loss", "ood_loss")]:
        (scalar,) = events.Scalars(tag)
        assert scalar.step == step and scalar.value == pytest.approx(results[name], rel=1e-6), tag
    assert "train/loss" in events.Tags()["scalars"]  # beside Trainer's own curves
