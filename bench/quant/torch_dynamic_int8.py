#!/usr/bin/env python3
"""PyTorch's own dynamic INT8 (torch.ao.quantization.quantize_dynamic) as a reference for
`edgeglm quantize --scheme int8`: top-1 agreement, KL divergence and perplexity against a base
model's log-probabilities saved by `edgeglm eval --save-logits`.

Tooling only (pip install torch gguf numpy); nothing in the build or the tests needs it.

The model is a plain Llama forward pass written here with one torch.nn.Linear per matmul (q, k, v,
o, gate, up, down, output), built from an F32 GGUF file, so quantize_dynamic({nn.Linear}) converts
exactly the matmuls edgeglm's int8 scheme converts. The token embedding is a lookup, not a Linear,
and stays float in both. A GGUF "llama" file stores q/k rows in the order of llama.cpp's rope,
which rotates adjacent pairs (x[2i], x[2i+1]); the forward pass does the same.

The evaluation reads the chunks' tokens from the logits file (eval/logits_file.h: the llama.cpp
protocol, BOS over each chunk's first token, second half scored), so every variant sees exactly
the tokens edgeglm saw. It first runs the float model: its KLD against the saved base must be
near zero, which checks this forward pass against edgeglm's before any int8 number is trusted.

PyTorch's dynamic Linear computes one activation scale and zero point (uint8, asymmetric) over
its whole input: over every token of a chunk when a prompt is run at once, per token in decode
(one token per call). Both are measured, the second by calling each Linear one row at a time.
On the x86 engine (fbgemm) activations use 7 bits (reduce_range); qnnpack (ARM) uses 8.

  python3 bench/quant/torch_dynamic_int8.py BASE_F32.gguf BASE.logits [--chunks N] [--threads T]
"""
import argparse
import math
import struct
import sys
import time

import numpy as np
import torch
from torch import nn

try:
    import gguf
except ImportError:
    sys.exit("needs the gguf package: pip install gguf")


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
class Config:
    def __init__(self, reader):
        def field(name, default=None):
            f = reader.fields.get(name)
            return f.contents() if f is not None else default

        arch = field("general.architecture")
        if arch != "llama":
            sys.exit(f"only general.architecture = llama is handled here, not {arch}")
        self.dim = int(field("llama.embedding_length"))
        self.n_layers = int(field("llama.block_count"))
        self.n_heads = int(field("llama.attention.head_count"))
        self.n_kv = int(field("llama.attention.head_count_kv", self.n_heads))
        self.ffn = int(field("llama.feed_forward_length"))
        self.eps = float(field("llama.attention.layer_norm_rms_epsilon", 1e-5))
        self.rope_base = float(field("llama.rope.freq_base", 10000.0))
        self.head_dim = self.dim // self.n_heads
        self.rope_dim = int(field("llama.rope.dimension_count", self.head_dim))


def load_tensors(reader):
    out = {}
    for t in reader.tensors:
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            sys.exit(f"{t.name} is {t.tensor_type.name}: give an F32 file "
                     "(edgeglm quantize IN -o OUT --scheme f32)")
        shape = [int(x) for x in reversed(t.shape)]  # GGUF lists the fastest dimension first
        out[t.name] = torch.from_numpy(np.array(t.data, dtype=np.float32).reshape(shape))
    return out


def linear(weight):
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(weight)
    return lin


class Block(nn.Module):
    def __init__(self, cfg, w, i):
        super().__init__()
        p = f"blk.{i}."
        self.attn_norm = w[p + "attn_norm.weight"]
        self.ffn_norm = w[p + "ffn_norm.weight"]
        self.q = linear(w[p + "attn_q.weight"])
        self.k = linear(w[p + "attn_k.weight"])
        self.v = linear(w[p + "attn_v.weight"])
        self.o = linear(w[p + "attn_output.weight"])
        self.gate = linear(w[p + "ffn_gate.weight"])
        self.up = linear(w[p + "ffn_up.weight"])
        self.down = linear(w[p + "ffn_down.weight"])


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope_pairs(x, cos, sin, rope_dim):
    # x: [heads, n, head_dim]; rotates adjacent pairs of the first rope_dim dimensions
    r = x[..., :rope_dim]
    even, odd = r[..., 0::2], r[..., 1::2]
    rot = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)
    return torch.cat((rot, x[..., rope_dim:]), dim=-1)


