"""What keeping freed memory (gpt2ja/cpu_memory.py) saves train.py on the CPU, whole commands.

    python -m benchmarks.cpu_memory_bench [--run_dir runs/demo] [--max_steps 30] [--repeat 3]

The tiny recipe trains --max_steps steps on the demo's data and tokenizer (`make demo` makes them) with an
evaluation and a checkpoint every 10, then scores the validation and test splits, as the tests' drills do:
once as train.py runs (malloc tuned), once with cpu_memory.keep_freed_memory replaced by a no-op (glibc's
defaults), the two taking turns --repeat rounds. The table gives medians of wall time, CPU seconds (user + sys) and
peak PSS; the two final models must be equal bit for bit.
"""

import argparse
import hashlib
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.prepare_data_bench import load, run_command
from gpt2ja.run_folder import RunFolder

REPO = Path(__file__).resolve().parents[1]
DEFAULTS_KEPT = ("import runpy, sys; import gpt2ja.cpu_memory as m; m.keep_freed_memory = lambda: False; "
                 "sys.argv[0] = 'train.py'; runpy.run_path('train.py', run_name='__main__')")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_dir", type=Path, default=REPO / "runs" / "demo",
                        help="a run folder whose data/ and tokenizer/ the runs train on")
    parser.add_argument("--max_steps", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the table gives medians")
    args = parser.parse_args()
    run = RunFolder(args.run_dir)
    if not (run.data.is_dir() and run.tokenizer.is_dir()):
        sys.exit(f"error: {args.run_dir} holds no data/ and tokenizer/; run `make demo` first or pass --run_dir.")

    with tempfile.TemporaryDirectory() as tmp:
        def argv(out):
            return ["configs/tiny.yaml", "--data_dir", str(run.data), "--tokenizer_dir", str(run.tokenizer),
                    "--output_dir", str(out), "--max_steps", str(args.max_steps), "--eval_steps", "10",
                    "--save_steps", "10", "--out_of_domain_text", "", "--overwrite_output_dir", "true"]
        commands = {"train.py (malloc tuned)": [sys.executable, "train.py", *argv(Path(tmp, "tuned"))],
                    "train.py with glibc's defaults": [sys.executable, "-c", DEFAULTS_KEPT, *argv(Path(tmp, "default"))]}
        measured = {label: [] for label in commands}
        for round_number in range(args.repeat):
            print(f"round {round_number + 1}: {load()}")
            for label, command in commands.items():
                measured[label].append(run_command(command))
                wall, cpu, peak = measured[label][-1]
                print(f"  {label:<34}{wall:>8.1f} s wall{cpu:>8.1f} CPU-s{peak:>8.0f} MiB")
        digests = {hashlib.sha256(Path(tmp, name, "model", "model.safetensors").read_bytes()).hexdigest()
                   for name in ("tuned", "default")}
    print(f"after: {load()}")

    base = "train.py with glibc's defaults"
    median = {label: [statistics.median(r[i] for r in rs) for i in range(3)] for label, rs in measured.items()}
    print(f"\nmedians of {args.repeat} rounds, {args.max_steps} steps; 'x' columns: the command's figure over the "
          "defaults'")
    print(f"{'command':<34}{'wall s':>8}{'CPU-s':>8}{'peak MiB':>10}{'wall x':>8}{'CPU x':>7}")
    for label, (wall, cpu, peak) in median.items():
        print(f"{label:<34}{wall:>8.1f}{cpu:>8.1f}{peak:>10.0f}{wall / median[base][0]:>8.2f}"
              f"{cpu / median[base][1]:>7.2f}")
    print("final weights: " + ("equal bit for bit" if len(digests) == 1 else "DIFFERENT"))
    if len(digests) != 1:
        sys.exit(1)


if __name__ == "__main__":
    main()
