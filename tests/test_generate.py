"""generate.py: continuations of a prompt from a model folder."""

import shutil

import pytest

import generate
from gpt2ja.errors import UserError
from gpt2ja.settings import PROMPT



@pytest.mark.slow  # uses the session's trained tiny model
def test_samples_continue_the_prompt_and_a_seed_repeats_them(tiny_model, capsys):
    argv = ["--model", str(tiny_model), "--num_return_sequences", "2", "--seed", "0", "--max_new_tokens", "8"]
    first = generate.main(argv)
    assert len(first) == 2 and all(t.startswith(PROMPT) and len(t) > len(PROMPT) for t in first)
    assert "--- 1\n" in capsys.readouterr().out
    assert generate.main(argv) == first


@pytest.mark.slow
def test_options_reach_the_sampler(tiny_model):
    greedy = generate.main(["--model", str(tiny_model), "--no_do_sample", "--max_new_tokens", "8"])
    # top-k 1 keeps only the most likely token: sampling becomes greedy decoding, whatever the seed
    for seed in ("1", "2"):
        assert generate.main(["--model", str(tiny_model), "--top_k", "1", "--seed", seed,
                              "--max_new_tokens", "8"]) == greedy
    other = generate.main(["--model", str(tiny_model), "--prompt", "日本の首都は", "--no_do_sample",
                           "--max_new_tokens", "8"])
    assert other[0].startswith("日本の首都は")


@pytest.mark.slow
def test_a_prompt_and_new_tokens_beyond_the_context_are_refused_in_one_sentence(tiny_model):
    long_prompt = "日本の首都は東京である。" * 30  # the tiny model's context is 128 tokens
    with pytest.raises(UserError, match=r"The prompt is \d+ tokens long; with 50 new tokens that passes the model's "
                                        r"context of 128 tokens: shorten the prompt"):
        generate.main(["--model", str(tiny_model), "--prompt", long_prompt])
    with pytest.raises(UserError, match=r"with 127 new tokens .*: pass --max_new_tokens \d+ or fewer"):
        generate.main(["--model", str(tiny_model), "--max_new_tokens", "127"])
    assert generate.main(["--model", str(tiny_model), "--max_new_tokens", "100", "--seed", "0"])


def test_a_bad_model_is_one_sentence(excerpt_tokenizer, tmp_path, command, monkeypatch):
    with pytest.raises(UserError, match=r"holds no model \(config.json\)"):
        generate.main(["--model", str(excerpt_tokenizer)])
    checkpoint = tmp_path / "checkpoint-10"  # weights and config, no tokenizer
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(UserError, match=r"holds no tokenizer \(spiece.model\)"):
        generate.main(["--model", str(checkpoint)])
    for name in ("spiece.model", "tokenizer_config.json", "special_tokens_map.json"):  # the weights never came
        if (excerpt_tokenizer / name).is_file():
            shutil.copy(excerpt_tokenizer / name, checkpoint / name)
    with pytest.raises(UserError, match=r"checkpoint-10 does not load \(.*\); copy the model/ folder"):
        generate.main(["--model", str(checkpoint)])
    # a name that is no folder here is tried as a Hub id (offline here): one sentence, exit 1, no traceback
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    out = command(generate.main, ["--model", str(tmp_path / "absent")])
    assert out.returncode == 1 and out.stderr.strip().startswith("error: "), out.stderr
    assert "neither a folder here nor a model the Hub gave" in out.stderr


@pytest.mark.parametrize("flags, message", [
    (["--max_new_tokens", "-1"], "--max_new_tokens and --num_return_sequences must be 1 or more"),
    (["--top_p", "1.5"], "--top_p must be in"),
    (["--temperature", "0"], "--temperature must be more than 0"),
])
def test_out_of_range_values_are_refused_before_loading_anything(flags, message):
    with pytest.raises(UserError, match=message):
        generate.main(flags)


def test_the_unknown_token_is_kept_as_a_marker_and_the_other_special_tokens_are_not(excerpt_tokenizer):
    from gpt2ja.tokenizer_folder import load_tokenizer
    tokenizer = load_tokenizer(excerpt_tokenizer)
    ids = tokenizer("日本😀の首都は", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    assert tokenizer.unk_token_id in ids
    decoded = tokenizer.decode(ids, skip_special_tokens=False)
    assert generate.shown_unknowns(tokenizer, decoded) == "日本<unk>の首都は"


@pytest.mark.slow
def test_new_unknown_tokens_show_as_unk_and_are_counted(unk_model, capsys):
    (text,) = generate.main(["--model", str(unk_model), "--seed", "0", "--max_new_tokens", "5"])
    assert text == PROMPT + "<unk>" * 5
    assert "5 of the new tokens are <unk>: text the tokenizer has no piece for" in capsys.readouterr().err
