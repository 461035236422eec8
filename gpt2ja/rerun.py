"""How every step reruns: one record, one reuse-or-refuse, one locked scratch folder moved into place.

A step writes its output folder whole. It builds it in a scratch folder beside it, holding the folder's
lock, and moves it into place once complete, with its record in it (`Record.FILE`). The record's
`identity` is what the output is made of: its inputs by content and the settings that change it. A rerun
whose identity equals the recorded one reuses the output; one that differs is refused with what differs,
unless --overwrite_output_dir. A folder holding anything but the step's own output is never replaced.

Standard library only: the light modules (the dump reader) use it too.
"""

import ctypes
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional

from .errors import UserError

logger = logging.getLogger(__name__)


def file_fingerprint(path):
    """SHA-256 of a file's bytes, read 1 MiB at a time: a moved or copied file keeps its fingerprint."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --- records ---------------------------------------------------------------------------------------

@dataclass
class Record:
    """A step's record in its output folder. `identity` is compared by a rerun; the other fields are what the
    step measured. Subclasses name the file, how a refusal describes the output, and the entries the step
    writes beside the record (None: any)."""

    FILE: ClassVar[str] = "record.json"
    OTHER: ClassVar[str] = "output made otherwise"  # "<folder> holds <OTHER> (what differs)"
    ENTRIES: ClassVar[Optional[frozenset]] = None

    identity: dict

    def save(self, folder):
        Path(folder, self.FILE).write_text(
            json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False, default=str), encoding="utf-8")

    @classmethod
    def load(cls, folder):
        """The record of a folder, or None where it has none or one of a shape this version cannot read."""
        path = Path(folder, cls.FILE)
        if not path.is_file():
            return None
        try:
            fields = read_json(path)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        if not isinstance(fields, dict):
            return None
        fields = cls.upgrade(fields)
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        if not required <= set(fields) <= names or not isinstance(fields["identity"], dict):
            return None
        try:
            return cls.from_fields(fields)
        except (TypeError, ValueError):  # a nested record of another shape
            return None

    @classmethod
    def upgrade(cls, fields):
        """The fields of a record an earlier version wrote, under today's names."""
        if "identity" not in fields and "settings" in fields:  # what earlier versions called it
            fields["identity"] = fields.pop("settings")
        return fields

    @classmethod
    def from_fields(cls, fields):
        return cls(**fields)


def _is_fingerprint(value):
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def with_defaults(recorded, defaults):
    """A recorded identity with each key it lacks read as that key's value in `defaults` (nested alike): the one
    migration rule, so that a record written before a setting was compared still reads as the same run."""
    if not isinstance(recorded, dict) or not isinstance(defaults, dict):
        return recorded
    return {**defaults, **{key: with_defaults(value, defaults.get(key)) for key, value in recorded.items()}}


def _shown(value):
    return "a fingerprint" if _is_fingerprint(value) else "a list" if isinstance(value, list) else (
        "settings" if isinstance(value, dict) else repr(value))


def differences(recorded, current):
    """What differs between two identities, in words: "recipe (learning_rate 0.001 -> 0.0005), the data"; a key
    only one of them has is named as added or removed. Never empty where the two differ."""
    details = []
    for key in sorted(set(recorded) | set(current), key=str):
        if key not in recorded:
            details.append(f"{key} added ({_shown(current[key])})")
            continue
        if key not in current:
            details.append(f"{key} removed (was {_shown(recorded[key])})")
            continue
        old, new = recorded[key], current[key]
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            details.append(f"{key} ({differences(old, new)})")
        elif any(_is_fingerprint(v) or isinstance(v, (list, dict)) for v in (old, new)):
            details.append(f"the {key}")
        else:
            details.append(f"{key} {old!r} -> {new!r}")
    return ", ".join(details) or ("the same settings in another form" if recorded != current else "")


def same_identity(recorded, current, defaults=None):
    """(whether a recorded identity is this one, read by the migration rule; the recorded one as read)."""
    recorded = with_defaults(recorded, defaults or {})
    return recorded == current, recorded


