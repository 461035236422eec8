import contextlib
import json
import shutil
import time

import datasets
import pytest
import sentencepiece as spm
from transformers import AutoTokenizer, BertGenerationTokenizer, PreTrainedTokenizerFast

import prepare_data
import tokenizer
from dumps import MARKUP_PAGES
from processes import Script, alive, children_of, descendants, kill_when
from gpt2ja import rerun
from gpt2ja.errors import UserError
from gpt2ja.settings import SPECIAL_IDS
from gpt2ja.tokenizer_folder import TokenizerReport



def test_folder_loads_as_bert_generation_with_the_published_layout(excerpt_tokenizer):
    loaded = AutoTokenizer.from_pretrained(str(excerpt_tokenizer))
    assert type(loaded) is BertGenerationTokenizer
    assert len(loaded) == 8000
    assert {t: loaded.convert_tokens_to_ids(t) for t in SPECIAL_IDS} == {
        "<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "<cls>": 4, "<sep>": 5}
    assert (loaded.pad_token, loaded.unk_token, loaded.bos_token, loaded.eos_token, loaded.cls_token,
            loaded.sep_token) == ("<pad>", "<unk>", "<s>", "</s>", "<cls>", "<sep>")
    files = sorted(p.name for p in excerpt_tokenizer.iterdir())
    assert files == ["spiece.model", "tokenizer.json", "tokenizer_config.json", "tokenizer_report.json"]
    assert loaded.model_max_length == 1024


def test_encoding_adds_no_special_tokens_and_keeps_the_dummy_prefix(excerpt_tokenizer):
    loaded = AutoTokenizer.from_pretrained(str(excerpt_tokenizer))
    ids = loaded("近年の機械学習は")["input_ids"]
    processor = spm.SentencePieceProcessor(model_file=str(excerpt_tokenizer / "spiece.model"))
    assert ids == processor.encode("近年の機械学習は")
    assert not set(ids) & set(SPECIAL_IDS.values())
    assert loaded.convert_ids_to_tokens(ids)[0].startswith("▁")


def test_paragraph_breaks_survive_a_round_trip(excerpt_tokenizer):
    loaded = AutoTokenizer.from_pretrained(str(excerpt_tokenizer))
    text = "日本語は日本の言語である。\n東京は日本の首都である。"
    ids = loaded(text)["input_ids"]
    assert loaded.convert_tokens_to_ids("\n") in ids
    assert loaded.decode(ids) == text


def test_fast_twin_gives_identical_ids_on_every_validation_line(excerpt_tokenizer, excerpt_data):
    slow = AutoTokenizer.from_pretrained(str(excerpt_tokenizer))
    fast = PreTrainedTokenizerFast(tokenizer_file=str(excerpt_tokenizer / "tokenizer.json"))
    lines = [line for text in datasets.load_from_disk(str(excerpt_data))["validation"]["text"]
             for line in text.split("\n")]
    lines += ["", "  二つの  空白  ", "全角\u3000空白", "特別<s>トークン</s>を含む<sep>", "ＡＢＣ！😀𠮷"]
    assert len(lines) > 100
    assert [fast(line)["input_ids"] for line in lines] == [slow(line)["input_ids"] for line in lines]
    report = json.loads((excerpt_tokenizer / TokenizerReport.FILE).read_text())
    assert report["fast_slow_identical_lines"] == report["validation_lines"] > 100
    # on this small corpus, rare kanji beyond the 99.95% character coverage are <unk>
    assert 0 < report["unk_share"] < 0.01
    assert report["round_trip_changed_share"] < 0.3
    assert 0.3 < report["tokens_per_character"] < 1.0


@pytest.mark.slow  # trains another tokenizer
def test_no_dummy_prefix_flag(excerpt_data, tmp_path):
    tokenizer.main(["--data_dir", str(excerpt_data), "--output_dir", str(tmp_path / "tok"),
                    "--vocab_size", "4000", "--num_samples", "5000", "--no_add_dummy_prefix"])
    loaded = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert not loaded.convert_ids_to_tokens(loaded("近年の機械学習は")["input_ids"])[0].startswith("▁")
    fast = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tok" / "tokenizer.json"))
    lines = [line for text in datasets.load_from_disk(str(excerpt_data))["validation"]["text"]
             for line in text.split("\n")]
    assert [fast(line)["input_ids"] for line in lines] == [loaded(line)["input_ids"] for line in lines]


@pytest.mark.slow  # trains another tokenizer
def test_same_data_settings_and_seed_give_the_same_model(excerpt_data, tmp_path):
    for folder in ("first", "again"):  # a sample of 5,000 sentences: the seed picks it
        tokenizer.main(["--data_dir", str(excerpt_data), "--output_dir", str(tmp_path / folder),
                        "--vocab_size", "8000", "--num_samples", "5000"])
    assert (tmp_path / "again" / "spiece.model").read_bytes() == (tmp_path / "first" / "spiece.model").read_bytes()


def test_a_sample_too_large_for_the_memory_gets_a_warning_with_the_num_samples_that_fits():
    # 46.9 bytes a character and 21 MiB: 600M characters need 26.2 GiB; 9 tenths of 14.07 GB hold 4.49M
    # sentences of 60 characters
    needed = 46.9 * 600_000_000 + 21 * 2**20
    assert tokenizer.memory_warning(10_000_000, 600_000_000, needed) is None
    assert tokenizer.memory_warning(10_000_000, 600_000_000, None) is None
    assert tokenizer.memory_warning(10_000_000, 600_000_000, needed - 1) is not None
    warning = tokenizer.memory_warning(10_000_000, 600_000_000, 46.9 * 300_000_000)
    assert "about 26.2 GiB for 10,000,000 sentences" in warning and "--num_samples 4,492,957 or fewer" in warning


def test_sampling_is_uniform_seeded_and_from_train_only(excerpt_data):
    train = datasets.load_from_disk(str(excerpt_data))["train"]
    every, total, characters = tokenizer.sample_sentences(train, 10**9, 0, 5, 1000)
    every = list(every)
    assert len(every) == total > 10000 and characters == sum(len(s) for s in every)
    first, n, _ = tokenizer.sample_sentences(train, 1000, 1, 5, 1000)
    first = list(first)
    second = list(tokenizer.sample_sentences(train, 1000, 1, 5, 1000)[0])
    other = list(tokenizer.sample_sentences(train, 1000, 2, 5, 1000)[0])
    assert n == len(first) == 1000 and first == second and first != other
    assert set(first) <= set(every)
    # drawn across the whole split, not its head
    positions = {sentence: i for i, sentence in enumerate(every)}
    drawn = sorted(positions[s] for s in first)
    assert drawn[0] < total * 0.05 and drawn[-1] > total * 0.95
    validation = {s for t in datasets.load_from_disk(str(excerpt_data))["validation"]["text"]
                  for s in tokenizer.sentences_of(t, 5, 1000)}
    assert not set(every) & validation - set(every)  # nothing is taken from validation


def test_a_corpus_too_small_for_the_vocab_says_so(tmp_path):
    prepare_data.main(["--dump", str(MARKUP_PAGES), "--output_dir", str(tmp_path / "data"),
                       "--validation_percent", "0", "--test_percent", "0"])
    with pytest.raises(UserError, match=r"supports at most \d+ pieces.*--vocab_size"):
        tokenizer.main(["--data_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "tok"),
                        "--vocab_size", "8000"])
    assert not (tmp_path / "tok").exists()


def test_missing_and_empty_data_fail_clearly(tmp_path, excerpt_data, command):
    with pytest.raises(UserError, match="holds no prepared data"):
        tokenizer.main(["--data_dir", str(tmp_path / "nothing"), "--output_dir", str(tmp_path / "tok")])
    empty = datasets.load_from_disk(str(excerpt_data))
    empty["train"] = empty["train"].filter(lambda row: False)
    empty.save_to_disk(str(tmp_path / "empty"))
    with pytest.raises(UserError, match="train split .* is empty"):
        tokenizer.main(["--data_dir", str(tmp_path / "empty"), "--output_dir", str(tmp_path / "tok")])
    out = command(tokenizer.main, ["--data_dir", str(tmp_path / "nothing")])
    assert out.returncode == 1 and "Traceback" not in out.stderr and "prepare_data.py" in out.stderr


def test_a_vocab_smaller_than_the_alphabet_says_so(excerpt_data, tmp_path):
    with pytest.raises(UserError, match=r"holds \d+ distinct characters .* pass --vocab_size above \d+"):
        tokenizer.main(["--data_dir", str(excerpt_data), "--output_dir", str(tmp_path / "tok"),
                        "--vocab_size", "500"])


# --- never losing a user's work ----------------------------------------------------------------

@pytest.mark.slow  # trains another tokenizer
def test_a_rerun_with_other_settings_is_refused_until_asked(excerpt_data, excerpt_tokenizer, tmp_path):
    shutil.copytree(excerpt_tokenizer, tmp_path / "tok")  # the session's: trained with these settings, vocab 8000
    argv = ["--data_dir", str(excerpt_data), "--output_dir", str(tmp_path / "tok")]
    assert tokenizer.main([*argv, "--vocab_size", "8000"]) == TokenizerReport.load(excerpt_tokenizer)  # reused
    with pytest.raises(UserError, match="trained with other settings or data.*--overwrite_output_dir"):
        tokenizer.main([*argv, "--vocab_size", "5000"])
    assert len(AutoTokenizer.from_pretrained(str(tmp_path / "tok"))) == 8000
    with pytest.raises(UserError, match="holds no prepared data"):  # the data is read before any reuse
        tokenizer.main(["--data_dir", str(tmp_path / "absent"), "--output_dir", str(tmp_path / "tok")])
    tokenizer.main([*argv, "--vocab_size", "5000", "--num_samples", "5000", "--overwrite_output_dir"])
    assert len(AutoTokenizer.from_pretrained(str(tmp_path / "tok"))) == 5000


@pytest.mark.slow  # trains another tokenizer
def test_seed_and_num_samples_that_pick_nothing_do_not_count_as_changes(excerpt_data, excerpt_tokenizer, tmp_path):
    shutil.copytree(excerpt_tokenizer, tmp_path / "tok")  # the session's: --num_samples 10,000,000, --seed 42
    argv = ["--data_dir", str(excerpt_data), "--output_dir", str(tmp_path / "tok"), "--vocab_size", "8000"]
    model = (tmp_path / "tok" / "spiece.model").stat().st_mtime_ns
    first = tokenizer.main([*argv, "--num_samples", "1000000"])  # more than the excerpt holds: every sentence
    assert first == TokenizerReport.load(excerpt_tokenizer) and first.sentences_trained_on < 1000000  # reused
    again = tokenizer.main([*argv, "--num_samples", "2000000", "--seed", "7"])
    assert again == first and (tmp_path / "tok" / "spiece.model").stat().st_mtime_ns == model  # reused
    with pytest.raises(UserError, match=r"other settings or data \(num_samples 10000000 -> 15000, seed 42 -> 7\)"):
        tokenizer.main([*argv, "--num_samples", "15000", "--seed", "7"])  # a sample: the seed picks it
    with pytest.raises(UserError, match=r"other settings or data \(min_sentence_chars 5 -> 6, num_samples 10000000 -> "
                                        r"2000000, seed 42 -> 7\)"):
        tokenizer.main([*argv, "--num_samples", "2000000", "--seed", "7", "--min_sentence_chars", "6"])
    redone = tokenizer.main([*argv, "--num_samples", "2000000", "--seed", "7", "--overwrite_output_dir"])
    assert redone.identity["seed"] == 7 and redone.identity["num_samples"] == 2000000  # what it was made with


def test_a_tokenizer_another_run_finished_while_this_one_started_is_reused_not_retrained(
        excerpt_data, excerpt_tokenizer, tmp_path, monkeypatch):
    real_building = rerun.building

    @contextlib.contextmanager
    def another_run_finishes_first(target, **flags):  # between this run's reuse check and its taking the lock
        shutil.copytree(excerpt_tokenizer, target)
        with real_building(target, **flags) as build:
            yield build

    def never(*args):
        raise AssertionError("sampled and trained again")

    monkeypatch.setattr(rerun, "building", another_run_finishes_first)
    monkeypatch.setattr(tokenizer, "sample_sentences", never)
    reused = tokenizer.main(["--data_dir", str(excerpt_data), "--output_dir", str(tmp_path / "tok"),
                             "--vocab_size", "8000"])  # the settings excerpt_tokenizer was made with
    assert reused == TokenizerReport.load(excerpt_tokenizer)


def test_a_run_folder_is_never_taken_for_the_tokenizer_folder(excerpt_data, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(excerpt_data, run / "data")
    for flags in ([], ["--overwrite_output_dir"]):
        with pytest.raises(UserError, match="holds files this step did not write"):
            tokenizer.main(["--data_dir", str(run / "data"), "--output_dir", str(run), "--vocab_size", "3000",
                            *flags])
    assert sorted(p.name for p in run.iterdir()) == ["data"]
    assert (run / "data" / "dataset_dict.json").is_file()


@pytest.mark.parametrize("flags, message", [
    (["--vocab_size", "0"], "--vocab_size must be more than"),
    (["--num_samples", "0"], "--num_samples must be 1 or more"),
    (["--character_coverage", "2"], r"--character_coverage must be in \(0, 1\]"),
    (["--normalization_rule_name", "bogus"], "--normalization_rule_name must be one of identity"),
    (["--min_sentence_chars", "10", "--max_sentence_chars", "5"], "at most --max_sentence_chars"),
])
def test_out_of_range_values_are_refused_before_any_work(tmp_path, flags, message):
    with pytest.raises(UserError, match=message):
        tokenizer.main(["--data_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "tok"), *flags])


@pytest.mark.slow  # trains another tokenizer
@pytest.mark.parametrize("small_disk", ["100k"], indirect=True)
def test_out_of_space_names_the_folder(excerpt_data, small_disk):
    with pytest.raises(UserError, match=r"ran out of space while writing .*disk/tok"):
        tokenizer.main(["--data_dir", str(excerpt_data), "--output_dir", str(small_disk / "tok"),
                        "--vocab_size", "4000"])
    assert list(small_disk.iterdir()) == []


@pytest.mark.slow  # trains another tokenizer
def test_a_killed_run_then_the_same_command_gives_the_same_tokenizer(excerpt_data, tmp_path, command):
    settings = ["--data_dir", str(excerpt_data), "--vocab_size", "8000", "--num_samples", "5000"]
    argv = ["tokenizer.py", *settings, "--output_dir", str(tmp_path / "runs" / "tok")]
    kill_when(argv, (tmp_path / "runs" / ".tok.partial").exists)  # while it samples or SentencePiece trains
    assert not (tmp_path / "runs" / "tok").exists()
    assert command(tokenizer.main, argv[1:]).returncode == 0  # the same command, here: the kill was apart
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["tok"]
    tokenizer.main([*settings, "--output_dir", str(tmp_path / "never_killed")])
    assert (tmp_path / "runs" / "tok" / "spiece.model").read_bytes() == (
        tmp_path / "never_killed" / "spiece.model").read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["while it imports", "while it counts the sentences",
                                    "while SentencePiece trains"])
def test_ctrl_c_at_any_moment_exits_130_in_one_line_and_stops_sentencepiece_at_once(excerpt_data, tmp_path,
                                                                                    moment):
    job = Script(["tokenizer.py", "--data_dir", str(excerpt_data), "--output_dir", str(tmp_path / "tok"),
                  "--vocab_size", "8000"], tmp_path / "job.log")
    started = time.time()
    job.wait_until({
        "while it imports": lambda: time.time() > started + 1,  # transformers takes seconds to load
        "while it counts the sentences": lambda: "Counting sentences" in job.output(),
        "while SentencePiece trains": lambda: children_of(job.process.pid),  # its trainer runs apart
    }[moment], timeout=120)
    members = descendants(job.process.pid)
    job.ctrl_c()
    assert job.wait(timeout=60) == 130, job.output()[-3000:]
    assert "Traceback" not in job.output(), job.output()[-3000:]
    assert job.output().strip().splitlines()[-1].endswith("error: Interrupted (Ctrl-C); rerun the same command "
                                                          "to go on.")
    assert not [pid for pid in members if alive(pid)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.log"]
