"""Scripts run as a user runs them, each in a process of its own: for the tests about the process itself
(a kill, a signal, an exit status, what it prints), and for launchers that start their own processes."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def as_from_a_terminal():
    """In the child before it starts: SIGINT at its default, as a terminal's job has it, even where the tests
    themselves run with SIGINT ignored (a job started with `&` or nohup inherits that, and Python would keep
    ignoring Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Script:
    """`python *argv` started in the repository, its output to a file (a pipe nobody reads would stall it)."""

    def __init__(self, argv, log=None, env=None, launcher=(sys.executable,)):
        self.log = Path(log) if log else Path(tempfile.mkstemp(suffix=".log")[1])
        with open(self.log, "w") as out:  # in a process group of its own, as a terminal starts a job
            self.process = subprocess.Popen([*launcher, *argv], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                            text=True, env=env, start_new_session=True,
                                            preexec_fn=as_from_a_terminal)

    def ctrl_c(self):
        """SIGINT to every process of the job, as a terminal sends it."""
        os.killpg(self.process.pid, signal.SIGINT)

    def output(self):
        return self.log.read_text()

    def wait(self, timeout=600):
        self.process.wait(timeout=timeout)
        return self.process.returncode

    def wait_until(self, condition, timeout=300):
        deadline = time.time() + timeout
        while not condition():
            assert self.process.poll() is None, "the script ended before the moment awaited:\n" + self.output()[-3000:]
            assert time.time() < deadline, self.output()[-3000:]
            time.sleep(0.01)


def kill_when(argv, reached, timeout=300):
    """Start `python *argv`, SIGKILL it once reached() is true, and wait for it."""
    script = Script(argv)
    script.wait_until(reached, timeout)
    script.process.kill()
    script.wait()


def Launch(flags, script_argv, log, env=None):
    """`accelerate launch` of processes on the CPU, one thread each (2 cores), as a user types it."""
    accelerate = [str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file",
                  "accelerate_config.yaml", "--mixed_precision", "no", *flags]
    return Script(script_argv, log, {**(env or os.environ), "OMP_NUM_THREADS": "1"}, launcher=accelerate)


def run(argv, **options):
    """`python *argv` in the repository to its end; its exit status and output (text)."""
    return subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True,
                          preexec_fn=as_from_a_terminal, **options)


def children_of(pid):
    """The processes whose parent is `pid`."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return children


def descendants(pid):
    found, todo = [], [pid]
    while todo:
        children = children_of(todo.pop())
        found += children
        todo += children
    return found


def alive(pid):
    """Whether a process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
