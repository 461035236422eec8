"""The shape of the repository: imports run one way (scripts -> gpt2ja -> third-party), a script never imports
another script (demo.py, which chains them, excepted), a benchmark imports at most the script it measures, the
library is an installable package that nothing puts on sys.path by hand, and each of its modules has its tests."""

import ast
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = {p.stem for p in REPO.glob("*.py")}
LIBRARY = sorted(p for p in (REPO / "gpt2ja").rglob("*.py") if p.name != "__init__.py")
PUBLISHING = {"gpt2ja.hub", "gpt2ja.cards"}
BENCHMARKS = sorted((REPO / "benchmarks").glob("*.py"))
TEST_MODULES = {p.stem for p in (REPO / "tests").glob("*.py")}
PYTHON_FILES = sorted(p for folder in ("", "gpt2ja", "tests", "benchmarks", "space", "metrics")
                      for p in (REPO / folder).glob("*.py" if not folder else "**/*.py"))


def imported(path):
    """The top-level names of every module a file imports (relative imports as 'gpt2ja')."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("gpt2ja" if node.level else node.module.split(".")[0])
    return names


def module_name(path):
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def library_imports(path):
    """The gpt2ja modules a library file imports, at its top or inside a function (relative imports resolved)."""
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.startswith("gpt2ja")}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            if module.startswith("gpt2ja"):
                names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return names


def test_the_four_scripts_and_their_helpers_are_at_the_top_level():
    assert {"prepare_data", "tokenizer", "train", "push_to_hub", "generate", "demo"} <= SCRIPTS
    assert len(LIBRARY) >= 10 and len(BENCHMARKS) >= 3


@pytest.mark.parametrize("script", sorted(SCRIPTS - {"demo"}))
def test_no_script_imports_another_script(script):
    assert not imported(REPO / f"{script}.py") & (SCRIPTS - {script})


def test_demo_chains_the_scripts_through_their_main():
    assert imported(REPO / "demo.py") & SCRIPTS == {"prepare_data", "tokenizer", "train", "push_to_hub", "generate"}


@pytest.mark.parametrize("script", sorted(SCRIPTS), ids=lambda name: f"{name}.py")
def test_a_script_tells_its_story_in_at_most_450_lines(script):
    # what grows beyond (provenance, publishing, helpers for tests) belongs in the library
    assert len((REPO / f"{script}.py").read_text(encoding="utf-8").splitlines()) <= 450


@pytest.mark.parametrize("module", LIBRARY, ids=lambda p: p.name)
def test_the_library_imports_no_script_and_no_test(module):
    assert not imported(module) & (SCRIPTS | TEST_MODULES | {"benchmarks"})


@pytest.mark.parametrize("module", [p for p in LIBRARY if module_name(p) not in PUBLISHING], ids=module_name)
def test_no_data_or_training_module_imports_a_publishing_one(module):
    # licences and Hub failures sit below every layer (gpt2ja.licenses, gpt2ja.hub_errors)
    assert not library_imports(module) & PUBLISHING


def test_the_import_reader_sees_relative_and_late_imports():
    assert {"gpt2ja.licenses", "gpt2ja.sources.base"} <= library_imports(REPO / "gpt2ja" / "sources" / "wikipedia.py")
    assert "gpt2ja.sources" in library_imports(REPO / "gpt2ja" / "base_model.py")  # inside a function


@pytest.mark.parametrize("module", LIBRARY, ids=module_name)
def test_every_library_module_has_a_test_file(module):
    # a module of a sub-package (gpt2ja/sources/) is tested in the package's file (tests/test_sources.py)
    owner = module.stem if module.parent == REPO / "gpt2ja" else module.parent.name
    assert (REPO / "tests" / f"test_{owner}.py").is_file()


@pytest.mark.parametrize("module", LIBRARY, ids=module_name)
def test_every_library_module_is_on_the_package_map(module):
    layout = (REPO / "docs" / "layout.md").read_text(encoding="utf-8")
    names = [module.name] + ([f"{module.parent.name}/"] if module.parent != REPO / "gpt2ja" else [])
    assert all(name in layout for name in names), "docs/layout.md, the one map of gpt2ja/, does not name it"


@pytest.mark.parametrize("benchmark", BENCHMARKS, ids=lambda p: p.name)
def test_a_benchmark_imports_at_most_the_script_it_measures(benchmark):
    # the GPU check measures train.py; the scale benchmark every stage of the data and the tokenizer
    measured = {"gpu_check": {"train"}, "gpu_compare": {"train"}, "scale_bench": {"prepare_data", "tokenizer"}}.get(
        benchmark.stem, {benchmark.stem.removesuffix("_bench")})
    assert imported(benchmark) & SCRIPTS <= measured
    assert not imported(benchmark) & TEST_MODULES


def test_no_file_puts_anything_on_sys_path_by_hand():
    assert len(PYTHON_FILES) > 50
    edits_of_the_path = tuple(f"sys.path.{verb}(" for verb in ("insert", "append"))  # (spelt so: not one itself)
    edits = [f"{p.relative_to(REPO)}:{n}" for p in PYTHON_FILES
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if any(edit in line for edit in edits_of_the_path)]
    assert edits == []


BUNDLED = ("model_card", "configs", "space", "metrics")  # the folders the library reads, carried in its wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The library's wheel, built from a copy of its sources (so that no build/ of an earlier build leaks in, and
    none is left in the checkout)."""
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "source"
    for path in [REPO / "pyproject.toml", REPO / "README.md", REPO / "LICENSE", *(REPO / "gpt2ja").rglob("*.py"),
                 *(p for name in BUNDLED for p in (REPO / name).rglob("*") if p.is_file() and "__pycache__" not in
                   p.parts)]:
        (source / path.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
        (source / path.relative_to(REPO)).write_bytes(path.read_bytes())
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                            "--wheel-dir", str(folder), str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    (built_wheel,) = folder.glob("gpt2ja-*.whl")
    return built_wheel


def test_a_wheel_of_the_library_holds_the_package_and_the_folders_it_reads(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {name for name in names if name.endswith(".py") and not name.startswith(
        tuple(f"gpt2ja/{folder}/" for folder in BUNDLED))}
    assert modules == {p.relative_to(REPO).as_posix() for p in (REPO / "gpt2ja").rglob("*.py")}
    for name in BUNDLED:
        tracked = {f"gpt2ja/{p.relative_to(REPO)}" for p in (REPO / name).rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts}
        assert tracked and tracked <= names, name
    assert not any(name.endswith(".pyc") for name in names)
    assert "gpt2ja-0.1.0.dist-info/licenses/LICENSE" in names


@pytest.mark.slow
def test_the_installed_wheel_renders_the_cards_and_finds_its_recipe_and_metric_outside_the_checkout(
        wheel, tiny_model, tmp_path):
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                                "--target", str(target), str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    script = f"""
from pathlib import Path
import gpt2ja
from gpt2ja import settings
from gpt2ja.cards import Example, Links, check_card_metadata, model_card, stage_space_files
from gpt2ja.licenses import wikipedia_license
from gpt2ja.model_folder import ModelFolder
print(gpt2ja.__file__)
for path in (settings.REFERENCE_RECIPE, settings.bundled("metrics") / "causal_lm_eval" / "causal_lm_eval.py"):
    assert path.is_file(), path
    print(path)
model = ModelFolder.check({str(tiny_model)!r})
card = model_card(model, Links("tester/m"), Example("近年の機械学習は…", 50), seed=0)
check_card_metadata(card)
card.save("README.md")
Path("space").mkdir()
stage_space_files("space", "tester/m", "tester/m-demo", wikipedia_license("20220720"))
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(target)})
    assert run.returncode == 0, run.stderr
    package, recipe, metric = run.stdout.split()
    for path in (package, recipe, metric):
        assert Path(path).is_relative_to(target), path
    assert "license: cc-by-sa-3.0" in (elsewhere / "README.md").read_text(encoding="utf-8")
    assert (elsewhere / "space" / "app.py").read_bytes() == (REPO / "space" / "app.py").read_bytes()


def test_the_readme_is_a_front_door_whose_links_lead_somewhere():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 15_000
    for page in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name} links to {target}, which is not there"


def test_the_code_is_apache_2_and_license_pyproject_citation_and_readme_agree():
    import tomllib

    import yaml
    assert (REPO / "LICENSE").read_text(encoding="utf-8").split()[:4] == ["Apache", "License", "Version", "2.0,"]
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["license"] == "Apache-2.0" and citation["version"] == project["version"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(citation["date-released"]))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    data_and_license = readme.split("## Data and license")[1].split("\n## ")[0]
    assert "**Apache License 2.0**" in data_and_license and "(LICENSE)" in data_and_license
    assert "CC BY-SA" in data_and_license and "no license file" not in data_and_license


def test_the_readme_opens_with_a_japanese_summary_and_names_the_venv_before_its_first_python_command():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    title, opening = readme.split("\n\n", 2)[:2]
    assert title == "# gpt2-small-ja" and opening.startswith("**日本語の概要**: ")
    assert "Apache License\n2.0" in opening or "Apache License 2.0" in opening
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    first_python = next(block for block in blocks if re.search(r"^(python|accelerate) ", block, re.M))
    assert readme.index("source .venv/bin/activate") < readme.index(first_python)
    assert readme.count("source .venv/bin/activate") == 1
