"""gpt2ja.licenses: Hub license ids, a dump's license by its date, and what ShareAlike data and base models allow."""

import re

import pytest

from gpt2ja.errors import UserError
from gpt2ja.licenses import choose_license, hub_license, wikipedia_license

BASE = {"name": "tester/base", "revision": "a" * 40, "fingerprint": "c" * 64, "license": "cc-by-sa-4.0"}


DUMP_3, DUMP_4 = wikipedia_license("20220720"), wikipedia_license("20230620")


@pytest.mark.parametrize("requested, data, base, chosen", [
    (None, DUMP_3, None, "cc-by-sa-3.0"),  # a dump, as before: its date's license
    (None, DUMP_4, None, "cc-by-sa-4.0"),
    ("cc-by-sa-3.0", DUMP_3, None, "cc-by-sa-3.0"),
    ("cc-by-sa-4.0", DUMP_3, None, "cc-by-sa-4.0"),  # a later version of the same license
    (None, DUMP_3, "cc-by-sa-4.0", "cc-by-sa-4.0"),  # the later of the two, which both allow
    (None, DUMP_3, "mit", "cc-by-sa-3.0"),
    ("mit", None, None, "mit"),  # the user's own text: their choice
    ("apache-2.0", None, "mit", "apache-2.0"),
    ("other", None, None, "other"),
    ("mit", None, "unknown-to-us", "mit"),  # a license we cannot read: the card states it beside ours
    ("cc-by-sa-4.0", None, "cc-by-sa-3.0", "cc-by-sa-4.0"),
    ("cc-by-nc-sa-4.0", None, "cc-by-nc-sa-4.0", "cc-by-nc-sa-4.0"),
])
def test_the_license_is_the_one_asked_for_or_the_dumps_where_sharealike_allows_it(requested, data, base, chosen):
    base_model = {**BASE, "license": base} if base else None
    assert choose_license(requested, data, base_model).hub_id == chosen


@pytest.mark.parametrize("requested, data, base, message", [
    (None, None, None, "--license is required for a model trained on your own text"),
    (None, None, "cc-by-sa-4.0", "--license is required for a model trained on your own text"),
    ("mit", DUMP_3, None, "--license mit is refused: the training data is under CC BY-SA 3.0, whose ShareAlike "
                          "terms ask that what is made from it be under cc-by-sa-3.0 or cc-by-sa-4.0."),
    ("cc-by-sa-3.0", DUMP_4, None, "--license cc-by-sa-3.0 is refused: the training data is under CC BY-SA 4.0"),
    ("cc-by-4.0", DUMP_4, None, "--license cc-by-4.0 is refused: the training data is under CC BY-SA 4.0"),
    ("cc-by-nc-sa-4.0", DUMP_4, None, "--license cc-by-nc-sa-4.0 is refused"),
    ("cc-by-sa-3.0", None, "cc-by-sa-4.0", "--license cc-by-sa-3.0 is refused: the base model tester/base is under "
                                           "CC BY-SA 4.0, whose ShareAlike terms ask that what is made from it be "
                                           "under cc-by-sa-4.0."),
    ("mit", None, "cc-by-sa-3.0", "--license mit is refused: the base model tester/base is under CC BY-SA 3.0"),
    ("cc-by-sa-4.0", DUMP_3, "cc-by-nc-sa-4.0", "the base model tester/base is under CC BY-NC-SA 4.0"),
    (None, DUMP_3, "cc-by-nc-sa-4.0", "The dump's license, cc-by-sa-3.0, is refused: the base model tester/base"),
])
def test_a_license_that_sharealike_data_or_base_model_forbids_is_refused_in_one_sentence(requested, data, base,
                                                                                        message):
    base_model = {**BASE, "license": base} if base else None
    with pytest.raises(UserError, match=re.escape(message)) as refusal:
        choose_license(requested, data, base_model)
    assert str(refusal.value).count(". ") == 0 and str(refusal.value).endswith(".")


def test_hub_license_ids_read_as_their_names_and_deeds():
    assert hub_license("cc-by-sa-3.0") == wikipedia_license("20220720")
    assert hub_license("cc-by-nc-sa-4.0").name == "CC BY-NC-SA 4.0"
    assert hub_license("cc-by-4.0").url == "https://creativecommons.org/licenses/by/4.0/"
    assert hub_license("mit") == ("mit", "mit", None, None)
