#!/usr/bin/env python3
"""Cross-check of `edgeglm convert` against an independent GGUF reader (tooling, not CI).

Converts each Hugging Face reference fixture to GGUF with edgeglm, loads the GGUF with
transformers' GGUF loader (which follows llama.cpp's conventions, including the q/k row
permutation of llama files), and compares its logits with the fixture's reference logits.

    python3 scripts/check_gguf_with_transformers.py [--bin build/bin/edgeglm] [archs...]
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import torch
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/bin/edgeglm"))
    # llama_scaled is left out: a converted llama3-scaled model carries its scaling as the
    # rope_freqs.weight tensor (llama.cpp's representation), which transformers' GGUF loader does
    # not read (it reconstructs rope scaling from metadata for gpt-oss only).
    ap.add_argument("archs", nargs="*", default=["llama", "qwen2"])
    a = ap.parse_args()
    worst = 0.0
    for arch in a.archs:
        src = os.path.join(ROOT, "tests/data/ref", arch)
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([a.bin, "convert", src, "-o", os.path.join(d, "m.gguf")], check=True,
                           capture_output=True)
            model = AutoModelForCausalLM.from_pretrained(d, gguf_file="m.gguf", dtype=torch.float32)
            ref = json.load(open(os.path.join(src, "reference.json")))
            with torch.no_grad():
                out = model(torch.tensor([ref["input_ids"]])).logits[0].numpy()
            exp = np.fromfile(os.path.join(src, ref["logits_file"]), dtype="<f4").reshape(out.shape)
            diff = float(np.abs(out - exp).max())
            same = bool((out.argmax(-1) == exp.argmax(-1)).all())
            print(f"{arch}: max |logit diff| {diff:.2e}, argmax identical: {same}")
            worst = max(worst, diff if same else float("inf"))
    raise SystemExit(0 if worst < 1e-3 else 1)


if __name__ == "__main__":
    main()
