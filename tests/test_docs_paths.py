"""Every repository file, folder and module that README.md and docs/*.md name (in backticks, code blocks or links)
exists, and every relative link lands on a page, and a heading, that is there: a renamed module or a moved
section fails here, not in a reader's hands.

What is checked, token by token (a code span or code block is split at white space, quotes, brackets, '=' and ','):
- a dotted module path of this repository (`gpt2ja.tokens`, `benchmarks.gpu_check`, `gpt2ja.wikitext.CLEANER_VERSION`):
  the module exists, and so does the first name after it, at the module's top level;
- a path whose first folder is a top-level folder of the repository (`gpt2ja/speed.py`, `docs/nothere.md`,
  `benchmarks/data/list_items_seed*.tsv`): it exists (a glob matches something);
- any other path ending in a source or docs suffix (.py, .md, .yaml, .j2): it exists, from the repository root;
- a bare file name with such a suffix (`train.py`, `fast.yaml`): some file of the repository has that name.
Not checked: URLs, flags, what a run creates or a user fills in (`runs/...`, `../shared/...`, `my_texts/`, names with
USER or <...> in them), Hub ids (`colorfulscoop/gpt2-small-ja`: no top-level folder of ours) and the files a run
writes without a folder (`config.json`, `run_info.json`: not a checked suffix).
"""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCED_BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)
TOKEN_SEPARATORS = re.compile(r"""[\s"'(),=]+""")
MODULE = re.compile(r"(gpt2ja|benchmarks|tests)(\.[A-Za-z_]\w*)+")
CHECKED_SUFFIXES = (".py", ".md", ".yaml", ".j2")
MADE_BY_A_RUN = ("runs/", "../shared/", "my_texts/")
PLACEHOLDER = re.compile(r"USER|<|>|\b(NAME|DIR|FILE|PATH|RUN_DIR|MODEL|TAG|REV|RECIPE|SCRIPT)\b")
GLOB = re.compile(r"[*?\[]")
SKIPPED_FOLDERS = {".git", ".venv", "runs", "__pycache__", "node_modules"}


def repository_files(root):
    """Every file under root, hidden folders, run folders and virtual environments left out."""
    found, folders = [], [root]
    while folders:
        for entry in folders.pop().iterdir():
            if entry.is_dir():
                if entry.name not in SKIPPED_FOLDERS and not entry.name.startswith("."):
                    folders.append(entry)
            else:
                found.append(entry)
    return found


def slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation but '-' and '_' dropped, spaces as '-'."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown):
    """The anchors of a page's headings (outside code blocks), numbered as GitHub numbers repeated ones."""
    seen, found = {}, set()
    for heading in HEADING.findall(FENCED_BLOCK.sub("", markdown)):
        base = slug(heading)
        found.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return found


def code_tokens(markdown):
    """The tokens of the code blocks and of the code spans outside them."""
    blocks = FENCED_BLOCK.findall(markdown)
    spans = CODE_SPAN.findall(FENCED_BLOCK.sub("", markdown))
    return [token for code in blocks + spans for token in TOKEN_SEPARATORS.split(code) if token]


