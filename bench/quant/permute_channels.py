#!/usr/bin/env python3
"""Permute the channels of an F32 llama-family GGUF so that int8 activation blocks group channels
of similar magnitude (RPTQ-style reordering experiment, tooling only: pip install torch gguf numpy).

edgeglm quantizes activations in blocks of 32 channels with one scale each, so one large channel
costs the other 31 of its block their precision. A permutation of the residual stream (embedding
columns, every norm weight, the columns of attn_q/k/v, ffn_gate/up and output, the rows of
attn_output and ffn_down) and of each layer's FFN intermediate channels (rows of ffn_gate/up,
columns of ffn_down) computes the same function exactly; it only changes which channels share a
block. Channels are sorted by their RMS over calibration tokens at the attention and FFN inputs
(after SmoothQuant-style smoothing of strength ALPHA, as `quantize --calib` applies it), the
residual stream by the largest log(RMS / median) over all layers' sites.

usage: permute_channels.py IN_F32.gguf CALIB.logits OUT.gguf max|mean|nodown [ALPHA]
  CALIB.logits: `edgeglm eval -m IN --ppl CALIB.txt --save-logits CALIB.logits` (its tokens)
Result: docs/BENCHMARKS.md, "Channel reordering for the int8 activation blocks: measured, not adopted".
"""
import sys, numpy as np, torch, gguf
sys.path.insert(0, __import__("os").path.dirname(__file__))
from torch_dynamic_int8 import Llama, BaseLogits
src, calib_logits, dst, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
alpha = float(sys.argv[5]) if len(sys.argv) > 5 else 0.5
model = Llama(src).eval()
cfg = model.cfg
acc = {}
def hook(key):
    def f(mod, inp, out):
        x = inp[0].detach().double()
        s = acc.setdefault(key, [0.0, 0])
        s[0] = s[0] + (x * x).sum(0); s[1] += x.shape[0]
    return f
for i, b in enumerate(model.blocks):
    b.q.register_forward_hook(hook(('attn', i)))
    b.gate.register_forward_hook(hook(('ffn', i)))
    b.down.register_forward_hook(hook(('down', i)))
base = BaseLogits(calib_logits)
with torch.no_grad():
    for c in range(base.n_chunks):
        model(torch.from_numpy(base.tokens[c].astype(np.int64)))
def rms(key): s = acc[key]; return np.sqrt((s[0] / s[1]).numpy())
def colmax(*ws): return np.max(np.stack([np.abs(w.weight.detach().numpy()).max(0) for w in ws]), 0)
def smoothed(key, *ws):
    r = rms(key)
    if alpha <= 0: return r
    wm = colmax(*ws)
    s = np.clip(r**alpha / np.maximum(wm, 1e-12)**(1 - alpha), 1e-4, 1e4)
    return r / s
sites = []
for i, b in enumerate(model.blocks):
    sites.append(smoothed(('attn', i), b.q, b.k, b.v))
    sites.append(smoothed(('ffn', i), b.gate, b.up))
L = np.log(np.stack([m / np.median(m) for m in sites]) + 1e-12)
score = L.max(0) if mode == 'max' else L.mean(0)
perm = np.argsort(-score, kind='stable')
print('residual: top channels', perm[:8], 'score', np.round(score[perm[:8]], 2))
reader = gguf.GGUFReader(src)
writer = gguf.GGUFWriter(dst, reader.fields["general.architecture"].contents())
for key, field in reader.fields.items():
    if key.startswith("GGUF.") or key == "general.architecture": continue
    vtype = field.types[0]
    if vtype == gguf.GGUFValueType.ARRAY: writer.add_key_value(key, field.contents(), vtype, sub_type=field.types[-1])
    else: writer.add_key_value(key, field.contents(), vtype)
t = {}
for tensor in reader.tensors:
    shape = [int(x) for x in reversed(tensor.shape)]
    t[tensor.name] = np.array(tensor.data, dtype=np.float32).reshape(shape)
t["token_embd.weight"] = t["token_embd.weight"][:, perm]
if "output.weight" in t: t["output.weight"] = t["output.weight"][:, perm]
t["output_norm.weight"] = t["output_norm.weight"][perm]
for il in range(cfg.n_layers):
    b = f"blk.{il}."
    for n in ("attn_norm", "ffn_norm"): t[b + n + ".weight"] = t[b + n + ".weight"][perm]
    for n in ("attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up"): t[b + n + ".weight"] = t[b + n + ".weight"][:, perm]
    for n in ("attn_output", "ffn_down"): t[b + n + ".weight"] = t[b + n + ".weight"][perm, :]
    if mode != 'nodown':
        blk = model.blocks[il]
        m = smoothed(('down', il), blk.down)
        pd = np.argsort(-m, kind='stable')
        t[b + "ffn_gate.weight"] = t[b + "ffn_gate.weight"][pd, :]
        t[b + "ffn_up.weight"] = t[b + "ffn_up.weight"][pd, :]
        t[b + "ffn_down.weight"] = t[b + "ffn_down.weight"][:, pd]
for tensor in reader.tensors:
    writer.add_tensor(tensor.name, np.ascontiguousarray(t[tensor.name]))
writer.write_header_to_file(); writer.write_kv_data_to_file(); writer.write_tensors_to_file(); writer.close()
