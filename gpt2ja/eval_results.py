"""lm-eval result files on the model card: the published model's own as model-index entries and a table,
other models' as a comparison table beside it (never in the model-index, which speaks for this model only).

A result file is what `lm-eval run --output_path` writes (results_<date>.json). The tasks read here are the
multiple-choice ones of lm-eval's japanese_leaderboard (metrics/lm_eval_tasks/ja_leaderboard_mc.yaml runs
them); other tasks in a file (jawiki, whose figures the card has from train.py) are left aside.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional

from .errors import UserError

logger = logging.getLogger(__name__)

METRIC = "acc,none"  # the accuracy every multiple-choice task reports, under lm-eval's default filter
STDERR = "acc_stderr,none"
LM_EVAL_URL = "https://github.com/EleutherAI/lm-evaluation-harness"


class Benchmark(NamedTuple):
    title: str
    hub_task: str  # the Hub's task type
    dataset_id: str
    dataset_config: str
    split: str  # the split lm-eval's task scores
    choices: int  # a uniform guess scores 1 / choices


# the Hub dataset each task's rows come from (the JGLUE ones read through its Parquet conversion)
BENCHMARKS = {
    "ja_leaderboard_jcommonsenseqa": Benchmark("JCommonsenseQA", "multiple-choice", "Rakuten/JGLUE",
                                               "JCommonsenseQA", "validation", 5),
    "ja_leaderboard_jnli": Benchmark("JNLI", "text-classification", "Rakuten/JGLUE", "JNLI", "validation", 3),
    "ja_leaderboard_marc_ja": Benchmark("MARC-ja", "text-classification", "Rakuten/JGLUE", "MARC-ja", "validation",
                                        2),
    "ja_leaderboard_xwinograd": Benchmark("XWinograd (ja)", "multiple-choice", "polm-stability/xwinograd-ja",
                                          "default", "test", 2),
}


class Score(NamedTuple):
    task: str
    version: str  # the task's version in lm-eval
    shots: int
    accuracy: float
    stderr: Optional[float]


def model_arguments(model_args):
    """lm-eval's --model_args as a dict: it records them as the string given (a=1,b=2) or as a dict."""
    if isinstance(model_args, dict):
        return {key: str(value) for key, value in model_args.items()}
    pairs = (item.split("=", 1) for item in (model_args or "").split(",") if "=" in item)
    return {key.strip(): value.strip() for key, value in pairs}


