#!/usr/bin/env python3
"""Writes the malformed-file corpus for the format parsers and the fuzzers' valid seeds.

  tests/data/corpus/{gguf,llama2c,safetensors}/  every file must be REJECTED with an error that
                                                 names it (tests/formats/corpus_test.cpp)
  tests/fuzz/seeds/{gguf,llama2c,safetensors}/   small VALID files the fuzzers start from

Deterministic, standard library only. Run from anywhere: python3 scripts/make_corpus.py
Inputs that once crashed a fuzzer are committed beside these as crash-*.* and are kept.
"""
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "data", "corpus")
SEEDS = os.path.join(ROOT, "tests", "fuzz", "seeds")

# ---------------------------------------------------------------- GGUF
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
       BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}


def gstr(s):
    b = s if isinstance(s, bytes) else s.encode()
    return struct.pack("<Q", len(b)) + b


def gval(t, v):
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(gval(et, x) for x in items)
    return struct.pack(FMT[t], v)


def kv(key, t, v):
    return gstr(key) + struct.pack("<I", t) + gval(t, v)


def tinfo(name, dims, ttype, offset):
    return (gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            + struct.pack("<IQ", ttype, offset))


def gguf(kvs, infos, data, version=3, n_tensors=None, n_kv=None, align=32, magic=b"GGUF"):
    head = magic + struct.pack("<IQQ", version, len(infos) if n_tensors is None else n_tensors,
                               len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(infos)
    body += b"\0" * ((-len(body)) % align)
    return body + data


def good_gguf_parts():
    kvs = [kv("general.architecture", STR, "llama"),
           kv("llama.block_count", U32, 1),
           kv("llama.embedding_length", U32, 8),
           kv("t.f32", F32, 0.5),
           kv("t.i8", I8, -3),
           kv("t.bool", BOOL, 1),
           kv("t.u64", U64, 1 << 40),
           kv("t.f64", F64, 0.25),
           kv("tokenizer.ggml.tokens", ARR, (STR, ["<unk>", "<s>", "</s>", "a"])),
           kv("t.nested", ARR, (ARR, [(I32, [1, 2]), (STR, ["x"])]))]
    infos = [tinfo("token_embd.weight", [8, 4], 0, 0),
             tinfo("blk.0.attn_q.weight", [32, 2], 8, 128),
             tinfo("output_norm.weight", [8], 1, 224)]
    data = bytes(range(128)) + bytes(68) + bytes(28) + bytes(16)
    return kvs, infos, data


def gguf_corpus():
    out = {}
    kvs, infos, data = good_gguf_parts()
    good = gguf(kvs, infos, data)
    # Truncations: at every structure boundary region and every 7 bytes, up to the end of the data.
    for n in sorted(set(list(range(0, 40)) + list(range(40, len(good) - 1, 7)))):
        out["trunc_%04d.gguf" % n] = good[:n]
    out["wrong_magic.gguf"] = gguf(kvs, infos, data, magic=b"GGUX")
    out["lowercase_magic.gguf"] = gguf(kvs, infos, data, magic=b"gguf")
    out["version1.gguf"] = gguf(kvs, infos, data, version=1)
    out["version4.gguf"] = gguf(kvs, infos, data, version=4)
    out["big_endian.gguf"] = gguf(kvs, infos, data, version=0x03000000)
    out["kv_count_2e40.gguf"] = gguf(kvs, infos, data, n_kv=1 << 40)
    out["kv_count_max.gguf"] = gguf(kvs, infos, data, n_kv=(1 << 64) - 1)
    out["tensor_count_2e60.gguf"] = gguf(kvs, infos, data, n_tensors=1 << 60)
    out["tensor_count_plus1.gguf"] = gguf(kvs, infos, data, n_tensors=len(infos) + 1)
    out["kv_count_plus1.gguf"] = gguf(kvs, infos, data, n_kv=len(kvs) + 1)
    out["key_len_2e60.gguf"] = gguf([struct.pack("<Q", 1 << 60) + b"abc"], [], b"")
    out["key_len_2e63.gguf"] = gguf([struct.pack("<Q", 1 << 63) + b"abc"], [], b"")
    out["str_len_2e63.gguf"] = gguf([gstr("a") + struct.pack("<IQ", STR, 1 << 63)], [], b"")
    out["array_count_2e40.gguf"] = gguf([gstr("a") + struct.pack("<IIQ", ARR, U8, 1 << 40)], [],
                                        b"\0" * 64)
    out["array_of_strings_2e62.gguf"] = gguf(
        [gstr("a") + struct.pack("<IIQ", ARR, STR, 1 << 62)], [], b"\0" * 64)
    deep = gstr("deep") + struct.pack("<I", ARR)
    for _ in range(40):
        deep += struct.pack("<IQ", ARR, 1)
    out["nested_arrays_40_deep.gguf"] = gguf([deep + struct.pack("<IQ", I32, 0)], [], b"")
    out["unknown_value_type.gguf"] = gguf([gstr("a") + struct.pack("<II", 13, 0)], [], b"")
    out["unknown_array_type.gguf"] = gguf([gstr("a") + struct.pack("<IIQ", ARR, 99, 0)], [], b"")
    out["bad_utf8_key.gguf"] = gguf([kv(b"general.\xff\xfe", U32, 1)], [], b"")
    out["overlong_utf8_key.gguf"] = gguf([kv(b"a\xc0\xaf", U32, 1)], [], b"")
    out["empty_key.gguf"] = gguf([kv("", U32, 1)], [], b"")
    out["duplicate_key.gguf"] = gguf([kv("a", U32, 1), kv("a", U32, 2)], [], b"")
    out["bool_value_7.gguf"] = gguf([gstr("a") + struct.pack("<IB", BOOL, 7)], [], b"")
    for name, v in [("alignment_0", kv("general.alignment", U32, 0)),
                    ("alignment_48", kv("general.alignment", U32, 48)),
                    ("alignment_2e40", kv("general.alignment", U64, 1 << 40)),
                    ("alignment_negative", kv("general.alignment", I32, -32)),
                    ("alignment_string", kv("general.alignment", STR, "32"))]:
        out[name + ".gguf"] = gguf(kvs + [v], infos, data)
    bad_infos = {
        "ndims_0": tinfo("w", [], 0, 0),
        "ndims_5": tinfo("w", [1, 1, 1, 1, 1], 0, 0),
        "ndims_2e31": gstr("w") + struct.pack("<IQIQ", 1 << 31, 4, 0, 0),
        "dim_zero": tinfo("w", [8, 0], 0, 0),
        "dim_2e63": tinfo("w", [1 << 63], 0, 0),
        "dims_overflow": tinfo("w", [1 << 32, 1 << 32, 1 << 32], 0, 0),
        "dims_bytes_overflow": tinfo("w", [1 << 31, 1 << 31, 1 << 1], 0, 0),
        "unknown_dtype_99": tinfo("w", [8], 99, 0),
        "unknown_dtype_4": tinfo("w", [32], 4, 0),
        "q8_ne0_not_block": tinfo("w", [33], 8, 0),
        "q4k_ne0_not_block": tinfo("w", [255], 12, 0),
        "offset_misaligned": tinfo("w", [8], 0, 4),
        "offset_past_end": tinfo("w", [8], 0, 1 << 20),
        "offset_2e63": tinfo("w", [8], 0, 1 << 63),
        "size_past_end": tinfo("w", [1 << 20], 0, 0),
        "empty_name": tinfo("", [8], 0, 0),
        "name_65_bytes": tinfo("n" * 65, [8], 0, 0),
        "name_bad_utf8": tinfo(b"blk.\xed\xa0\x80", [8], 0, 0),
        "name_len_2e62": struct.pack("<Q", 1 << 62) + b"w" * 40,
    }
    for name, info in bad_infos.items():
        out["tensor_%s.gguf" % name] = gguf(kvs, [info], b"\0" * 64)
    out["tensor_overlap.gguf"] = gguf(kvs, [tinfo("a", [16], 0, 0), tinfo("b", [16], 0, 32)],
                                      b"\0" * 128)
    out["tensor_same_offset.gguf"] = gguf(kvs, [tinfo("a", [8], 0, 0), tinfo("b", [8], 0, 0)],
                                          b"\0" * 64)
    out["tensor_duplicate_name.gguf"] = gguf(kvs, [tinfo("a", [8], 0, 0), tinfo("a", [8], 0, 32)],
                                             b"\0" * 64)
    out["data_start_past_end.gguf"] = gguf(kvs, infos, b"", align=1)
    out["empty.gguf"] = b""
    return out


# ---------------------------------------------------------------- llama2.c
def legacy(dim, hidden, layers, heads, kv, vocab, seq, extra=0, floats=None):
    head = struct.pack("<7i", dim, hidden, layers, heads, kv, vocab, seq)
    if floats is None:
        hs = dim // heads
        kvd = hs * kv
        floats = (abs(vocab) * dim + layers * (2 * dim + 2 * dim * dim + 2 * kvd * dim + 3 * hidden * dim)
                  + dim + seq * hs + (abs(vocab) * dim if vocab < 0 else 0))
    return head + struct.pack("<f", 0.25) * (floats + extra)


def v1(version, params, shared=1, floats=0):
    head = struct.pack("<Ii7iB", 0x616B3432, version, *params, shared)
    return head + b"\0" * (256 - len(head)) + struct.pack("<f", 0.5) * floats


def llama2c_corpus():
    out = {}
    good = legacy(8, 12, 2, 2, 1, 5, 4)
    for n in [0, 1, 4, 12, 27, 28, 29, 100, len(good) - 4, len(good) - 1]:
        out["trunc_%04d.bin" % n] = good[:n]
    out["extra_bytes.bin"] = good + b"\0\0\0\0"
    out["untied_missing_wcls.bin"] = legacy(8, 12, 2, 2, 1, -5, 4, floats=len(good) // 4 - 7)
    out["zero_dim.bin"] = legacy(0, 12, 2, 2, 1, 5, 4, floats=10)
    out["negative_layers.bin"] = legacy(8, 12, -2, 2, 1, 5, 4, floats=10)
    out["zero_heads.bin"] = legacy(8, 12, 2, 0, 1, 5, 4, floats=10)
    out["dim_not_multiple_of_heads.bin"] = legacy(9, 12, 2, 2, 1, 5, 4, floats=10)
    out["kv_heads_gt_heads.bin"] = legacy(8, 12, 2, 2, 4, 5, 4, floats=10)
    out["kv_heads_not_divisor.bin"] = legacy(12, 12, 2, 3, 2, 5, 4, floats=10)
    out["odd_head_size.bin"] = legacy(6, 12, 2, 2, 1, 5, 4, floats=10)
    out["vocab_int_min.bin"] = legacy(8, 12, 2, 2, 1, -(1 << 31), 4, floats=10)
    out["huge_dims_overflow.bin"] = legacy((1 << 31) - 2, (1 << 31) - 1, (1 << 31) - 1, 2, 1,
                                           (1 << 31) - 1, (1 << 31) - 1, floats=10)
    out["v1_shared_flag_7.bin"] = v1(1, (8, 12, 2, 2, 1, 5, 4), shared=7, floats=10)
    out["v1_wrong_size.bin"] = v1(1, (8, 12, 2, 2, 1, 5, 4), floats=10)
    out["v1_negative_vocab.bin"] = v1(1, (8, 12, 2, 2, 1, -5, 4), floats=10)
    out["v1_truncated_header.bin"] = v1(1, (8, 12, 2, 2, 1, 5, 4))[:40]
    out["v2_int8.bin"] = v1(2, (8, 12, 2, 2, 1, 5, 4), floats=10)
    out["v99.bin"] = v1(99, (8, 12, 2, 2, 1, 5, 4), floats=10)
    out["text_file.bin"] = b"this is not a checkpoint at all, just text\n" * 3
    return out


def llama2c_seeds():
    return {"legacy_shared.bin": legacy(8, 12, 2, 2, 1, 5, 4),
            "legacy_untied.bin": legacy(8, 12, 1, 2, 2, -5, 4),
            "v1.bin": v1(1, (8, 12, 1, 2, 1, 5, 4), floats=5 * 8 + 8 * 2 + 8 + 64 + 4 * 8 * 2 + 64 + 36 * 8)}


# ---------------------------------------------------------------- safetensors / config.json
def st(header, data=b"", hlen=None):
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data


def t(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


LLAMA_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8,
                "num_hidden_layers": 1, "intermediate_size": 12, "num_attention_heads": 2,
                "num_key_value_heads": 1, "max_position_embeddings": 64, "vocab_size": 10,
                "rms_norm_eps": 1e-5, "rope_theta": 10000.0}


def safetensors_corpus():
    out = {}
    good = st({"a": t("F32", [2, 2], 0, 16), "b": t("BF16", [4], 16, 24),
               "__metadata__": {"format": "pt"}}, b"\1" * 24)
    for n in [0, 1, 7, 8, 9, 20, 40, len(good) - 25, len(good) - 1]:
        out["trunc_%04d.safetensors" % n] = good[:n]
    out["header_len_past_end.safetensors"] = st({"a": t("F32", [1], 0, 4)}, b"\0" * 4, hlen=10 ** 6)
    out["header_len_2e63.safetensors"] = st({}, b"", hlen=1 << 63)
    out["header_len_max.safetensors"] = st({}, b"", hlen=(1 << 64) - 1)
    out["header_len_zero.safetensors"] = st(b"", b"{}")
    out["header_not_json.safetensors"] = st(b"{\"a\": [1, 2", b"")
    out["header_array.safetensors"] = st([1, 2, 3])
    out["header_bad_utf8.safetensors"] = st(b'{"\xff\xfe": {"dtype": "F32", "shape": [1], '
                                            b'"data_offsets": [0, 4]}}', b"\0" * 4)
    out["header_deep_nesting.safetensors"] = st(b"[" * 20000 + b"]" * 20000)
    out["dtype_i64.safetensors"] = st({"a": t("I64", [1], 0, 8)}, b"\0" * 8)
    out["dtype_f8.safetensors"] = st({"a": t("F8_E4M3", [8], 0, 8)}, b"\0" * 8)
    out["dtype_number.safetensors"] = st({"a": {"dtype": 0, "shape": [1], "data_offsets": [0, 4]}},
                                         b"\0" * 4)
    out["shape_mismatch.safetensors"] = st({"a": t("F32", [3], 0, 8)}, b"\0" * 8)
    out["shape_negative.safetensors"] = st({"a": t("F32", [-1], 0, 4)}, b"\0" * 4)
    out["shape_zero.safetensors"] = st({"a": t("F32", [0], 0, 0)}, b"")
    out["shape_5d.safetensors"] = st({"a": t("F32", [1, 1, 1, 1, 1], 0, 4)}, b"\0" * 4)
    out["shape_overflow.safetensors"] = st({"a": t("F32", [1 << 32, 1 << 32, 1 << 32], 0, 4)},
                                           b"\0" * 4)
    out["shape_float.safetensors"] = st({"a": t("F32", [1.5], 0, 4)}, b"\0" * 4)
    out["offsets_past_end.safetensors"] = st({"a": t("F32", [1], 100, 104)}, b"\0" * 4)
    out["offsets_2e63.safetensors"] = st({"a": t("F32", [1], 1 << 63, (1 << 63) + 4)}, b"\0" * 4)
    out["offsets_reversed.safetensors"] = st({"a": t("F32", [1], 4, 0)}, b"\0" * 8)
    out["offsets_three.safetensors"] = st(
        {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}, b"\0" * 8)
    out["overlap.safetensors"] = st({"a": t("F32", [4], 0, 16), "b": t("F32", [2], 8, 16)},
                                    b"\0" * 16)
    out["duplicate_name.safetensors"] = st(
        b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
        b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', b"\0" * 8)
    out["metadata_not_string.safetensors"] = st({"__metadata__": {"x": 1}})
    out["entry_not_object.safetensors"] = st({"a": [1, 2]})
    out["empty.safetensors"] = b""
    # config.json files (parse_hf_config): every one invalid.
    bad_configs = {
        "config_not_json": b"{\"hidden_size\": ",
        "config_array": b"[]",
        "config_unknown_arch": {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"},
        "config_arch_not_list": dict(LLAMA_CONFIG, architectures="LlamaForCausalLM", model_type=5),
        "config_hidden_string": dict(LLAMA_CONFIG, hidden_size="8"),
        "config_hidden_negative": dict(LLAMA_CONFIG, hidden_size=-8),
        "config_hidden_2e40": dict(LLAMA_CONFIG, hidden_size=1 << 40),
        "config_missing_layers": {k: v for k, v in LLAMA_CONFIG.items() if k != "num_hidden_layers"},
        "config_kv_not_divisor": dict(LLAMA_CONFIG, num_key_value_heads=3),
        "config_heads_not_divisor": dict(LLAMA_CONFIG, num_attention_heads=3),
        "config_rope_scaling_list": dict(LLAMA_CONFIG, rope_scaling=[1, 2]),
        "config_rope_no_factor": dict(LLAMA_CONFIG, rope_scaling={"rope_type": "linear"}),
        "config_rope_llama3_partial": dict(LLAMA_CONFIG, rope_scaling={"rope_type": "llama3",
                                                                       "factor": 8.0}),
        "config_rope_factor_negative": dict(LLAMA_CONFIG, rope_scaling={"type": "linear",
                                                                        "factor": -2}),
        "config_tie_string": dict(LLAMA_CONFIG, tie_word_embeddings="yes"),
        "config_glm_partial_2": dict(LLAMA_CONFIG, architectures=["GlmForCausalLM"],
                                     partial_rotary_factor=2.0),
        "config_chatglm_layernorm": {"architectures": ["ChatGLMModel"], "hidden_size": 8,
                                     "num_layers": 1, "ffn_hidden_size": 8,
                                     "num_attention_heads": 2, "padded_vocab_size": 8,
                                     "rmsnorm": False},
        "config_chatglm_mqa_no_groups": {"architectures": ["ChatGLMModel"], "hidden_size": 8,
                                         "num_layers": 1, "ffn_hidden_size": 8,
                                         "num_attention_heads": 2, "padded_vocab_size": 8,
                                         "multi_query_attention": True},
    }
    for name, c in bad_configs.items():
        out[name + ".json"] = c if isinstance(c, bytes) else json.dumps(c).encode()
    return out


def safetensors_seeds():
    return {"small.safetensors": st({"model.embed_tokens.weight": t("F32", [2, 2], 0, 16),
                                     "model.layers.0.self_attn.q_proj.weight": t("BF16", [2, 2], 16, 24),
                                     "__metadata__": {"format": "pt"}}, b"\1" * 24),
            "config.json": json.dumps(dict(LLAMA_CONFIG, rope_scaling={
                "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})).encode()}


def write_all(base, files, clean):
    os.makedirs(base, exist_ok=True)
    if clean:
        for f in os.listdir(base):
            if not f.startswith("crash-"):
                os.remove(os.path.join(base, f))
    for name, data in files.items():
        with open(os.path.join(base, name), "wb") as fh:
            fh.write(data)


def main():
    kvs, infos, data = good_gguf_parts()
    write_all(os.path.join(CORPUS, "gguf"), gguf_corpus(), True)
    write_all(os.path.join(CORPUS, "llama2c"), llama2c_corpus(), True)
    write_all(os.path.join(CORPUS, "safetensors"), safetensors_corpus(), True)
    write_all(os.path.join(SEEDS, "gguf"), {"small.gguf": gguf(kvs, infos, data)}, True)
    write_all(os.path.join(SEEDS, "llama2c"), llama2c_seeds(), True)
    write_all(os.path.join(SEEDS, "safetensors"), safetensors_seeds(), True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
