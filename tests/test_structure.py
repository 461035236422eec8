"""Imports run one way: scripts -> gpt2ja -> third-party. A script never imports another script
(demo.py, which chains them, excepted); a benchmark imports at most the script it measures."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = {p.stem for p in REPO.glob("*.py")}
LIBRARY = sorted((REPO / "gpt2ja").glob("*.py"))
BENCHMARKS = sorted((REPO / "benchmarks").glob("*.py"))
TEST_MODULES = {p.stem for p in (REPO / "tests").glob("*.py")}


def imported(path):
    """The top-level names of every module a file imports (relative imports as 'gpt2ja')."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("gpt2ja" if node.level else node.module.split(".")[0])
    return names


def test_the_four_scripts_and_their_helpers_are_at_the_top_level():
    assert {"prepare_data", "tokenizer", "train", "push_to_hub", "generate", "demo"} <= SCRIPTS
    assert len(LIBRARY) >= 7 and len(BENCHMARKS) >= 3


@pytest.mark.parametrize("script", sorted(SCRIPTS - {"demo"}))
def test_no_script_imports_another_script(script):
    assert not imported(REPO / f"{script}.py") & (SCRIPTS - {script})


def test_demo_chains_the_scripts_through_their_main():
    assert imported(REPO / "demo.py") & SCRIPTS == {"prepare_data", "tokenizer", "train", "push_to_hub", "generate"}


@pytest.mark.parametrize("module", LIBRARY, ids=lambda p: p.name)
def test_the_library_imports_no_script_and_no_test(module):
    assert not imported(module) & (SCRIPTS | TEST_MODULES)


@pytest.mark.parametrize("benchmark", BENCHMARKS, ids=lambda p: p.name)
def test_a_benchmark_imports_at_most_the_script_it_measures(benchmark):
    # the GPU check measures train.py; the scale benchmark every stage of the data and the tokenizer
    measured = {"gpu_check": {"train"}, "scale_bench": {"prepare_data", "tokenizer"}}.get(
        benchmark.stem, {benchmark.stem.removesuffix("_bench")})
    assert imported(benchmark) & SCRIPTS <= measured
    assert not imported(benchmark) & TEST_MODULES
    assert '"tests"' not in benchmark.read_text(encoding="utf-8")  # no test helpers on sys.path
