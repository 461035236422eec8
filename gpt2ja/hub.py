"""The Hugging Face Hub client as push_to_hub.py uses it: the token, repo ids, tags, failures in one sentence,
and one way to publish a staged folder: make the repo its mirror.

The token comes from HF_TOKEN or the stored login (`hf auth login`) and is never printed or written.
"""

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .hub_errors import first_line, http_status, is_local_file, network_errors
from .rerun import Record, file_fingerprint
from .run_folder import STAGING_RECORD

logger = logging.getLogger(__name__)


@dataclass
class StagingRecord(Record):
    """push_to_hub.py's record in a folder it staged: for which repo, from what."""

    FILE = STAGING_RECORD
    OTHER = "another staging"


def check_repo_id(flag, repo_id):
    """Refuse (ValueError, as an argument dataclass raises) what is not a Hub repo id of the form USER/NAME."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id
    if repo_id is None:
        return
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"{flag} {repo_id!r} is not a Hub repo id such as USER/NAME: "
                         f"{str(error).splitlines()[0]}") from None
    if "/" not in repo_id:
        raise ValueError(f"{flag} {repo_id!r} is not a Hub repo id such as USER/NAME: it names no user or "
                         "organization.")


@contextmanager
def hub_errors(api, what):
    """Turn the Hub client's failures into one sentence that says what to do."""
    from huggingface_hub.errors import HfHubHTTPError
    try:
        yield
    except HfHubHTTPError as error:
        status = http_status(error)
        if status == 401:
            raise UserError(f"The Hub refused the token (HTTP 401) for {what}: run `hf auth login` with a write "
                            "token or set HF_TOKEN.") from None
        if status == 403:
            raise UserError(f"The Hub refused to let this token write {what} (HTTP 403: "
                            f"{first_line(error)}): check the USER or organization part of the id (a "
                            "token writes under its own user and the organizations it may write to), or use a "
                            "token with write access.") from None
        raise UserError(f"The Hub answered HTTP {status} for {what} ({first_line(error)}); "
                        "rerun the same command to finish the upload.") from None
    except RuntimeError as error:
        # a large file's transfer, huggingface_hub's "Error while uploading 'model.safetensors' to the Hub."
        if not str(error).startswith("Error while uploading") or error.__cause__ is None:
            raise
        cause = error.__cause__
        status = getattr(getattr(cause, "response", None), "status_code", None)
        reason = f"HTTP {status}" if status else type(cause).__name__
        name = str(error).split("'")[1] if str(error).count("'") >= 2 else "a large file"
        raise UserError(f"The Hub failed while receiving {name} for {what} ({reason}); nothing was committed: "
                        "rerun the same command to finish the upload.") from None
    except ValueError as error:
        if not str(error).startswith("Invalid metadata"):
            raise
        # not the network: the same card would be refused again, so a rerun is no answer
        reasons = "; ".join(line.lstrip("- ") for line in str(error).splitlines()[1:]) or "no reason given"
        raise UserError(f"The Hub rejected the card's metadata for {what} ({reasons}); nothing was committed. "
                        "The card comes from push_to_hub.py and model_card/ (space/ for a Space): fix it there "
                        "(or report it), then push again.") from None
    except network_errors() as error:
        if is_local_file(error):
            raise  # no rerun will mend it
        raise UserError(f"Could not reach {api.endpoint} ({type(error).__name__}: {error}); check the network "
                        "and rerun the same command to finish the upload.") from None


def hub_api():
    from huggingface_hub import HfApi, get_token
    token = get_token()
    if not token:
        raise UserError("No Hugging Face token: run `hf auth login` with a write token, or set HF_TOKEN.")
    return HfApi(token=token)


def logged_in_user(api):
    with hub_errors(api, "the logged-in user"):
        return api.whoami()["name"]


def check_tag(api, repo_id, tag, move, staged):
    """What becomes of --revision_tag, decided before any upload (a tag names one published model): "create"
    where the repo has no such tag; "done" where it points at exactly the staged files already (a rerun of a
    push that finished: nothing to upload); "move" where it points at other files and `move` allows it.
    Anything else is refused, naming the files that differ."""
    with hub_errors(api, repo_id):
        if not api.repo_exists(repo_id):
            return "create"
        refs = api.list_repo_refs(repo_id)
        tagged = {ref.name: ref.target_commit for ref in refs.tags}.get(tag)
        if tagged is None:
            return "create"
        differing = files_differing(api, repo_id, tagged, staged)
    if not differing:
        main = next((ref.target_commit for ref in refs.branches if ref.name == "main"), tagged)
        if main != tagged:
            logger.warning("The tag %s of %s holds these files, but main has moved on to commit %s: main (what a "
                           "Space or a revision-less download loads) stays as it is.", tag, repo_id, main[:12])
        return "done"
    if not move:
        names = ", ".join(differing[:5]) + (f" and {len(differing) - 5} more" if len(differing) > 5 else "")
        raise UserError(f"The tag {tag} of {repo_id} already points at commit {tagged[:12]}, whose files differ "
                        f"from these ({names}); pass --move_tag to move it to this upload, or another "
                        "--revision_tag.")
    return "move"


def files_differing(api, repo_id, revision, folder):
    """The paths where the repo at `revision` and the staged `folder` differ (a file on one side only, or
    other bytes, compared by the ids the Hub lists: git's blob id, or the sha256 of a large file)."""
    from huggingface_hub.hf_api import RepoFile
    from huggingface_hub.utils.sha import git_hash
    remote = {entry.path: entry for entry in api.list_repo_tree(repo_id, revision=revision, recursive=True)
              if isinstance(entry, RepoFile) and entry.path != ".gitattributes"}  # .gitattributes: the Hub's own
    local = {path.relative_to(folder).as_posix(): path for path in Path(folder).rglob("*") if path.is_file()}
    local.pop(STAGING_RECORD, None)  # never uploaded

    def same(name):
        entry = remote[name]
        if entry.lfs is not None:
            return entry.lfs.sha256 == file_fingerprint(local[name])
        return entry.blob_id == git_hash(local[name].read_bytes())

    return sorted((remote.keys() ^ local.keys()) | {name for name in remote.keys() & local.keys() if not same(name)})


def mirror_folder(api, folder, repo_id, repo_type, message, private, **create_options):
    """Create the repo if absent and commit the staged folder to it as its mirror: what the staging no longer
    holds leaves the repo in the same commit. Returns (repo URL, commit)."""
    with hub_errors(api, repo_id):
        url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **create_options)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                                   commit_message=message, ignore_patterns=[STAGING_RECORD], delete_patterns="*")
    return url, commit
