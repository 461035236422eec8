"""How the cost of every stage grows with the data: time and memory at several sizes, and the growth fitted.

    python -m benchmarks.scale_bench                        # 1, 4, 16, 64 x the excerpt; 25k to 400k sentences
    python -m benchmarks.scale_bench --copies 1 2 4 --sentences 20000 40000 80000 --json scale.json

Stages, each in a fresh process timed without its imports:
- prepare_data.py with --num_proc 1 and 2, on multistream dumps (100 pages a
  bz2 stream, as Wikimedia's) holding the excerpt's pages --copies times, each
  copy with fresh page ids and titles: new articles, split by id like any others;
- the tokenizer's sentence sampling (tokenizer.sample_sentences with the
  reference's 10,000,000, read to the end) on each size's train split;
- train.py's tokenization into the token cache (gpt2ja.tokens.prepare_tokens)
  with --tokenizer_dir, on each size's data;
- SentencePiece training (tokenizer.train_sentencepiece, unigram) on --sentences
  distinct sentences. Copies of the excerpt would repeat the same substrings and
  tell little about SentencePiece's memory, so the sentences are the distinct
  ones of the excerpt, then of the Aozora novels in ../shared, then synthetic
  ones: 2 to 4 clauses of different real sentences joined (each kept once).
  At 32,000 pieces where the text supports them, else at the most it supports.

Memory is the PSS of the stage's process tree sampled every 100 ms (see
process_memory.py), its anonymous part (what the stage holds) and its
file-backed part (memory-mapped Arrow files and libraries: page cache the
kernel can drop) apart. For each stage the table ends with the exponent b of
time ~ size^b and of anonymous memory, fitted over the sizes (least squares
on logarithms): time should grow no faster than linearly (b <= 1), and memory
should stay flat (b near 0) wherever a stage streams.
"""

import argparse
import bz2
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from gpt2ja.dump import split_pages
from gpt2ja.settings import EXCERPT, REFERENCE_VOCAB_SIZE
from benchmarks.process_memory import PeakMemory

AOZORA = EXCERPT.parent / "aozora"
PAGE_ID = re.compile(rb"(<page>\s*<title>)(.*?)(</title>.*?<id>)(\d+)(</id>)", re.DOTALL)
REFERENCE_SAMPLES = 10_000_000


# --- inputs -----------------------------------------------------------------------------------------

def write_copies(excerpt, copies, path):
    """A multistream dump of the excerpt's pages `copies` times; copy k's pages get ids + k * (largest id + 1)
    and " k" after their titles (so every page is a new article, and its namespace prefix stays)."""
    with bz2.open(excerpt) as stream:
        xml = stream.read()
    if not xml.rstrip().endswith(b"</mediawiki>"):
        xml += b"</mediawiki>\n"
    header, pages, footer = split_pages(xml)
    offset = max(int(PAGE_ID.search(page)[4]) for page in pages) + 1
    partial = path.with_suffix(".partial")
    with open(partial, "wb") as out:
        out.write(bz2.compress(header))
        for copy in range(copies):
            def renumber(match):
                title = match[2] + (f" {copy}".encode() if copy else b"")
                return match[1] + title + match[3] + str(int(match[4]) + copy * offset).encode() + match[5]
            renumbered = [PAGE_ID.sub(renumber, page, count=1) for page in pages]
            for start in range(0, len(renumbered), 100):
                out.write(bz2.compress(b"".join(renumbered[start:start + 100])))
        out.write(bz2.compress(footer))
    partial.rename(path)
    return len(xml) * copies


def write_sentences(count, data_dir, path, seed=0):
    """`count` distinct sentences, one a line: the excerpt's, Aozora's, then synthetic ones; their origins."""
    import tokenizer
    from gpt2ja.splits import SPLITS, load_split
    seen, origin = {}, {}
    for split in SPLITS:
        for text in load_split(data_dir, split, allow_empty=True)["text"]:
            for sentence in tokenizer.sentences_of(text, 5, 1000):
                seen.setdefault(sentence, None)
    origin["excerpt"] = len(seen)
    for novel in sorted(AOZORA.glob("*.txt")):
        for sentence in tokenizer.sentences_of(novel.read_text(encoding="utf-8").replace("\r", ""), 5, 1000):
            seen.setdefault(sentence, None)
    origin["aozora"] = len(seen) - origin["excerpt"]
    real = list(seen)
    clauses = [c.strip("。 ") for s in real for c in s.split("、") if len(c.strip("。 ")) >= 2]
    rng = np.random.default_rng(seed)
    while len(seen) < count:
        picks = rng.integers(0, len(clauses), size=(100_000, 4))
        lengths = rng.integers(2, 5, size=100_000)
        for row, length in zip(picks, lengths):
            seen.setdefault("、".join(clauses[i] for i in row[:length]) + "。", None)
    origin["synthetic"] = max(0, count - origin["excerpt"] - origin["aozora"])
    with open(path, "w", encoding="utf-8") as out:
        for sentence in list(seen)[:count]:
            out.write(sentence + "\n")
    return origin


