"""Training on the CPU with glibc's malloc: keep freed memory in the process instead of handing it back.

By default glibc gives every freed block of more than 128 KiB (up to 32 MiB as it adapts) back to the kernel at
once, so each training step asks for its activations and gradients anew and the kernel zeroes them page by page:
on configs/tiny.yaml more than a quarter of train.py's CPU time was the kernel's. Now blocks up to LARGEST come
from the heap, and up to TOP_PAD of freed heap stays with the process for the next step: what it saves and what
memory it holds is measured by benchmarks/cpu_memory_bench.py (docs/results.md), the weights the same bit for bit.
"""

import ctypes
import logging
import os

logger = logging.getLogger(__name__)

LARGEST = 64 << 20  # tiny.yaml's largest tensor, its logits (16 x 128 tokens x 8,000 pieces in float32), is 62.5 MiB
TOP_PAD = 256 << 20
M_TOP_PAD, M_MMAP_THRESHOLD = -2, -3  # glibc's malloc.h
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_memory():
    """Tune glibc's malloc of this process as above; True if it took. Not glibc (macOS, musl), or malloc tuned by the
    user (a MALLOC_*_ variable or glibc.malloc in GLIBC_TUNABLES): left as it is."""
    if any(os.environ.get(name) for name in USER_SETTINGS) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        logger.info("glibc's malloc left as the environment tunes it.")
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, LARGEST)) and bool(mallopt(M_TOP_PAD, TOP_PAD))
