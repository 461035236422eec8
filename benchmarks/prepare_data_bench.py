"""Throughput, peak memory and markup residue of prepare_data.py, beside wikiextractor.

    python -m benchmarks.prepare_data_bench [--dump FILE] [--num_proc 1 2] [--repeat 3]

Each measurement runs in a fresh process. "clean" times the builder alone
(parse + clean + write Arrow), imports excluded; "command" times the whole
command line, as a user runs it, for prepare_data.py and for
`wikiextractor --processes 1 --json --no-templates` (when installed). Peak
memory is the PSS of the run's processes, summed, sampled every 100 ms. Residue is the
share of output lines holding {{ }} [[ ]] {| |} <ref &lt; &nbsp; or __.
"""

import argparse
import bz2
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from gpt2ja.dump import split_pages, write_multistream
from gpt2ja.settings import EXCERPT
from gpt2ja.wikitext import residue_share, short_line_share
from benchmarks.process_memory import PeakMemory, tree_memory_mib


def worker_clean(dump, num_proc):
    """Runs in its own process: the builder over the dump, timed without imports."""
    import logging

    from prepare_data import build_articles
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as work_dir:
        sampler = PeakMemory()
        sampler.start()
        start = time.perf_counter()
        articles, _ = build_articles([dump], num_proc=num_proc, work_dir=work_dir)
        seconds = time.perf_counter() - start
        peak = sampler.stop()["total"]
        lines = [line for text in articles["text"] for line in text.split("\n")]
    print(json.dumps({"seconds": seconds, "articles": len(articles), "peak_rss_mib": peak,
                      "residue": residue_share(lines), "short": short_line_share(lines), "lines": len(lines)}))


def run_worker(dump, num_proc):
    out = subprocess.run([sys.executable, "-m", "benchmarks.prepare_data_bench", "--worker", "--dump", str(dump), "--num_proc", str(num_proc)],
                         check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_command(argv):
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, tree_memory_mib(process.pid)["total"])
        time.sleep(0.1)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, argv)
    return time.perf_counter() - start, peak


def wikiextractor_lines(out_dir):
    lines = []
    for path in sorted(Path(out_dir).rglob("wiki_*")):
        for row in path.read_text(encoding="utf-8").splitlines():
            text = json.loads(row)["text"]
            lines.extend(line for line in text.split("\n") if line.strip())
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dump", type=Path, default=EXCERPT)
    parser.add_argument("--num_proc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is shown")
    parser.add_argument("--copies", type=int, default=8,
                        help="also time a multistream file holding the pages this many times, "
                             "where process start-up weighs less than on the small excerpt")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker_clean(str(args.dump), args.num_proc[0])
    if not args.dump.is_file():
        sys.exit(f"error: {args.dump} does not exist; pass --dump with a jawiki pages-articles file.")

    with bz2.open(args.dump) if args.dump.suffix == ".bz2" else open(args.dump, "rb") as stream:
        xml = stream.read()
    xml_mb = len(xml) / 1e6
    print(f"dump: {args.dump.name}, {xml_mb:.1f} MB of XML")
    print(f"{'what':<44}{'seconds':>9}{'articles/s':>12}{'XML MB/s':>10}{'peak MiB':>10}")

    def row(label, seconds, articles, peak):
        copies = int(label.split(" x")[1].split(",")[0]) if " x" in label else 1
        print(f"{label:<44}{seconds:>9.2f}{articles / seconds:>12.0f}{copies * xml_mb / seconds:>10.2f}"
              f"{peak:>10.0f}")

    def measure(label, dump, num_proc):
        runs = [run_worker(dump, num_proc) for _ in range(args.repeat)]
        seconds = statistics.median(r["seconds"] for r in runs)
        row(label, seconds, runs[0]["articles"], max(r["peak_rss_mib"] for r in runs))
        return runs[0], seconds

    with tempfile.TemporaryDirectory() as tmp:
        quality = {"prepare_data": measure("prepare_data builder, num_proc=1", args.dump, 1)[0]}
        # The same pages recompressed as Wikimedia's multistream dumps are (100 pages a
        # bz2 stream), which several processes can read in byte ranges.
        for copies in sorted({1, args.copies}):
            header, pages, footer = split_pages(xml if xml.rstrip().endswith(b"</mediawiki>")
                                                else xml + b"</mediawiki>\n")
            multistream = write_multistream(header + b"".join(pages * copies) + footer,
                                            Path(tmp) / f"multistream{copies}.xml.bz2", pages_per_stream=100)
            timings = {n: measure(f"  multistream copy x{copies}, num_proc={n}", multistream, n)[1]
                       for n in args.num_proc}
            if len(timings) > 1:
                base = timings[args.num_proc[0]]
                print("  speed-up over num_proc=%d: %s" % (args.num_proc[0], ", ".join(
                    f"{n} processes {base / t:.2f}x" for n, t in timings.items() if n != args.num_proc[0])))

        timings = [time_command([sys.executable, "prepare_data.py", "--dump", str(args.dump), "--num_proc", "1",
                                 "--output_dir", f"{tmp}/out{i}"]) for i in range(args.repeat)]
        row("prepare_data.py command, num_proc=1", statistics.median(t[0] for t in timings),
            quality["prepare_data"]["articles"], max(t[1] for t in timings))

        wikiextractor = Path(sys.executable).with_name("wikiextractor")
        if wikiextractor.exists():
            timings = [time_command([str(wikiextractor), "--processes", "1", "--json", "--no-templates", "-q",
                                     "-o", f"{tmp}/we{i}", str(args.dump)]) for i in range(args.repeat)]
            lines = wikiextractor_lines(f"{tmp}/we0")
            articles = sum(1 for p in Path(f"{tmp}/we0").rglob("wiki_*") for _ in p.open(encoding="utf-8"))
            row("wikiextractor command, --processes 1", statistics.median(t[0] for t in timings), articles,
                max(t[1] for t in timings))
            quality["wikiextractor"] = {"residue": residue_share(lines), "short": short_line_share(lines),
                                        "lines": len(lines)}
        else:
            print("wikiextractor: not installed (pip install wikiextractor) - no comparison")

    print(f"\n{'output':<20}{'lines':>8}{'residue %':>11}{'lines <10 chars %':>19}")
    for name, q in quality.items():
        print(f"{name:<20}{q['lines']:>8}{100 * q['residue']:>11.3f}{100 * q['short']:>19.2f}")


if __name__ == "__main__":
    main()
