"""Running a script as a user does, and killing it at a chosen moment, for the fault-injection tests."""

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def kill_when(argv, reached, timeout=300):
    """Start `python *argv` in the repository, SIGKILL it once reached() is true, and wait for it."""
    process = subprocess.Popen([sys.executable, *argv], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not reached():
        assert process.poll() is None, "the script ended before the moment to kill it"
        assert time.time() < deadline
        time.sleep(0.01)
    process.kill()
    process.wait()


def run(argv):
    return subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True)
