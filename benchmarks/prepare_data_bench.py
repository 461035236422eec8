"""Cost of prepare_data.py beside wikiextractor and beside decompression alone, whole commands.

    python -m benchmarks.prepare_data_bench [--dump FILE] [--copies 16] [--repeat 3] [--num_proc 1 2]
                                            [--checkout DIR ...]

The dump's pages are written `--copies` times, with fresh page ids, as a
multistream file (Wikimedia's shape: 100 pages a bz2 stream), where start-up
weighs little. Each command runs in a fresh process, as a user runs it, the
commands taking turns round after round (so a change of load falls on all of
them), `--repeat` rounds; the table gives medians. CPU seconds are user + sys of
the whole process tree (the command's children, its bzip2 and workers among
them, counted as they end), which varies far less than wall time on a shared
machine; the load average is printed with each round. Compared:

- `bzip2 -dc` of the same file to /dev/null: the floor, decompression alone;
- two of those side by side: what this machine charges in CPU seconds for running two processes at once (their
  CPU over twice one's), a cost `--num_proc 2` pays too, whatever its own work;
- `prepare_data.py --num_proc N` (imports, parse, clean, split, save);
- `prepare_data.py --num_proc 1` of each other `--checkout` (a `git worktree` of an older commit, run with
  this Python: how the cost moved since);
- wikiextractor 3.1.0 `--processes 1 --json` in its default mode (templates
  expanded) and with `--no-templates`, where it is installed.

Peak memory is the PSS of the command's processes, summed, sampled every 0.5 s.
Markup residue is the share of output lines holding {{ }} [[ ]] {| |} <ref &lt;
&nbsp; or __ (benchmarks/markup_residue.py).
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from gpt2ja.settings import EXCERPT
from benchmarks.markup_residue import residue_share, short_line_share
from benchmarks.process_memory import tree_memory_mib
from benchmarks.scale_bench import write_copies


ONE_ALONE = "bzip2 -dc (decompression alone)"
TWO_AT_ONCE = "2 x bzip2 -dc side by side"


def run_command(argv):
    """(wall seconds, CPU seconds of the process tree, peak PSS MiB) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, tree_memory_mib(process.pid)["total"])
        time.sleep(0.5)
    wall = time.perf_counter() - start
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, argv)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, peak


def commit_of(checkout):
    described = subprocess.run(["git", "-C", str(checkout), "log", "-1", "--format=%h %cs"],
                               capture_output=True, text=True)
    return described.stdout.strip() or checkout.name


def commands(dump, num_procs, work, checkouts=()):
    """{label: (argv, output folder or None)}, in the order they take turns."""
    # (the second's exit status, and the first's through `wait`: a bzip2 that fails fails the command)
    side_by_side = 'bzip2 -dc "$1" >/dev/null & first=$!; bzip2 -dc "$1" >/dev/null || exit 1; wait "$first"'
    runs = {ONE_ALONE: (["bzip2", "-dc", str(dump)], None),
            TWO_AT_ONCE: (["sh", "-c", side_by_side, "sh", str(dump)], None)}
    for n in num_procs:
        out = work / f"prepare{n}"
        runs[f"prepare_data.py --num_proc {n}"] = (
            [sys.executable, "prepare_data.py", "--dump", str(dump), "--num_proc", str(n), "--output_dir", str(out)], out)
    for number, checkout in enumerate(checkouts):
        out = work / f"checkout{number}"
        runs[f"the same at {commit_of(checkout)}, --num_proc 1"] = (
            [sys.executable, str(checkout / "prepare_data.py"), "--dump", str(dump), "--num_proc", "1",
             "--output_dir", str(out)], out)
    wikiextractor = Path(sys.executable).with_name("wikiextractor")
    if wikiextractor.exists():
        for label, flags in (("default", []), ("--no-templates", ["--no-templates"])):
            out = work / f"wikiextractor{len(flags)}"
            runs[f"wikiextractor --processes 1, {label}"] = (
                [str(wikiextractor), "--processes", "1", "--json", "-q", *flags, "-o", str(out), str(dump)], out)
    else:
        print("wikiextractor: not installed (pip install wikiextractor) - no comparison")
    return runs


def prepared_lines(out):
    import datasets
    data = datasets.load_from_disk(str(out))
    return [line for split in data.values() for text in split["text"] for line in text.split("\n")]