def check_output_folder(folder, record_type, flag="--output_dir"):
    """Whether `folder` holds this step's earlier output: its record, and nothing the step did not write.

    An absent or empty folder is free (False). One that holds anything else (the current folder, a run
    folder, another step's output, a user's files) is refused in one sentence: a step replaces only its own
    output, and its --overwrite_output_dir deletes only that.
    """
    folder = Path(folder)
    if not folder.exists():
        return False
    if not folder.is_dir():
        raise UserError(f"{flag} {folder} is a file; pass a folder.")
    entries = {p.name for p in folder.iterdir()}
    if record_type.FILE not in entries:
        if entries:
            raise UserError(f"{flag} {folder} holds files this step did not write (it has no {record_type.FILE}); "
                            "a step replaces only its own output: pass a new or empty folder.")
        return False
    if record_type.ENTRIES is not None and entries - record_type.ENTRIES:
        foreign = ", ".join(sorted(entries - record_type.ENTRIES)[:4])
        raise UserError(f"{flag} {folder} holds {foreign} besides this step's output; a step replaces only its own "
                        "output: move those away, or pass another folder.")
    return True


def reuse_or_refuse(folder, record_type, identity, overwrite, flag="--output_dir", defaults=None):
    """The record of the output already in `folder` where its identity is this one (a key the record lacks read
    as its value in `defaults`), to reuse; None where there is nothing to reuse (no output, or
    --overwrite_output_dir). Output of other settings is refused, naming what differs; a folder holding anything
    else is refused whatever the flags."""
    if not check_output_folder(folder, record_type, flag) or overwrite:
        return None
    previous = record_type.load(folder)
    if previous is not None:
        same, recorded = same_identity(previous.identity, identity, defaults)
        if same:
            logger.info("%s already holds this output; reusing it (pass --overwrite_output_dir to redo it).", folder)
            return previous
    changed = differences(recorded, identity) if previous else "written by an older version"
    raise UserError(f"{folder} holds {record_type.OTHER} ({changed}); pass --overwrite_output_dir to replace it, "
                    f"or another {flag}.")


# --- disk errors -----------------------------------------------------------------------------------

def _free_bytes(folder):
    folder = Path(folder)
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


def _is_out_of_space(error, folder):
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # tokenizers (Rust) say it in words; torch's checkpoint writer only says its stream failed
    # ("iostream error", "unexpected pos"): then the disk being full is what tells
    text = str(error)
    return ("No space left on device" in text or "os error 28" in text
            or (isinstance(error, (OSError, RuntimeError)) and _free_bytes(folder) < 2**20))


@contextmanager
def disk_space_errors(folder, needed_bytes=None):
    """Turn running out of disk space while writing `folder` into one sentence that names it."""
    try:
        yield
    except Exception as error:
        if not _is_out_of_space(error, folder):
            raise
        needed = f" it needs about {needed_bytes / 2**20:,.0f} MiB," if needed_bytes else ""
        raise UserError(f"The disk ran out of space while writing {folder}:{needed} {_free_bytes(folder) / 2**20:,.0f} "
                        "MiB are free; free some space or pass a folder on another disk, then rerun.") from None


@contextmanager
def write_access_errors(folder, flag="--output_dir"):
    """Turn a folder that cannot be written (read-only filesystem, no permission) into one sentence."""
    try:
        yield
    except OSError as error:
        if error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        raise UserError(f"{flag} {folder} cannot be written ({error.strerror}); pass a folder you can write "
                        "to.") from None


# --- the lock --------------------------------------------------------------------------------------

PR_SET_PDEATHSIG = 1  # linux/prctl.h
_held = []  # (open lock file, pid of the holder) of this process
_libc = None


def _after_fork_in_child():
    """A process forked while its parent holds a folder's lock (datasets' and DataLoader's workers, a
    trainer run apart) drops its copy of the lock, so the lock goes when its holder dies; dies with its
    parent, so it never lingers; and leaves Ctrl-C, which a terminal sends to every process of the job, to
    its parent, which stops it."""
    if not _held:
        return
    holder = _held[0][1]
    for lock, _ in _held:
        lock.close()
    _held.clear()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != holder:  # the parent died before prctl took hold
            os._exit(1)


os.register_at_fork(after_in_child=_after_fork_in_child)


