"""Ctrl-C before a script's main() runs: while the libraries it imports load (seconds for torch and
transformers), it ends with the same one line and exit status 130 as during main(), not with a traceback.

Each script imports this module first, before any library. Standard library only.
"""

import os
import signal
import sys
from contextlib import contextmanager

INTERRUPTED = "error: Interrupted (Ctrl-C); rerun the same command to go on."
_previous_hook = sys.excepthook


def _quiet_on_interrupt(kind, error, traceback):
    if issubclass(kind, KeyboardInterrupt):
        print(INTERRUPTED, file=sys.stderr, flush=True)
        os._exit(130)
    _previous_hook(kind, error, traceback)


sys.excepthook = _quiet_on_interrupt



@contextmanager
def ctrl_c_exits_at_once():
    """Within: Ctrl-C ends the process at once, with the one line and exit status 130. For a process with a
    pool of workers (datasets' num_proc): its clean-up after an interrupt can wait forever on a worker, or
    end in the workers' tracebacks. The workers die with this process (gpt2ja.rerun), the kernel drops its
    lock, and the next run removes the scratch folder it leaves; nothing unfinished is in place."""
    def leave(signum, frame):
        print("\n" + INTERRUPTED, file=sys.stderr, flush=True)  # on a line of its own, after a progress bar
        os._exit(130)

    previous = signal.signal(signal.SIGINT, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)

