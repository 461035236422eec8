import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import SHARED_DATA  # noqa: E402

EXCERPT = SHARED_DATA / "jawiki-20220720-pages-articles-excerpt.xml.bz2"
FIRST20 = SHARED_DATA / "jawiki-20220720-pages-articles-first20.xml.bz2"


def shared_file(path):
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared jawiki excerpt lies beside the repository (../shared)")
    return path


@pytest.fixture
def excerpt():
    return shared_file(EXCERPT)


@pytest.fixture
def first20():
    return shared_file(FIRST20)
