#!/usr/bin/env python3
"""End-to-end speed of `edgeglm run`: prompt tok/s, generation tok/s and peak RSS, as medians over
repeated runs (the machines are shared and noisy). Prints a markdown table for docs/BENCHMARKS.md.

    python3 bench/e2e.py --reps 7 [--threads 2] [--bin build/bin/edgeglm]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
PROMPT = ("Once upon a time, there was a little girl named Lily who lived in a small house near "
          "the forest. Every morning she walked to the river to look at the fish, and one day "
          "she saw something shining under the water. She called her brother Tom and")
TIMING = re.compile(r"prompt: (\d+) tokens \((\d+) evaluated\) in ([\d.]+) ms, ([\d.]+) tok/s \| "
                    r"generation: (\d+) tokens in ([\d.]+) ms, ([\d.]+) tok/s .* peak RSS ([\d.]+) MiB")

MODELS = [
    ("stories260K (F32, llama2.c .bin)",
     ["-m", os.path.join(SHARED, "models/stories260K/stories260K.bin"),
      "--tokenizer", os.path.join(SHARED, "models/stories260K/tok512.bin")]),
    ("stories260K (F32 GGUF)", ["-m", os.path.join(SHARED, "models/stories260K/stories260K.gguf")]),
    ("SmolLM2-135M-Instruct (Q4_1 GGUF)",
     ["-m", os.path.join(ROOT, "models/smollm2-135m-instruct-q4_1.gguf")]),
]


def run_once(binary, model_args, threads, n):
    cmd = [binary, "run", *model_args, "-p", PROMPT, "-n", str(n), "--temp", "0", "--ignore-eos",
           "-t", str(threads), "--ctx", "512"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    m = TIMING.search(out.stderr)
    if not m:
        sys.exit("no timing line in: " + out.stderr)
    return {"n_prompt": int(m.group(2)), "pp": float(m.group(4)), "n_gen": int(m.group(5)),
            "tg": float(m.group(7)), "rss": float(m.group(8))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/bin/edgeglm"))
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-n", type=int, default=128)
    a = ap.parse_args()
    print(f"| model | threads | prompt tokens | prompt tok/s (median [min, max]) | "
          f"generated | generation tok/s (median [min, max]) | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for name, args in MODELS:
        if not os.path.exists(args[1]):
            print(f"| {name} | skipped: {args[1]} not present | | | | | |")
            continue
        run_once(a.bin, args, a.threads, 8)  # warm the page cache
        runs = [run_once(a.bin, args, a.threads, a.n) for _ in range(a.reps)]
        pp = [r["pp"] for r in runs]
        tg = [r["tg"] for r in runs]
        print(f"| {name} | {a.threads} | {runs[0]['n_prompt']} | {statistics.median(pp):.1f} "
              f"[{min(pp):.1f}, {max(pp):.1f}] | {runs[0]['n_gen']} | {statistics.median(tg):.1f} "
              f"[{min(tg):.1f}, {max(tg):.1f}] | {statistics.median(r['rss'] for r in runs):.1f} |")


if __name__ == "__main__":
    main()
