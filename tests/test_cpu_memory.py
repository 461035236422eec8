import os
import subprocess
import sys

import pytest

from gpt2ja import cpu_memory

# In a fresh interpreter (these settings are for the life of a process): 10 blocks of 48 MiB (above the 32 MiB
# where glibc stops adapting; the tiny recipe's logits are 62.5 MiB) written and freed in turn, and the page
# faults they cost.
FAULTS = """
import ctypes, resource, sys
from gpt2ja import cpu_memory
took = cpu_memory.keep_freed_memory() if sys.argv[1] == "tuned" else None
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    block = libc.malloc(48 << 20)
    ctypes.memset(block, 1, 48 << 20)
    libc.free(block)
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))} | env
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True,
                         env=environment).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux")
def test_freed_blocks_stay_with_the_process_and_are_not_faulted_in_again():
    took, tuned = faults("tuned")
    _, default = faults("default")
    assert took == "True"
    pages = 48 << 20 >> 12
    assert default > 9 * pages  # glibc's default: each block mapped, zeroed by the kernel, unmapped
    assert tuned < 2 * pages, (tuned, default)  # faulted in once, then reused


@pytest.mark.parametrize("env", [{"MALLOC_TOP_PAD_": "131072"}, {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1"}])
def test_malloc_tuned_by_the_user_is_left_as_it_is(env, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cpu_memory.keep_freed_memory() is False
