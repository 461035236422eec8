"""The memory of a process and all its descendants, from /proc, as the kernel accounts it.

PSS (proportional set size) splits each page among the processes that share it,
so a sum over the tree counts the pages of forked workers once. It comes in two
parts that mean different things for a stage's cost:
- held ("anon"): the processes' own heap and stacks, and shared memory (which
  cannot be dropped without swap either): what a stage really holds;
- file-backed: memory-mapped files (the Arrow tables a stage reads, libraries):
  page cache the kernel drops and rereads under pressure, which grows with the
  data read but is not a need for that much memory.
(ru_maxrss cannot serve: Linux carries it over fork and exec, so a child
reports its parent's peak.)
"""

import os
import threading
from pathlib import Path


def process_tree(root_pid):
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, grew = {root_pid}, True
    while grew:
        new = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= new
        grew = bool(new)
    return tree


def tree_memory_mib(root_pid):
    """{"anon", "file", "total"}: the tree's PSS in MiB, anonymous (with shared memory) and file-backed."""
    kib = {"Pss_Anon": 0, "Pss_File": 0, "Pss_Shmem": 0, "Pss": 0}
    for pid in process_tree(root_pid):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in rollup.splitlines()[1:])
        if "Pss_Anon" not in fields:
            raise RuntimeError("this kernel's smaps_rollup has no Pss_Anon (Linux 5.5 or later has it)")
        for key in kib:
            kib[key] += int(fields[key].split()[0])
    return {"anon": (kib["Pss_Anon"] + kib["Pss_Shmem"]) / 1024, "file": kib["Pss_File"] / 1024,
            "total": kib["Pss"] / 1024}


class PeakMemory(threading.Thread):
    """Samples the memory of a process tree (this process's by default) every 100 ms; each part's peak."""

    def __init__(self, pid=None):
        super().__init__(daemon=True)
        self.pid = pid or os.getpid()
        self.peak = {"anon": 0.0, "file": 0.0, "total": 0.0}
        self._done = threading.Event()

    def sample(self):
        for part, mib in tree_memory_mib(self.pid).items():
            self.peak[part] = max(self.peak[part], mib)

    def run(self):
        self.sample()
        while not self._done.wait(0.1):
            self.sample()

    def stop(self):
        self._done.set()
        self.join()
        self.sample()
        return self.peak