def top_level_names(module_file):
    tree = ast.parse(module_file.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def module_problem(dotted, root):
    """Why a dotted name of this repository does not resolve, or None."""
    parts = dotted.split(".")
    folder = root
    for index, part in enumerate(parts):
        if (folder / part).is_dir():
            folder = folder / part
            continue
        if (folder / f"{part}.py").is_file():
            rest = parts[index + 1:]
            if rest and rest[0] not in top_level_names(folder / f"{part}.py"):
                return f"{dotted}: {'.'.join(parts[:index + 1])} has no {rest[0]}"
            return None
        return f"{dotted}: no module {'/'.join(parts[:index + 1])}.py"
    return None


def path_problem(token, root, names):
    """Why a token that names a repository path does not, or None (also for tokens that are no such path)."""
    token = token.rstrip(".:;")
    if "://" in token or token.startswith(("-", "mailto:")) or PLACEHOLDER.search(token):
        return None
    if MODULE.fullmatch(token) and "/" not in token:
        return module_problem(token, root)
    if token.startswith(MADE_BY_A_RUN) or token.startswith((".", "/")):  # also an absolute path, a URL path
        return None
    if "/" in token:
        first = token.split("/")[0]
        if not ((root / first).is_dir() or token.endswith(CHECKED_SUFFIXES)):
            return None  # a Hub id, or a folder a run makes (model/, checkpoints/, backup/...)
        if GLOB.search(token):
            return None if list(root.glob(token)) else f"{token}: matches nothing"
        return None if (root / token).exists() else f"{token}: no such file or folder"
    if token.endswith(CHECKED_SUFFIXES) and not GLOB.search(token):
        return None if token in names else f"{token}: no file of that name"
    return None


def link_problem(target, page, markdown, root):
    """Why a Markdown link of page (whose text is markdown) does not land, or None; URLs are not followed."""
    if "://" in target or target.startswith("mailto:"):
        return None
    path, _, anchor = target.partition("#")
    if not path:
        return None if anchor in anchors(markdown) else f"link {target}: no heading #{anchor} on this page"
    landing = (page.parent / path).resolve()
    if not landing.exists():
        return f"link {target}: no {landing.relative_to(root) if root in landing.parents else landing}"
    if anchor and landing.suffix == ".md" and anchor not in anchors(landing.read_text(encoding="utf-8")):
        return f"link {target}: {landing.name} has no heading #{anchor}"
    return None


def problems(page, root, markdown=None):
    markdown = page.read_text(encoding="utf-8") if markdown is None else markdown
    names = {path.name for path in repository_files(root)}
    found = [path_problem(token, root, names) for token in code_tokens(markdown)]
    found += [link_problem(target, page, markdown, root) for target in LINK.findall(FENCED_BLOCK.sub("", markdown))]
    return sorted({problem for problem in found if problem})


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_path_a_page_names_exists(page):
    assert problems(page, REPO) == []


# --- the checker itself ---------------------------------------------------------------------------

def check(markdown, page="docs/page.md"):
    return problems(REPO / page, REPO, markdown)


def test_stale_files_modules_and_links_are_found():
    markdown = "\n".join([
        "The table is in `gpt2ja/nothere.py`; see `docs/nothere.md` and [a page](nothere.md).",
        "Run `python -m benchmarks.nothere_bench`; the constant `gpt2ja.wikitext.NO_SUCH_NAME`.",
        "[Costs](costs.md#no-such-heading), [the README](../README.md#no-such-section), `gone.py`.",
        "```bash", "python nothere.py --data_dir runs/x && cat configs/gone.yaml", "```",
        "`benchmarks/data/nothere_seed*.tsv`",
    ])
    assert check(markdown) == sorted([
        "benchmarks.nothere_bench: no module benchmarks/nothere_bench.py",
        "benchmarks/data/nothere_seed*.tsv: matches nothing",
        "configs/gone.yaml: no such file or folder",
        "docs/nothere.md: no such file or folder",
        "gone.py: no file of that name",
        "gpt2ja.wikitext.NO_SUCH_NAME: gpt2ja.wikitext has no NO_SUCH_NAME",
        "gpt2ja/nothere.py: no such file or folder",
        "link ../README.md#no-such-section: README.md has no heading #no-such-section",
        "link costs.md#no-such-heading: costs.md has no heading #no-such-heading",
        "link nothere.md: no docs/nothere.md",
        "nothere.py: no file of that name",
    ])


def test_what_a_run_makes_or_a_user_names_is_not_a_repository_path():
    markdown = "\n".join([
        "`runs/demo/model`, `USER/NAME`, `my_texts/*.txt`, `../shared/data/ja/`, `--dump`, `.xml.bz2`,",
        "`colorfulscoop/gpt2-small-ja`, `model/run_info.json`, `checkpoints/`, `RUN_DIR/token_cache/<hash>/`,",
        "`config.json`, `/generate`, `benchmarks.NAME`, `pipeline(\"text-generation\", model=\"USER/gpt2-small-ja\")`, `hub/`, [hf](https://huggingface.co/x).",
        "```bash", "mv backup/last-checkpoint runs/reference/checkpoints/checkpoint-$step", "```",
    ])
    assert check(markdown) == []


def test_what_is_there_passes():
    markdown = "\n".join([
        "`gpt2ja/speed.py`, `gpt2ja.tokens`, `gpt2ja.wikitext.CLEANER_VERSION`, `python -m benchmarks.gpu_check`,",
        "`benchmarks/data/list_items_seed*.tsv`, `train.py`, `fast.yaml`, `metrics/out_of_domain/`, `space/`,",
        "[Costs](costs.md), [training](training.md#resume-backups-and-several-gpus), [up](../README.md#two-commands),",
        "[this page's own heading](#a-heading), ![curve](demo_curve.png)", "", "## A heading",
    ])
    assert check(markdown) == []


def test_anchors_follow_github():
    assert anchors("# Options\n## `push_to_hub.py`\n```\n# not a heading\n```\n## Two\n## Two\n") == {
        "options", "push_to_hubpy", "two", "two-1"}
    assert slug("How much prose is kept (`python -m benchmarks.prose_recall_bench`)") == \
        "how-much-prose-is-kept-python--m-benchmarksprose_recall_bench"