# --- the stages, each run in a fresh process --------------------------------------------------------

def stage_prepare(cli):
    import prepare_data
    if cli.baseline:
        return {"seconds": 0.0}
    start = time.perf_counter()
    record = prepare_data.main(["--dump", cli.dump, "--output_dir", cli.out, "--num_proc", str(cli.num_proc)])
    return {"seconds": time.perf_counter() - start, "articles": record.articles,
            "characters": sum(record.characters.values())}


def stage_sample(cli):
    import tokenizer
    from gpt2ja.splits import load_split
    if cli.baseline:
        return {"seconds": 0.0}
    start = time.perf_counter()
    sentences, used, _ = tokenizer.sample_sentences(load_split(cli.data, "train"), REFERENCE_SAMPLES, 42, 5, 1000)
    characters = sum(len(s) for s in sentences)
    return {"seconds": time.perf_counter() - start, "sentences": used, "characters": characters}


def stage_tokens(cli):
    from gpt2ja.tokens import prepare_tokens
    if cli.baseline:
        return {"seconds": 0.0}
    start = time.perf_counter()
    _, meta = prepare_tokens(cli.data, cli.tokenizer_dir)
    return {"seconds": time.perf_counter() - start, "tokens": sum(s["tokens"] for s in meta["splits"].values())}


def stage_sentencepiece(cli):
    import tokenizer
    from gpt2ja.cli import UserError
    if cli.baseline:
        return {"seconds": 0.0}
    refused_after = 0.0
    args = tokenizer.TokenizerArguments(vocab_size=REFERENCE_VOCAB_SIZE, num_threads=cli.num_proc)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        while True:
            lines = open(cli.sentences_file, encoding="utf-8")
            try:
                tokenizer.train_sentencepiece((line.rstrip("\n") for line in lines), Path(tmp, "m.model"), args)
                break
            except UserError as error:  # fewer pieces than 32,000 in this text: train at the most it supports
                supported = re.search(r"at most (\d+) pieces", str(error))
                if not supported:
                    raise
                args.vocab_size = int(supported[1])
                refused_after = time.perf_counter() - start
            finally:
                lines.close()
    # seconds: every attempt (a refused 32,000 included); memory is sampled over them all
    return {"seconds": time.perf_counter() - start, "vocab_size": args.vocab_size,
            "refused_attempt_seconds": round(refused_after, 1)}


STAGES = {"prepare": stage_prepare, "sample": stage_sample, "tokens": stage_tokens,
          "sentencepiece": stage_sentencepiece}


def run_stage(name, **flags):
    """One stage in a fresh process: its own figures, wall time and peak memory (anonymous, file-backed)."""
    argv = [sys.executable, "-m", "benchmarks.scale_bench", "--stage", name]
    for key, value in flags.items():
        argv += [f"--{key}"] if value is True else [f"--{key}", str(value)]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, cwd=REPO, text=True)
        sampler = PeakMemory(process.pid)
        sampler.start()
        process.wait()
        peak = sampler.stop()
        out.seek(0)
        output = out.read()
    if process.returncode:
        sys.exit(f"error: stage {name} {flags} failed (exit {process.returncode}); run it alone to see why:\n"
                 f"  {' '.join(argv)}")
    figures = json.loads(output.strip().splitlines()[-1])
    return {**figures, "wall_seconds": time.perf_counter() - start, "peak_anon_mib": peak["anon"],
            "peak_file_mib": peak["file"]}


# --- growth and the table ---------------------------------------------------------------------------

def exponent(sizes, values):
    """b of value ~ size^b, least squares on logarithms."""
    return float(np.polyfit(np.log(sizes), np.log(np.maximum(values, 1e-9)), 1)[0])


def folder_bytes(folder, skip=()):
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file() and not set(f.parts) & set(skip))


