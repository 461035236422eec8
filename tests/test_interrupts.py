"""gpt2ja.interrupts: Ctrl-C before main() and in a process with workers ends in one line and exit 130."""

import subprocess
import sys

from gpt2ja.interrupts import INTERRUPTED
from processes import as_from_a_terminal


def python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          preexec_fn=as_from_a_terminal)


def test_ctrl_c_while_a_script_imports_its_libraries_is_one_line_and_exit_130():
    out = python("import gpt2ja.interrupts\nraise KeyboardInterrupt  # as if while `import torch` ran")
    assert out.returncode == 130 and out.stderr.strip() == INTERRUPTED
    out = python("import gpt2ja.interrupts\nraise ValueError('a real bug')")  # anything else: its traceback
    assert out.returncode == 1 and "Traceback" in out.stderr and "ValueError: a real bug" in out.stderr


def test_within_ctrl_c_exits_at_once_a_sigint_ends_the_process_without_its_clean_up():
    out = python("import os, signal, time\n"
                 "from gpt2ja.interrupts import ctrl_c_exits_at_once\n"
                 "with ctrl_c_exits_at_once():\n"
                 "    try:\n"
                 "        os.kill(os.getpid(), signal.SIGINT)\n"
                 "        time.sleep(5)\n"
                 "    finally:\n"
                 "        print('clean-up that could wait forever on a worker')\n")
    assert out.returncode == 130 and out.stderr.strip() == INTERRUPTED and out.stdout == ""
    assert python("import signal\nfrom gpt2ja.interrupts import ctrl_c_exits_at_once\n"
                  "with ctrl_c_exits_at_once(): pass\n"
                  "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler").returncode == 0
