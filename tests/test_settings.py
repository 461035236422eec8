"""gpt2ja.settings: the reference settings agree with each other and with the reference recipe."""

import yaml

from gpt2ja.settings import (EXCERPT, FIRST20, REFERENCE_CONTEXT, REFERENCE_RECIPE, REPO_ROOT, SAMPLING, SHARED_DATA,
                             SPECIAL_IDS, SPECIAL_TOKENS)


def test_special_tokens_are_the_published_layout():
    assert set(SPECIAL_TOKENS.values()) == set(SPECIAL_IDS)
    assert sorted(SPECIAL_IDS.values()) == list(range(6))
    assert [SPECIAL_IDS[SPECIAL_TOKENS[k]] for k in ("pad_token", "unk_token", "bos_token", "eos_token")] == [0, 1, 2, 3]


def test_the_reference_recipe_is_gpt2_small_at_the_reference_context():
    recipe = yaml.safe_load(REFERENCE_RECIPE.read_text())
    assert recipe["n_positions"] == REFERENCE_CONTEXT == 1024


def test_sampling_is_nucleus_within_top_k():
    assert SAMPLING["do_sample"] and SAMPLING["top_k"] == 50 and SAMPLING["top_p"] == 0.95


def test_shared_data_is_found_beside_the_repository_whatever_the_working_directory():
    assert SHARED_DATA == REPO_ROOT.parent / "shared" / "data" / "ja"
    assert EXCERPT.parent == FIRST20.parent == SHARED_DATA