class Llama(nn.Module):
    def __init__(self, path):
        super().__init__()
        reader = gguf.GGUFReader(path)
        self.cfg = Config(reader)
        w = load_tensors(reader)
        self.embed = w["token_embd.weight"]
        self.out_norm = w["output_norm.weight"]
        self.output = linear(w.get("output.weight", self.embed))  # tied when absent
        self.blocks = nn.ModuleList(Block(self.cfg, w, i) for i in range(self.cfg.n_layers))

    def forward(self, tokens):
        c = self.cfg
        n = tokens.shape[0]
        x = self.embed[tokens]
        pos = torch.arange(n, dtype=torch.float64)
        inv = c.rope_base ** (-torch.arange(0, c.rope_dim, 2, dtype=torch.float64) / c.rope_dim)
        ang = pos[:, None] * inv[None, :]
        cos, sin = torch.cos(ang).float(), torch.sin(ang).float()
        mask = torch.full((n, n), float("-inf")).triu(1)
        group = c.n_heads // c.n_kv
        for b in self.blocks:
            h = rms_norm(x, b.attn_norm, c.eps)
            q = b.q(h).view(n, c.n_heads, c.head_dim).transpose(0, 1)
            k = b.k(h).view(n, c.n_kv, c.head_dim).transpose(0, 1)
            v = b.v(h).view(n, c.n_kv, c.head_dim).transpose(0, 1)
            q = rope_pairs(q, cos, sin, c.rope_dim)
            k = rope_pairs(k, cos, sin, c.rope_dim)
            k = k.repeat_interleave(group, dim=0)
            v = v.repeat_interleave(group, dim=0)
            att = (q @ k.transpose(1, 2)) / math.sqrt(c.head_dim) + mask
            y = torch.softmax(att, dim=-1) @ v
            x = x + b.o(y.transpose(0, 1).reshape(n, c.dim))
            h = rms_norm(x, b.ffn_norm, c.eps)
            x = x + b.down(torch.nn.functional.silu(b.gate(h)) * b.up(h))
        return self.output(rms_norm(x, self.out_norm, c.eps))


# ---------------------------------------------------------------------------------------------
# The saved base (eval/logits_file.h, version 1)
# ---------------------------------------------------------------------------------------------
class BaseLogits:
    def __init__(self, path):
        self.f = open(path, "rb")
        head = self.f.read(48)
        magic, version, protocol, n_vocab, n_ctx, n_chunks, bos, _vh, _r = struct.unpack(
            "<8sIIIIIiQQ", head)
        if magic != b"EGLOGPRB" or version != 1 or protocol != 0:
            sys.exit(f"{path}: not a version-1 llama.cpp-protocol logits file")
        self.n_vocab, self.n_ctx, self.n_chunks = n_vocab, n_ctx, n_chunks
        self.tokens = np.frombuffer(self.f.read(4 * n_chunks * n_ctx), dtype="<i4").reshape(
            n_chunks, n_ctx)
        self.rows_at = 48 + 4 * n_chunks * n_ctx
        self.n_scored = n_ctx - 1 - n_ctx // 2
        self.row_bytes = 16 + 2 * n_vocab
        self.row_dtype = np.dtype([("lp_min", "<f4"), ("lp_step", "<f4"), ("nll", "<f4"),
                                   ("argmax", "<i4"), ("code", "<u2", (n_vocab,))])

    def chunk(self, c):
        self.f.seek(self.rows_at + c * self.n_scored * self.row_bytes)
        rows = np.frombuffer(self.f.read(self.n_scored * self.row_bytes), dtype=self.row_dtype)
        lp = rows["lp_min"][:, None].astype(np.float64) + \
            rows["code"].astype(np.float64) * rows["lp_step"][:, None].astype(np.float64)
        lp -= np.logaddexp.reduce(lp, axis=1, keepdims=True)  # renormalise, as edgeglm does
        return lp, rows["nll"].astype(np.float64), rows["argmax"]


class PerToken(nn.Module):
    """A dynamic quantized Linear called one token (row) at a time, so each token's activations
    get their own scale and zero point, as in PyTorch decode; a whole prompt at once shares one."""

    def __init__(self, lin):
        super().__init__()
        self.lin = lin

    def forward(self, x):
        return torch.cat([self.lin(x[i:i + 1]) for i in range(x.shape[0])])


def wrap_per_token(model):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, DynamicLinear):
                setattr(parent, name, PerToken(child))


