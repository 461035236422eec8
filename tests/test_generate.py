"""generate.py: continuations of a prompt from a model folder."""

import pytest

import generate
from gpt2ja.settings import PROMPT

pytestmark = pytest.mark.slow  # uses the session's trained tiny model


def test_samples_continue_the_prompt_and_a_seed_repeats_them(tiny_model, capsys):
    argv = ["--model", str(tiny_model), "--num_return_sequences", "2", "--seed", "0", "--max_new_tokens", "8"]
    first = generate.main(argv)
    assert len(first) == 2 and all(t.startswith(PROMPT) and len(t) > len(PROMPT) for t in first)
    assert "--- 1\n" in capsys.readouterr().out
    assert generate.main(argv) == first


def test_options_reach_the_sampler(tiny_model):
    greedy = generate.main(["--model", str(tiny_model), "--no_do_sample", "--max_new_tokens", "8"])
    # top-k 1 keeps only the most likely token: sampling becomes greedy decoding, whatever the seed
    for seed in ("1", "2"):
        assert generate.main(["--model", str(tiny_model), "--top_k", "1", "--seed", seed,
                              "--max_new_tokens", "8"]) == greedy
    other = generate.main(["--model", str(tiny_model), "--prompt", "日本の首都は", "--no_do_sample",
                           "--max_new_tokens", "8"])
    assert other[0].startswith("日本の首都は")