def _acquire(lock_path, wait):
    """An open file holding an exclusive flock on lock_path, or None where another process holds it. The
    holder removes the file when done, so a waiter that gets the lock of a file no longer at lock_path
    tries again with the new one."""
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        _libc = ctypes.CDLL(None, use_errno=True)
    while True:
        lock = open(lock_path, "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            lock.close()
            return None
        try:
            if os.stat(lock_path).st_ino == os.fstat(lock.fileno()).st_ino:
                _held.append((lock, os.getpid()))
                return lock
        except FileNotFoundError:
            pass
        lock.close()


def _release(lock, lock_path):
    try:  # removed by hand, another run may hold a new file there: leave that one alone
        if os.stat(lock_path).st_ino == os.fstat(lock.fileno()).st_ino:
            os.unlink(lock_path)
    except FileNotFoundError:
        pass
    _held[:] = [(held, pid) for held, pid in _held if held is not lock]
    lock.close()


# --- building an output folder ---------------------------------------------------------------------

def mount_point_error(target, flag):
    return UserError(f"{flag} {target} is a mount point, which cannot be renamed: a step builds its output beside "
                     f"the folder and renames it into place. Pass a folder inside it, such as {target / 'output'}.")


def move_into_place(finished, target, record_type, flag="--output_dir"):
    """Replace the folder `target` by `finished`, so that a later step never sees a half-written folder;
    `target` is replaced only if it is absent, empty, or this step's own output. The old output is renamed
    away before the new one takes its place, so a kill in between loses neither."""
    target = Path(target).resolve()  # a symlinked output folder: replace what it points at
    check_output_folder(target, record_type, flag)
    old = target.parent / f".{target.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    try:
        if target.exists():
            os.replace(target, old)
        os.replace(finished, target)
    except OSError as error:
        if error.errno != errno.EBUSY:  # a mount point ismount() does not see (a bind mount of the same disk)
            raise
        raise mount_point_error(target, flag) from None
    shutil.rmtree(old, ignore_errors=True)


class Build:
    """An output folder being built: `output` becomes the folder, `work` is room for what does not."""

    def __init__(self, target, work, flag):
        self.target, self.work, self.flag = target, work, flag
        self.output = work / "output"
        self.output.mkdir()

    def finish(self, record):
        """Write the record into the output and move the output into place."""
        record.save(self.output)
        move_into_place(self.output, self.target, type(record), self.flag)


@contextmanager
def building(target, wait=False, flag="--output_dir"):
    """Hold the lock of the folder `target` and yield a Build in a fresh scratch folder beside it.

    A second run on the same folder is refused in one sentence, or with wait=True (the processes of one
    training run, runs meeting at a token cache) waits its turn. The kernel drops the lock of a process that
    dies, and processes forked meanwhile neither keep it nor outlive their parent, so no lock is ever stale.
    Out of disk space, or a folder that cannot be written, is one sentence naming it. The scratch folder is
    removed at the end; one left by a killed run is removed by the next. Nothing moves into place unless
    Build.finish is called.
    """
    target = Path(target).resolve()  # "." has no name to put a lock beside
    if os.path.ismount(target):
        raise mount_point_error(target, flag)
    lock_path = target.parent / f".{target.name}.lock"
    scratch = target.parent / f".{target.name}.partial"
    with write_access_errors(target, flag):
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = _acquire(lock_path, wait)
    if lock is None:
        raise UserError(f"Another run is writing {target} (it holds {lock_path}); wait for it to finish, "
                        "or pass another folder.")
    old = target.parent / f".{target.name}.old"  # see move_into_place
    try:
        with write_access_errors(target, flag):
            if old.exists() and not target.exists():  # stopped between moving the old output away and the new in
                os.replace(old, target)
                logger.info("Put back %s, which a run stopped while replacing it had moved away.", target)
            shutil.rmtree(old, ignore_errors=True)
            if scratch.exists():
                logger.info("Removing %s, left by a run that was stopped.", scratch)
                shutil.rmtree(scratch)
            scratch.mkdir()
        with disk_space_errors(target):
            yield Build(target, scratch, flag)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        _release(lock, lock_path)


@contextmanager
def reuse_or_build(target, finished, flag="--output_dir", wait=False):
    """(record, None) where `finished()` finds this very output in `target` already (it refuses another's), else
    (record or None, Build) holding the folder's lock: `finished()` is asked again once the lock is held, so the
    output of a run that finished in between is reused, not built twice (with wait=True, the lock is waited for:
    see building)."""
    previous = finished()
    if previous is not None:
        yield previous, None
        return
    with building(target, wait=wait, flag=flag) as build:
        yield finished(), build
