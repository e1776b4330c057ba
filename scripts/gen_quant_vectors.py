#!/usr/bin/env python3
"""Writes the quant-format test fixtures in tests/data/quant/ (read by tests/quant/test_quant.cpp).

Expected values come from the PyPI package `gguf` (gguf-py, llama.cpp's own Python library): its
gguf.quants dequantizes every format used here and quantizes F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1 and
Q8_0 bit-exactly like ggml's reference C code. Where gguf-py has nothing (Q8_1 and Q8_K, both
directions) the script computes the format's definition with numpy float32 and says so in
SOURCES below.

    pip install gguf numpy
    python3 scripts/gen_quant_vectors.py            # rewrites tests/data/quant/*

Committed fixtures were generated with gguf 0.19.0, numpy 2.4.6, seed 20240611 (recorded in
tests/data/quant/GENERATED.txt on every run). The output is
deterministic for a given seed and gguf/numpy version.

File format (all little-endian), one file per (direction, type):
    offset 0   4 bytes  magic b"EGQF"
           4   u32      version (1)
           8   u32      kind: 0 = dequantize fixture (raw bytes -> float32)
                              1 = quantize fixture   (float32 -> raw bytes)
          12   u32      GGUF type id (ggml_type)
          16   u32      n_elements (multiple of the block size)
          20   u32      n_bytes    (= n_elements / block_size * block_bytes)
          24   payload  kind 0: n_bytes raw blocks, then n_elements float32 expected values
                        kind 1: n_elements float32 inputs, then n_bytes expected raw blocks
Names: dequant_<type>.bin, quant_<type>.bin (type in lower case, e.g. quant_q4_0.bin).

Also writes fp16_table.txt: the FNV-1a 64-bit hash of the float32 bits of all 65536 fp16 values
converted by numpy (index order 0x0000..0xffff), so the test covers every half without a 256 KB
table.
"""
import os
import struct
import sys
from importlib import metadata

import numpy as np

from gguf import GGMLQuantizationType as T
from gguf import quants as Q
from gguf.constants import GGML_QUANT_SIZES as GGUF_PY_SIZES

# gguf-py 0.19.0 still lists Q8_1 as 40 bytes (float32 d and s, ggml's layout before 2023); ggml
# and llama.cpp now use 36 (fp16 d and s), which is what edgeglm implements. Q8_1 is an
# activation format that never appears in GGUF files, so only the size table needs fixing here.
GGML_QUANT_SIZES = dict(GGUF_PY_SIZES)
GGML_QUANT_SIZES[T.Q8_1] = (32, 36)

SEED = 20240611
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "quant")

# Where each expected value comes from.
SOURCES = {
    "dequant": "gguf.quants.dequantize (numpy by-definition for Q8_1, Q8_K)",
    "quant": "gguf.quants.quantize for F16/BF16/Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 (numpy by-definition for Q8_1, Q8_K)",
}

# Byte offsets of the fp16 scale fields inside one block, for making random blocks valid.
FP16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0], T.Q8_1: [0, 2],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}

rng = np.random.default_rng(SEED)


def write_fixture(name, kind, qtype, n_elems, raw, floats):
    raw = np.ascontiguousarray(raw, dtype=np.uint8).ravel()
    floats = np.ascontiguousarray(floats, dtype=np.float32).ravel()
    bs, bb = GGML_QUANT_SIZES[qtype]
    assert floats.size == n_elems and raw.size == n_elems // bs * bb, name
    hdr = b"EGQF" + struct.pack("<5I", 1, kind, int(qtype), n_elems, raw.size)
    body = raw.tobytes() + floats.tobytes() if kind == 0 else floats.tobytes() + raw.tobytes()
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(hdr + body)


def random_scales(count):
    """Finite fp16 scales: random sign, magnitude 2^[-12, 3], a few subnormal/zero ones."""
    mag = np.exp2(rng.uniform(-12, 3, count)).astype(np.float32)
    mag[rng.random(count) < 0.05] = 2.0 ** -20  # fp16 subnormal
    mag[rng.random(count) < 0.02] = 0.0
    sign = np.where(rng.random(count) < 0.5, -1.0, 1.0).astype(np.float32)
    return (sign * mag).astype(np.float16)