def wikiextractor_lines(out):
    lines = []
    for path in sorted(Path(out).rglob("wiki_*")):
        for row in path.read_text(encoding="utf-8").splitlines():
            lines.extend(line for line in json.loads(row)["text"].split("\n") if line.strip())
    return lines


def load():
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dump", type=Path, default=EXCERPT, help="the pages to copy (a jawiki dump or excerpt)")
    parser.add_argument("--copies", type=int, default=16, help="times the pages are written (fresh page ids)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the table gives each command's median")
    parser.add_argument("--num_proc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--checkout", type=Path, nargs="+", default=[],
                        help="other checkouts of this repository whose prepare_data.py takes turns too")
    args = parser.parse_args()
    if not args.dump.is_file():
        sys.exit(f"error: {args.dump} does not exist; pass --dump with a jawiki pages-articles file.")
    for checkout in args.checkout:
        if not (checkout / "prepare_data.py").is_file():
            sys.exit(f"error: {checkout} holds no prepare_data.py; pass a checkout of this repository "
                     "(git worktree add DIR COMMIT).")
    if shutil.which("bzip2") is None:
        sys.exit("error: the bzip2 tool is not installed; install it (apt-get install bzip2) to measure the floor.")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dump = work / f"copies{args.copies}.xml.bz2"
        xml_mb = write_copies(args.dump, args.copies, dump) / 1e6
        print(f"dump: {args.dump.name} x{args.copies}, fresh page ids: {xml_mb:.2f} MB of XML, "
              f"{dump.stat().st_size / 1e6:.2f} MB of bz2 in one multistream file; "
              f"{os.cpu_count()} CPUs")
        runs = commands(dump, args.num_proc, work, args.checkout)
        measured = {label: [] for label in runs}
        for round_number in range(args.repeat):
            print(f"round {round_number + 1}: {load()}")
            for label, (argv, out) in runs.items():
                if out is not None:
                    shutil.rmtree(out, ignore_errors=True)
                measured[label].append(run_command(argv))
                wall, cpu, _ = measured[label][-1]
                print(f"  {label:<46}{wall:>8.1f} s wall{cpu:>8.1f} CPU-s")
        print(f"after: {load()}")
        quality = {label: (wikiextractor_lines(out) if label.startswith("wikiextractor") else prepared_lines(out))
                   for label, (_, out) in runs.items() if out is not None}

    base = "prepare_data.py --num_proc 1"
    median = {label: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs),
                      max(r[2] for r in rs)) for label, rs in measured.items()}
    # the CPU ratio in each round (the commands of a round ran within minutes of each other, under much the same
    # load), then its median
    by_round = {label: statistics.median(r[1] / b[1] for r, b in zip(rs, measured[base]))
                for label, rs in measured.items()}
    print(f"\nmedians of {args.repeat} rounds; 'x' columns: the command's figure over {base}'s (of the medians; "
          "'CPU x/rnd': the median of each round's CPU ratio)")
    print(f"{'command':<46}{'wall s':>8}{'CPU-s':>8}{'XML MB/CPU-s':>14}{'wall x':>8}{'CPU x':>7}{'CPU x/rnd':>10}"
          f"{'peak MiB':>10}")
    for label, (wall, cpu, peak) in median.items():
        xml_read = 2 * xml_mb if label == TWO_AT_ONCE else xml_mb
        print(f"{label:<46}{wall:>8.1f}{cpu:>8.1f}{xml_read / cpu:>14.1f}{wall / median[base][0]:>8.2f}"
              f"{cpu / median[base][1]:>7.2f}{by_round[label]:>10.2f}{peak:>10.0f}")
    single = measured[ONE_ALONE]
    penalty = statistics.median(two[1] / (2 * one[1]) for two, one in zip(measured[TWO_AT_ONCE], single))
    print(f"\ntwo processes at once cost this machine {100 * (penalty - 1):+.0f}% CPU (two bzip2 -dc side by side "
          "against twice one, median of the rounds)")

    print(f"\n{'output':<46}{'lines':>9}{'residue %':>11}{'lines <10 chars %':>19}")
    for label, lines in quality.items():
        print(f"{label:<46}{len(lines):>9}{100 * residue_share(lines):>11.3f}{100 * short_line_share(lines):>19.2f}")


if __name__ == "__main__":
    main()
