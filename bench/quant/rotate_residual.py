#!/usr/bin/env python3
"""Rotate the residual stream of an F32 llama-family GGUF by an orthogonal matrix (QuaRot-style
experiment, tooling only: `pip install gguf numpy`).

The RMSNorm weights are folded into the matrices that read the normed stream (attn_q/k/v,
ffn_gate/up, output), every matrix reading the stream gets R^T on its input side, every matrix
writing it (attn_output, ffn_down) and the embedding get R on their output side; the norm weights
become 1. The result computes the same function in exact arithmetic (`edgeglm eval --logits` of
the base: KLD ~1e-7, top-1 99.99%); only how the weights and activations quantize changes. A tied
embedding is untied (the output matrix gets the final norm folded in).

usage: rotate_residual.py IN.gguf OUT.gguf had|orth SEED
  had:  a Hadamard matrix with random signs (dims 2^k * m: kron(random orthogonal m x m, Hadamard))
  orth: a random orthogonal matrix (QR of a Gaussian one)
Results: docs/BENCHMARKS.md, "Residual rotation (QuaRot-style): measured, not adopted".
"""
import sys

import gguf
import numpy as np


def hadamard(n):
    h = np.array([[1.0]])
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(n)


def rotation(d, mode, rng):
    if mode == "orth":
        r, _ = np.linalg.qr(rng.standard_normal((d, d)))
        return r
    p = d & -d  # largest power of two dividing d
    m = d // p
    qm, _ = np.linalg.qr(rng.standard_normal((m, m))) if m > 1 else (np.eye(1), None)
    return np.kron(qm, hadamard(p)) * rng.choice([-1.0, 1.0], size=d)[None, :]


def main():
    src, dst, mode, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if mode not in ("had", "orth"):
        sys.exit("mode must be had or orth")
    reader = gguf.GGUFReader(src)
    writer = gguf.GGUFWriter(dst, reader.fields["general.architecture"].contents())
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(key, field.contents(), vtype, sub_type=field.types[-1])
        else:
            writer.add_key_value(key, field.contents(), vtype)
    t = {}
    for tensor in reader.tensors:
        if tensor.tensor_type != gguf.GGMLQuantizationType.F32:
            sys.exit(f"{tensor.name}: not F32 (convert with `edgeglm quantize IN -o OUT --scheme f32`)")
        shape = [int(x) for x in reversed(tensor.shape)]
        t[tensor.name] = np.array(tensor.data, dtype=np.float64).reshape(shape)
    d = t["token_embd.weight"].shape[1]
    r = rotation(d, mode, np.random.default_rng(seed))
    assert np.allclose(r @ r.T, np.eye(d), atol=1e-10)
    n_layer = 1 + max(int(k.split(".")[1]) for k in t if k.startswith("blk."))
    out_w = t.get("output.weight", t["token_embd.weight"])
    t["output.weight"] = out_w * t["output_norm.weight"][None, :] @ r.T
    t["output_norm.weight"] = np.ones(d)
    t["token_embd.weight"] = t["token_embd.weight"] @ r.T
    for il in range(n_layer):
        b = f"blk.{il}."
        for norm, readers in (("attn_norm", ("attn_q", "attn_k", "attn_v")), ("ffn_norm", ("ffn_gate", "ffn_up"))):
            g = t[b + norm + ".weight"]
            for name in readers:
                t[b + name + ".weight"] = t[b + name + ".weight"] * g[None, :] @ r.T
            t[b + norm + ".weight"] = np.ones(d)
        for name in ("attn_output", "ffn_down"):
            t[b + name + ".weight"] = r @ t[b + name + ".weight"]
    order = [tensor.name for tensor in reader.tensors]
    if "output.weight" not in order:
        order.insert(order.index("output_norm.weight") + 1, "output.weight")
    for name in order:
        writer.add_tensor(name, np.ascontiguousarray(t[name].astype(np.float32)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