def random_blocks(qtype, n_blocks):
    bs, bb = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, bb), dtype=np.uint8)
    if qtype == T.Q8_K:
        d = (rng.standard_normal(n_blocks) * 0.01).astype(np.float32)
        raw[:, 0:4] = d.view(np.uint8).reshape(n_blocks, 4)
    else:
        for off in FP16_FIELDS[qtype]:
            raw[:, off:off + 2] = random_scales(n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw


def dequant_by_definition(qtype, raw):
    """numpy float32 dequantization for the two formats gguf-py lacks (value = q * d)."""
    if qtype == T.Q8_1:
        d = raw[:, 0:2].copy().view(np.float16).astype(np.float32)
        qs = raw[:, 4:36].copy().view(np.int8).astype(np.float32)
        return qs * d
    if qtype == T.Q8_K:
        d = raw[:, 0:4].copy().view(np.float32)
        qs = raw[:, 4:260].copy().view(np.int8).astype(np.float32)
        return d * qs
    raise ValueError(qtype)


def gen_dequant():
    for qtype in [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q8_1,
                  T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_K]:
        bs, _ = GGML_QUANT_SIZES[qtype]
        n_blocks = 16 if bs == 32 else 4
        raw = random_blocks(qtype, n_blocks)
        if qtype in (T.Q8_1, T.Q8_K):
            out = dequant_by_definition(qtype, raw)
        else:
            out = Q.dequantize(raw, qtype)
        write_fixture(f"dequant_{qtype.name.lower()}.bin", 0, qtype, n_blocks * bs, raw, out)

    # F16 and BF16: random bit patterns (NaN and inf included) plus every special class.
    for qtype in (T.F16, T.BF16):
        bits = rng.integers(0, 1 << 16, size=1024, dtype=np.uint32).astype(np.uint16)
        bits[:8] = [0x0000, 0x8000, 0x0001, 0x83ff, 0x7c00, 0xfc00, 0x7e00, 0x7f80]
        raw = bits.view(np.uint8)
        out = Q.dequantize(raw, qtype)
        write_fixture(f"dequant_{qtype.name.lower()}.bin", 0, qtype, bits.size, raw, out)


def block_inputs(bs, n_random):
    """Rows of bs floats: random blocks at many scales plus hand-made edge cases."""
    rows = []
    for _ in range(n_random):
        scale = 10.0 ** rng.uniform(-4, 3)
        kind = rng.integers(0, 3)
        if kind == 0:
            v = rng.standard_normal(bs) * scale
        elif kind == 1:
            v = rng.uniform(-scale, scale, bs) + rng.uniform(-scale, scale)  # offset block
        else:
            v = rng.standard_t(3, bs) * scale  # heavy tails / outliers
        rows.append(v)
    rows.append(np.zeros(bs))                                         # all zero
    rows.append(np.full(bs, 0.75))                                    # constant
    rows.append(-np.abs(rng.standard_normal(bs)))                     # all negative
    rows.append(np.abs(rng.standard_normal(bs)) + 3.0)                # all positive, offset
    t = np.zeros(bs); t[0] = 127.0; t[1:] = (np.arange(1, bs) % 40 - 20) + 0.5
    rows.append(t)                                                    # x/d ties for Q8 (d=1)
    t = np.zeros(bs); t[0] = -8.0; t[1:] = (np.arange(1, bs) % 16 - 8) + 0.5
    rows.append(t)                                                    # x/d ties for Q4_0 (d=1)
    t = rng.standard_normal(bs); t[3] = 5.0; t[7] = -5.0
    rows.append(t)                                                    # +max and -max, equal |x|
    rows.append(rng.standard_normal(bs) * 1e-6)                       # tiny: fp16 d underflows
    rows.append(rng.standard_normal(bs) * 3e4)                        # large
    return np.concatenate(rows).astype(np.float32)


def quant_by_definition(qtype, x):
    """numpy ports of ggml's Q8_1 / Q8_K reference quantizers (no gguf-py equivalent)."""
    bs, bb = GGML_QUANT_SIZES[qtype]
    blocks = x.reshape(-1, bs)
    out = np.zeros((blocks.shape[0], bb), dtype=np.uint8)
    for i, b in enumerate(blocks):
        if qtype == T.Q8_1:
            amax = np.float32(np.abs(b).max())
            d = np.float32(amax / np.float32(127))
            idd = np.float32(1) / d if d != 0 else np.float32(0)
            prod = (b * idd).astype(np.float32)
            qs = Q.np_roundf(prod).astype(np.int8)  # roundf: half away from zero
            s = np.float32(np.float32(int(qs.astype(np.int32).sum())) * d)
            out[i, 0:2] = np.array([d], np.float16).view(np.uint8)
            out[i, 2:4] = np.array([s], np.float16).view(np.uint8)
            out[i, 4:36] = qs.view(np.uint8)
        else:  # Q8_K
            ia = int(np.argmax(np.abs(b)))  # first largest magnitude
            mx = np.float32(b[ia])
            if np.abs(mx) == 0:
                continue  # all-zero block: every byte zero
            iscale = np.float32(np.float32(-127) / mx)
            qs = np.minimum(127, np.rint((iscale * b).astype(np.float32))).astype(np.int8)  # ties even
            out[i, 0:4] = np.array([np.float32(1) / iscale], np.float32).view(np.uint8)
            out[i, 4:260] = qs.view(np.uint8)
            bsums = qs.astype(np.int32).reshape(16, 16).sum(axis=1).astype(np.int16)
            out[i, 260:292] = bsums.view(np.uint8)
    return out


def f16_sample():
    """float32 inputs that exercise float->half rounding: ties, subnormals, overflow, specials."""
    vals = [0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, 65519.99, 65520.0, -65520.0, 1e6,
            2.0 ** -14, 2.0 ** -24, 2.0 ** -25, 2.0 ** -25 * 1.0000001, 2.0 ** -26, 3 * 2.0 ** -25,
            5 * 2.0 ** -25, 2.0 ** -14 - 2.0 ** -25, 1e-10, -1e-10, 1.0 + 2.0 ** -11,
            1.0 + 3 * 2.0 ** -11, 1.0 + 2.0 ** -11 + 2.0 ** -30, 2048.0 + 1.0, 2048.0 + 3.0]
    bits = rng.integers(0, 1 << 32, size=1500, dtype=np.uint64).astype(np.uint32)
    # exponents biased toward the fp16 range (incl. subnormal) so rounding paths dominate
    e = rng.integers(100, 145, size=1500).astype(np.uint32)
    focused = (bits & np.uint32(0x807fffff)) | (e << np.uint32(23))
    # exact ties: a half mantissa plus exactly half an ulp
    h = rng.integers(0x0001, 0x7bff, size=500, dtype=np.uint32).astype(np.uint16)
    hf = h.view(np.float16).astype(np.float32)
    ulp = (np.nextafter(h.view(np.float16), np.float16(np.inf)).astype(np.float32) - hf)
    ties = (hf + ulp / 2).astype(np.float32)
    x = np.concatenate([np.array(vals, np.float32), bits.view(np.float32),
                        focused.view(np.float32), ties, -ties])
    n = (x.size + 31) // 32 * 32
    return np.resize(x, n).astype(np.float32)


def gen_quant():
    for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q8_1, T.Q8_K):
        bs, _ = GGML_QUANT_SIZES[qtype]
        x = block_inputs(bs, 24 if bs == 32 else 6)
        if qtype in (T.Q8_1, T.Q8_K):
            raw = quant_by_definition(qtype, x)
        else:
            raw = Q.quantize(x.reshape(1, -1), qtype)
        write_fixture(f"quant_{qtype.name.lower()}.bin", 1, qtype, x.size, raw, x)

    x = f16_sample()
    write_fixture("quant_f16.bin", 1, T.F16, x.size, Q.quantize(x, T.F16).view(np.uint8), x)
    write_fixture("quant_bf16.bin", 1, T.BF16, x.size, Q.quantize(x, T.BF16).view(np.uint8), x)


def gen_fp16_table():
    allh = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    bits = allh.astype(np.float32).view(np.uint32)
    h = 0xCBF29CE484222325
    for b in bits.astype("<u4").tobytes():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    with open(os.path.join(OUT, "fp16_table.txt"), "w") as f:
        f.write("# FNV-1a 64 of the float32 bits (little-endian) of fp16 0x0000..0xffff, via numpy\n")
        f.write(f"{h:016x}\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    with np.errstate(over="ignore"):  # fp16 overflow to inf is part of what is being recorded
        gen_dequant()
        gen_quant()
        gen_fp16_table()
    versions = f"gguf {metadata.version('gguf')}, numpy {np.__version__}, seed {SEED}"
    with open(os.path.join(OUT, "GENERATED.txt"), "w") as f:
        f.write("Written by scripts/gen_quant_vectors.py (format described there) with " + versions + ".\n")
        f.write(f"dequant_*: {SOURCES['dequant']}.\nquant_*: {SOURCES['quant']}.\n")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{versions}: {len(os.listdir(OUT))} files, {total} bytes in {os.path.normpath(OUT)}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