@dataclass
class ResultFile:
    """One lm-eval result file: which model, how it was run, and its scores on the known tasks."""
    path: Path
    pretrained: str
    model_args: dict
    lm_eval_version: str
    scores: dict  # task name -> Score

    @classmethod
    def read(cls, path, flag):
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            config, results = data["config"], data["results"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UserError(f"{flag} {path} is not an lm-eval result file ({type(error).__name__}: {error}); "
                            "give the results_*.json that lm-eval run --output_path wrote.") from None
        model_args = model_arguments(config.get("model_args"))
        if not model_args.get("pretrained"):
            raise UserError(f"{flag} {path} names no model (its config has no pretrained= in model_args); give a "
                            "file of an lm-eval run with --model hf --model_args pretrained=MODEL.")
        if config.get("limit"):
            raise UserError(f"{flag} {path} scored only part of each task (--limit {config['limit']}); rerun "
                            "lm-eval without --limit: the card's scores are on whole splits.")
        scores = {task: Score(task, str(data.get("versions", {}).get(task)), int(data.get("n-shot", {}).get(task, 0)),
                              results[task][METRIC], results[task].get(STDERR))
                  for task in BENCHMARKS if METRIC in results.get(task, {})}
        left_aside = sorted(set(results) - set(BENCHMARKS) - set(data.get("group_subtasks", {})))
        if left_aside:
            logger.info("%s: %s left aside (not a multiple-choice task of the card).", path, ", ".join(left_aside))
        if not scores:
            raise UserError(f"{flag} {path} holds none of the tasks the card shows ({', '.join(BENCHMARKS)}); run "
                            "lm-eval with --tasks ja_leaderboard_mc (docs/evaluation.md).")
        return cls(path, model_args["pretrained"], model_args, str(data.get("lm_eval_version", "unknown")), scores)

    def names(self, model_dir, repo_id):
        """Whether the file is of the model in model_dir, or of the Hub repo repo_id."""
        return self.pretrained == repo_id or Path(self.pretrained).resolve() == Path(model_dir).resolve()


def read_ours(paths, model_dir, repo_id):
    """The model's own results, refused unless each file names it (its model folder or its repo) and no task
    is scored twice."""
    ours = {}
    for result in (ResultFile.read(path, "--eval_results") for path in paths):
        if not result.names(model_dir, repo_id):
            raise UserError(f"--eval_results {result.path} is of {result.pretrained}, not of the model being "
                            f"published ({model_dir} or {repo_id}); give another model's file with --compare_results.")
        twice = sorted(set(result.scores) & set(ours))
        if twice:
            raise UserError(f"--eval_results {result.path} scores {', '.join(twice)} again; give one file per task.")
        ours.update({task: (score, result) for task, score in result.scores.items()})
    return ours


def read_theirs(paths, ours, model_dir, repo_id):
    """Other models' results, refused where a task's name, version or few-shot count differs from ours (the
    scores would not compare; prefix_token_id may differ: it is each model's own end-of-text id)."""
    theirs = []
    for result in (ResultFile.read(path, "--compare_results") for path in paths):
        if result.names(model_dir, repo_id):
            raise UserError(f"--compare_results {result.path} is of the model being published; give it with "
                            "--eval_results.")
        for task, score in result.scores.items():
            mine = ours.get(task, (None,))[0]
            if mine is None or (mine.version, mine.shots) != (score.version, score.shots):
                have = f"version {mine.version}, {mine.shots}-shot" if mine else "no score"
                raise UserError(f"--compare_results {result.path} scores {task} version {score.version}, "
                                f"{score.shots}-shot, where ours has {have}; rerun it with the same task and "
                                "few-shot count, or leave that file out.")
        theirs.append(result)
    return theirs


def model_index_entries(ours, source_url=None):
    """huggingface_hub EvalResults of our scores: the task's dataset as the Hub names it, accuracy, and the
    lm-eval version, task and few-shot count as the metric's arguments; the source, the training code (which
    holds the task group) where its address is known, else lm-eval."""
    from huggingface_hub import EvalResult
    return [EvalResult(task_type=BENCHMARKS[task].hub_task, task_name=f"{BENCHMARKS[task].title} (lm-eval {task})",
                       dataset_type=BENCHMARKS[task].dataset_id, dataset_name=BENCHMARKS[task].title,
                       dataset_config=BENCHMARKS[task].dataset_config, dataset_split=BENCHMARKS[task].split,
                       metric_type="accuracy", metric_name=f"Accuracy ({score.shots}-shot)",
                       metric_value=round(score.accuracy, 4),
                       metric_args={"lm_eval_version": result.lm_eval_version, "task": task,
                                    "task_version": score.version, "num_fewshot": score.shots},
                       source_name=f"lm-evaluation-harness {result.lm_eval_version}",
                       source_url=source_url or LM_EVAL_URL)
            for task, (score, result) in ours.items()]


def model_label(pretrained):
    """A model as the card names it: a Hub id linked; a folder by its last two names (a local path stays off
    a public card)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id
    if not Path(pretrained).is_absolute() and not Path(pretrained).exists():
        try:
            validate_repo_id(pretrained)
            return f"[{pretrained}](https://huggingface.co/{pretrained})"
        except HFValidationError:
            pass
    return f"`{'/'.join(Path(pretrained).parts[-2:])}` (a local folder)"


def settings(result):
    """How a file's run was made, as the card says it: lm-eval's version and the model's arguments."""
    args = ", ".join(f"{key}={value}" for key, value in result.model_args.items() if key != "pretrained")
    return f"lm-eval {result.lm_eval_version}" + (f", {args}" if args else "")


def markdown(ours, theirs, repo_id):
    """The card's section: our scores, then other models' on the same tasks where any were given."""
    tasks = list(ours)
    header = "| model | " + " | ".join(f"{BENCHMARKS[t].title} ({ours[t][0].shots}-shot)" for t in tasks) + " |"
    rule = "| --- |" + " --- |" * len(tasks)
    ours_row = f"| **{repo_id}** (this model) | " + " | ".join(
        f"{ours[t][0].accuracy:.4f}" + (f" ± {ours[t][0].stderr:.4f}" if ours[t][0].stderr else "") for t in tasks) + " |"
    lines = ["## Japanese tasks (lm-eval)", "",
             "Accuracy on the multiple-choice tasks of lm-evaluation-harness's `japanese_leaderboard`, with their "
             "own prompts and few-shot counts (± the standard error lm-eval reports), run with `lm-eval run --tasks "
             "ja_leaderboard_mc --include_path metrics/lm_eval_tasks` of the training code (its docs/evaluation.md "
             "gives each task's majority class). This model's run: "
             + "; ".join(sorted({settings(result) for _, result in ours.values()})) + ".", "",
             header, rule, ours_row]
    for result in theirs:
        lines.append(f"| {model_label(result.pretrained)} | " + " | ".join(
            f"{result.scores[t].accuracy:.4f}" if t in result.scores else "–" for t in tasks) + " |")
    lines.append("| uniform guess | " + " | ".join(f"{1 / BENCHMARKS[t].choices:.4f}" for t in tasks) + " |")
    if theirs:
        lines += ["", "The other models' rows come from lm-eval result files that the publisher of this model "
                  "gave, not from those models' authors, on the same tasks, task versions and few-shot counts: "
                  + "; ".join(f"{model_label(result.pretrained)} with {settings(result)}" for result in theirs)
                  + ". They are not part of this model's metadata."]
    return "\n".join(lines) + "\n"


@dataclass
class Downstream:
    """What the card shows of the lm-eval result files given: model-index entries and a Markdown section."""
    ours: dict  # task -> (Score, ResultFile)
    theirs: list  # ResultFile

    @classmethod
    def read(cls, eval_results, compare_results, model_dir, repo_id):
        if compare_results and not eval_results:
            raise UserError("--compare_results needs --eval_results: other models' rows compare with this model's.")
        if not eval_results:
            return None
        ours = read_ours(eval_results, model_dir, repo_id)
        return cls(ours, read_theirs(compare_results or [], ours, model_dir, repo_id))

    def eval_results(self, source_url=None):
        return model_index_entries(self.ours, source_url)

    def markdown(self, repo_id):
        return markdown(self.ours, self.theirs, repo_id)