def evaluate(model, base, chunks):
    klds, same, nll = [], 0, 0.0
    half = base.n_ctx // 2
    with torch.no_grad():
        for c in range(chunks):
            toks = torch.from_numpy(base.tokens[c].astype(np.int64))
            logits = model(toks)[half:base.n_ctx - 1].double()
            lq = torch.log_softmax(logits, dim=-1).numpy()
            lp, _, argmax = base.chunk(c)
            klds.append((np.exp(lp) * (lp - lq)).sum(axis=1))
            same += int((logits.argmax(dim=-1).numpy() == argmax).sum())
            nxt = base.tokens[c][half + 1:base.n_ctx]
            nll -= lq[np.arange(len(nxt)), nxt].sum()
    kld = np.concatenate(klds)
    n = len(kld)
    return {"positions": n, "mean_kld": float(kld.mean()), "median_kld": float(np.median(kld)),
            "p99_kld": float(np.quantile(kld, 0.99)), "top1": same / n,
            "top1_se": math.sqrt(max(same / n * (1 - same / n), 1e-12) / n),
            "ppl": math.exp(nll / n)}


def base_ppl(base, chunks):
    nll, n = 0.0, 0
    for c in range(chunks):
        _, t, _ = base.chunk(c)
        nll += t.sum()
        n += len(t)
    return math.exp(nll / n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="the base model as an F32 GGUF file")
    ap.add_argument("logits", help="its log-probabilities from edgeglm eval --save-logits")
    ap.add_argument("--chunks", type=int, default=-1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engines", default="x86,qnnpack",
                    help="quantized engines to run (x86: fbgemm kernels, 7-bit activations; "
                         "qnnpack: the ARM kernels)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = BaseLogits(args.logits)
    chunks = base.n_chunks if args.chunks < 0 else min(args.chunks, base.n_chunks)
    ref_ppl = base_ppl(base, chunks)
    print(f"base (saved by edgeglm): {chunks} chunks of {base.n_ctx}, perplexity {ref_ppl:.4f}")

    from torch.ao.quantization import (default_dynamic_qconfig, per_channel_dynamic_qconfig,
                                       quantize_dynamic)
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    per_tensor, per_channel = default_dynamic_qconfig, per_channel_dynamic_qconfig
    # (name, weight qconfig, engine, activations per token, only matmuls of K % 32 == 0)
    variants = [("float (this forward pass, checks it against edgeglm)", None, None, False, False)]
    for engine in args.engines.split(","):
        if engine not in torch.backends.quantized.supported_engines:
            sys.exit(f"engine {engine} not in {torch.backends.quantized.supported_engines}")
        variants += [
            (f"{engine}: per-tensor weights, one activation scale per chunk", per_tensor, engine,
             False, False),
            (f"{engine}: per-channel weights, one activation scale per chunk", per_channel,
             engine, False, False),
            (f"{engine}: per-channel weights, one activation scale per token", per_channel,
             engine, True, False)]
    cfg = Config(gguf.GGUFReader(args.model))  # the Linear inputs are dim (q k v gate up output, o) and ffn (down)
    if cfg.dim % 32 or cfg.ffn % 32:
        # 32-block formats need rows of a multiple of 32: llama.cpp (and edgeglm before its int8 padded the
        # FFN, 3f0ae4c) leave the others in F16
        variants += [(f"{e}: per-channel weights, per token, only K % 32 == 0 (as llama.cpp Q8_0)",
                      per_channel, e, True, True) for e in args.engines.split(",")]
    rows = []
    for name, qconfig, engine, per_token, aligned_only in variants:
        model = Llama(args.model).eval()
        if qconfig is not None:
            torch.backends.quantized.engine = engine
            spec = {nn.Linear: qconfig}
            if aligned_only:
                spec = {n: qconfig for n, m in model.named_modules()
                        if isinstance(m, nn.Linear) and m.in_features % 32 == 0}
            n_lin = len([m for m in model.modules() if isinstance(m, nn.Linear)])
            model = quantize_dynamic(model, spec, dtype=torch.qint8)
            n_q = sum(isinstance(m, DynamicLinear) for m in model.modules())
            expect = len(spec) if aligned_only else n_lin
            if n_q != expect or n_q == 0:
                sys.exit(f"{name}: {n_q} dynamic Linear modules, expected {expect}")
            if per_token:
                wrap_per_token(model)
        t0 = time.time()
        r = evaluate(model, base, chunks)
        r["name"], r["seconds"] = name, time.time() - t0
        rows.append(r)
        print(f"{name}: top-1 {100 * r['top1']:.2f}% (+/- {100 * r['top1_se']:.2f}), "
              f"mean KLD {r['mean_kld']:.6f}, median {r['median_kld']:.6f}, "
              f"p99 {r['p99_kld']:.5f}, PPL {r['ppl']:.4f} ({100 * (r['ppl'] / ref_ppl - 1):+.2f}%),"
              f" {r['positions']} positions, {r['seconds']:.0f} s", flush=True)
    if rows[0]["mean_kld"] > 1e-4:
        print("warning: the float forward pass does not match edgeglm's base; "
              "the int8 rows are not comparable", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