def print_stage(title, unit, rows, size_key, baseline):
    """The stage's rows and its growth: exponents of time and of the memory held above the imports."""
    print(f"\n{title} (imports alone hold {baseline:.0f} MiB)")
    print(f"{unit:>12}{'seconds':>10}{'wall s':>9}{'anon MiB':>10}{'above imports':>15}{'file MiB':>10}  figures")
    for row in rows:
        row["held_mib"] = max(row["peak_anon_mib"] - baseline, 1.0)
        extra = ", ".join(f"{k} {v:,}" for k, v in row.items() if k in ("articles", "sentences", "tokens",
                                                                       "vocab_size", "characters"))
        print(f"{row[size_key]:>12,}{row['seconds']:>10.1f}{row['wall_seconds']:>9.1f}{row['peak_anon_mib']:>10.0f}"
              f"{row['held_mib']:>15.0f}{row['peak_file_mib']:>10.0f}  {extra}")
    sizes = [row[size_key] for row in rows]
    growth = {"time_exponent": exponent(sizes, [row["seconds"] for row in rows]),
              "memory_exponent": exponent(sizes, [row["held_mib"] for row in rows]),
              # between the two largest sizes, where fixed costs weigh least: what the prediction uses
              "last_time_exponent": exponent(sizes[-2:], [row["seconds"] for row in rows[-2:]]),
              "last_memory_exponent": exponent(sizes[-2:], [row["held_mib"] for row in rows[-2:]]),
              "last_memory_ratio": rows[-1]["peak_anon_mib"] / rows[-2]["peak_anon_mib"]}
    print(f"{'growth':>12}  time ~ size^{growth['time_exponent']:.2f} (^{growth['last_time_exponent']:.2f} over the "
          f"last two), memory above imports ~ size^{growth['memory_exponent']:.2f} "
          f"(^{growth['last_memory_exponent']:.2f}); anonymous memory x{growth['last_memory_ratio']:.2f} from "
          f"{sizes[-2]:,} to {sizes[-1]:,}")
    return growth


def predict(row, size, target, growth, baseline):
    """Time and memory at `target` from the largest measurement, by the growth between the two largest sizes:
    time at least linear; memory above imports flat where it did not grow."""
    factor = target / size
    seconds = row["seconds"] * factor ** max(1.0, growth["last_time_exponent"])
    held = row["held_mib"] * factor ** max(0.0, growth["last_memory_exponent"])
    return seconds, baseline + held


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 4, 16, 64], help="dump sizes, x the excerpt")
    parser.add_argument("--sentences", type=int, nargs="+", default=[25_000, 50_000, 100_000, 200_000, 400_000],
                        help="distinct sentences SentencePiece trains on")
    parser.add_argument("--tokenizer_dir", type=Path, default=Path("runs/demo/tokenizer"),
                        help="the tokenizer of the token-cache stage (make demo writes this one)")
    parser.add_argument("--work_dir", type=Path, default=Path(tempfile.gettempdir(), "scale_bench"),
                        help="the dumps and data folders; dumps already there are reused")
    parser.add_argument("--reference_dump_bytes", type=float, default=3.0e9,
                        help="the reference dump's compressed size, for the prediction (2021-03-01: about 3 GB)")
    parser.add_argument("--reference_articles", type=float, default=1.25e6,
                        help="the reference dump's articles, for the prediction (2021-03-01: about 1.25 million)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    for name in ("dump", "out", "data", "sentences_file"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    parser.add_argument("--num_proc", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)  # imports only
    cli = parser.parse_args()
    if cli.stage:
        print(json.dumps(STAGES[cli.stage](cli)))
        return
    if not EXCERPT.is_file():
        sys.exit(f"error: {EXCERPT} is absent: the shared jawiki excerpt lies beside the repository (../shared).")
    if not Path(cli.tokenizer_dir, "spiece.model").is_file():
        sys.exit(f"error: {cli.tokenizer_dir} holds no tokenizer; run make demo first, or pass --tokenizer_dir.")
    work, tokenizer_dir = cli.work_dir.resolve(), cli.tokenizer_dir.resolve()  # the stages run in the repository
    work.mkdir(parents=True, exist_ok=True)
    copies_list, counts = sorted(cli.copies), sorted(cli.sentences)
    report = {"excerpt": str(EXCERPT), "copies": {}, "sentencepiece": [],
              "baseline_mib": {name: run_stage(name, baseline=True)["peak_anon_mib"] for name in STAGES}}
    for copies in copies_list:
        dump = work / f"copies{copies}-pages-articles-multistream.xml.bz2"
        if not dump.is_file():
            start = time.perf_counter()
            write_copies(EXCERPT, copies, dump)
            print(f"wrote {dump.name} ({dump.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.0f} s",
                  flush=True)
        rows = {}
        for num_proc in (1, 2):
            out = work / f"data{copies}-{num_proc}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            rows[f"prepare_{num_proc}"] = run_stage("prepare", dump=dump, out=out, num_proc=num_proc)
        data = work / f"data{copies}-2"
        rows["sample"] = run_stage("sample", data=data)
        rows["tokens"] = run_stage("tokens", data=data, tokenizer_dir=tokenizer_dir)
        rows["dump_bytes"] = dump.stat().st_size
        rows["data_bytes"] = folder_bytes(data, skip=("token_cache",))
        rows["token_cache_bytes"] = folder_bytes(data / "token_cache")
        report["copies"][copies] = rows
        print(f"x{copies}: " + ", ".join(f"{k} {v['seconds']:.1f} s / {v['peak_anon_mib']:.0f} MiB anon"
                                          for k, v in rows.items() if isinstance(v, dict)), flush=True)
    sentences_file = work / "sentences.txt"
    origin = write_sentences(counts[-1], work / f"data{copies_list[0]}-2", sentences_file)
    report["sentence_origin"] = origin
    for count in counts:
        subset = work / f"sentences{count}.txt"
        with open(sentences_file, encoding="utf-8") as source, open(subset, "w", encoding="utf-8") as out:
            for _, line in zip(range(count), source):
                out.write(line)
        row = run_stage("sentencepiece", sentences_file=subset, num_proc=2)
        report["sentencepiece"].append({"sentences": count, **row})
        print(f"SentencePiece, {count:,} sentences: {row['seconds']:.1f} s, {row['peak_anon_mib']:.0f} MiB anon, "
              f"{row['vocab_size']:,} pieces", flush=True)

    print(f"\nSizes: the excerpt ({EXCERPT.name}) x {', '.join(map(str, copies_list))}, as multistream dumps of "
          f"fresh page ids; SentencePiece on distinct sentences: {origin['excerpt']:,} of the excerpt, "
          f"{origin['aozora']:,} of Aozora, then synthetic ones")
    growth, baseline = {}, report["baseline_mib"]
    stage_rows = {}
    for stage, title in (("prepare_1", "prepare_data.py, 1 process"), ("prepare_2", "prepare_data.py, 2 processes"),
                         ("sample", "tokenizer.py: sampling sentences (10M asked)"),
                         ("tokens", "train.py: tokenizing into the token cache")):
        stage_rows[stage] = [{"copies": c, **report["copies"][c][stage]} for c in copies_list]
        growth[stage] = print_stage(title, "x excerpt", stage_rows[stage], "copies", baseline[stage.split("_")[0]])
    growth["sentencepiece"] = print_stage("SentencePiece training (unigram, 2 threads)", "sentences",
                                          report["sentencepiece"], "sentences", baseline["sentencepiece"])
    report["growth"] = growth

    # The reference dump, scaled from the largest size by compressed bytes and by articles.
    largest = copies_list[-1]
    one = report["copies"][copies_list[0]]
    scale = {"bytes": cli.reference_dump_bytes / (one["dump_bytes"] / copies_list[0]),
             "articles": cli.reference_articles / (one["prepare_2"]["articles"] / copies_list[0])}
    print(f"\nThe reference dump ({cli.reference_dump_bytes / 1e9:.1f} GB compressed, "
          f"{cli.reference_articles / 1e6:.2f}M articles) is x{scale['bytes']:,.0f} the excerpt by bytes and "
          f"x{scale['articles']:,.0f} by articles (the excerpt's pages are longer than the average page).")
    print(f"{'stage':<44}{'by bytes: hours':>16}{'GiB':>7}{'by articles: hours':>20}{'GiB':>7}")
    prediction = {}
    for stage, title in (("prepare_2", "prepare_data.py, 2 processes"), ("prepare_1", "prepare_data.py, 1 process"),
                         ("sample", "sentence sampling"), ("tokens", "token cache")):
        cells = {way: predict(stage_rows[stage][-1], largest, factor, growth[stage], baseline[stage.split("_")[0]])
                 for way, factor in scale.items()}
        prediction[stage] = cells
        print(f"{title:<44}" + "".join(f"{seconds / 3600:>16.2f}{mib / 1024:>7.1f}" if way == "bytes" else
                                       f"{seconds / 3600:>20.2f}{mib / 1024:>7.1f}" for way, (seconds, mib) in cells.items()))
    spm_seconds, spm_mib = predict(report["sentencepiece"][-1], counts[-1], REFERENCE_SAMPLES, growth["sentencepiece"],
                                   baseline["sentencepiece"])
    prediction["sentencepiece"] = (spm_seconds, spm_mib)
    print(f"{'SentencePiece on 10M sentences (x%.1f beyond)' % (REFERENCE_SAMPLES / counts[-1]):<44}"
          f"{spm_seconds / 3600:>16.2f}{spm_mib / 1024:>7.1f}   (the same at either scale)")
    for key, name in (("data_bytes", "data folder"), ("token_cache_bytes", "token cache")):
        per_copy = report["copies"][largest][key] / largest
        print(f"disk, {name}: {per_copy * largest / 1e9:.2f} GB at x{largest}; "
              + ", ".join(f"{per_copy * factor / 1e9:.1f} GB by {way}" for way, factor in scale.items()))
    report["scale"], report["prediction"] = scale, prediction
    if cli.json:
        cli.json.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
