#!/usr/bin/env python3
"""Generates the committed tokenizer test vectors under tests/data/tokenizer/.

Needs: pip install tokenizers transformers gguf jinja2

  * smollm2.vectors.txt: ids of TRICKY inputs under the SmolLM2-135M-Instruct vocabulary. The
    vocab and merges come from the model's GGUF; the HF tokenizer is rebuilt with SmolLM2's own
    tokenizer.json pipeline (pre_tokenizer Sequence[Digits(individual_digits), ByteLevel]) and
    cross-checked against transformers' GGUF loader.
  * <family>/tokenizer.json (+ tokenizer_config.json) and <family>.vectors.txt for gpt2, llama3,
    qwen2 and glm4: tiny byte-level BPE tokenizers trained with each family's exact pre-tokenizer,
    since the real ones cannot be downloaded here, and their ids for TRICKY inputs.
  * chat_templates.json: the real Jinja chat templates of each family rendered by transformers'
    apply_chat_template for fixed conversations.

Vector files: one case per line, "<escaped input>\\t<space-separated ids>"; the input escapes
backslash, \\n, \\r, \\t and other control bytes as \\xHH.

Usage: python3 scripts/gen_tokenizer_vectors.py [--smollm-gguf PATH] [--shared DIR]
"""
import argparse
import json
import os
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "tokenizer")

TRICKY = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n \n\n", "\t\t x",
    "Hello world", " Hello world", "Hello World!", "Hello, world!", "  Hello  world  ",
    "hello\nworld\n", "a\r\nb\r\n\r\nc",
    "I'm sure you're right, it's what we've done; they'll see. I'd say he's ok",
    "I'M SURE YOU'RE RIGHT, IT'S WHAT WE'VE DONE; THEY'LL SEE. I'D",
    "don't 'tis 's 're 'xyz' ''",
    "3", "33", "333", "3333", "33333", "1234567890", "3.14159 and 2,718", "x²+y³=z⁴ ½ ٣٤٥ ①②",
    "Phone: +1 (555) 123-4567, year 2024!",
    "Führer café naïve résumé", "cafe\u0301 (combining acute)", "Ελληνικά Русский текст",
    "日本語のテキスト、中文文本。한국어", "ied 4 ½ months", "नमस्ते दुनिया",
    "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ 🦙🦙",
    "def f(x):\n    return x ** 2  # square\n\n\tprint(f'{x=}')",
    "int main() { return a->b[3] != 0 && c <= d; }",
    "https://example.com/path?q=1&r=two#frag user@mail.org",
    "!!!\n\n???  ...   ---===", "    \n    \n", "end with spaces   ",
    "\u00a0non\u00a0breaking\u2003em\u3000ideographic", "zero\u200bwidth\u200djoiner",
    "Hello\n\n\n\nWorld   \t\n  x", " ' ' \" \" ` `",
]


def random_cases(n=200, seed=1):
    """Seeded random strings over the characters where the pre-tokenizer alternatives meet."""
    import random
    rng = random.Random(seed)
    pool = [" ", " ", " ", "\n", "\r", "\t", "a", "Z", "'", "s", "S", "l", "L", "r", "e", "v", "d",
            "m", "t", "1", "2", "\u0663", "\u00b2", "!", ".", "\u00e9", "e\u0301", "\u4e2d",
            "\U0001F600", "\u00a0", "\u3000", "\u2028", "\x0b", "\x1c", "\u0085", "_", "-",
            "\u017f", "\u212a", "\u200d", "\u01c5", "\u2177", "\U0001D7D8", "\ufb01", "\u0130"]
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 24))) for _ in range(n)]


FAMILY_SPECIALS = {
    "gpt2": ["<|endoftext|>"],
    "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
               "<|eot_id|>"],
    "qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    "glm4": ["<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>",
             "<|user|>", "<|assistant|>", "<|observation|>"],
}
FAMILY_SPECIAL_INPUTS = {
    "gpt2": ["Hi<|endoftext|>there", "<|endoftext|> <|endoftext|>"],
    "llama3": ["<|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\n"],
    "qwen2": ["<|im_start|>user\nWhat's 12345+6?<|im_end|>\n<|im_start|>assistant\n"],
    "glm4": ["[gMASK]<sop><|user|>\nHello there<|assistant|>\nHi!<|user|>\n 2"],
    "smollm2": ["<|im_start|>system\nYou are SmolLM.<|im_end|>\n<|im_start|>user\n1+1=?<|im_end|>\n"],
}

# Pre-tokenizer regexes exactly as the families' tokenizer.json files spell them.
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
            r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# ---- chat templates (the families' tokenizer_config.json chat_template texts) ---------------
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
          " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA2 = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
          "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
          "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
          "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
          "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
          "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
          "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
          "{% else %}{% set content = message['content'] %}{% endif %}"
          "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
          "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
          "{% endif %}{% endfor %}")
LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}"
          "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
          "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
          "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
# THUDM/glm-4-9b-chat, without its tools branch (not exercised by the tests).
GLM4 = ("[gMASK]<sop>{% for item in messages %}{% if item['role'] == 'user' %}<|user|>\n"
        "{{ item['content'] }}{% elif item['role'] == 'assistant' %}<|assistant|>\n"
        "{{ item['content'] }}{% elif item['role'] == 'system' %}<|system|>\n"
        "{{ item['content'] }}{% elif item['role'] == 'observation' %}<|observation|>\n"
        "{{ item['content'] }}{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
CHATGLM3 = ("{% for message in messages %}{% if loop.first %}[gMASK]sop<|{{ message['role'] }}|>\n "
            "{{ message['content'] }}{% else %}<|{{ message['role'] }}|>\n {{ message['content'] }}"
            "{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
ZEPHYR = ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
          "{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n"
          "{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n"
          "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
          "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")

CONVERSATIONS = [
    ([{"role": "user", "content": "Hello!"}], True),
    ([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"},
      {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}], True),
    ([{"role": "user", "content": "  spaced out \n"}, {"role": "assistant", "content": " fine "}], False),
    ([{"role": "user", "content": "Line one\nLine two"}], False),
]


def esc(s):
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\x%02X" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def write_vectors(path, tok, inputs):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for text in inputs:
            ids = tok.encode(text, add_special_tokens=False).ids
            back = tok.decode(ids, skip_special_tokens=False)
            if back != text:
                print(f"  note: HF decode does not round-trip {text!r} -> {back!r}", file=sys.stderr)
            f.write(esc(text) + "\t" + " ".join(map(str, ids)) + "\n")
    print("wrote", os.path.relpath(path, ROOT))


def training_corpus(shared):
    lines = []
    p = os.path.join(shared, "data", "tinystories_valid_1000.txt")
    with open(p, encoding="utf-8") as f:
        lines += f.read().split("<|endoftext|>")[:250]
    p = os.path.join(shared, "data", "wikitext2_test.raw")
    with open(p, encoding="utf-8", errors="replace") as f:
        lines += f.read().splitlines()[:600]
    lines += TRICKY * 3
    lines += ["def main():\n    for i in range(10):\n        print(i, i ** 2)\n"] * 5
    lines += ["你好，世界。今天天气很好。我们去公园吧。", "Привет, как дела? Всё хорошо.",
              "I'll've won't can't shouldn't THEY'RE WE'VE", "  indented\n\tcode\r\n"] * 5
    return lines


def train_family(family, shared):
    vocab_size = 1200
    bpe = models.BPE(ignore_merges=(family == "llama3"))
    tok = Tokenizer(bpe)
    if family == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        regex = QWEN2_RE if family == "qwen2" else LLAMA3_RE
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=FAMILY_SPECIALS[family])
    tok.train_from_iterator(training_corpus(shared), trainer)
    if family == "llama3":
        bos = "<|begin_of_text|>"
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))])
    d = os.path.join(OUT, family)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    cfg = {
        "gpt2": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "add_bos_token": False,
                 "chat_template": CHATML},
        # Llama-3 has no add_bos_token: the post_processor adds <|begin_of_text|>.
        "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": LLAMA3},
        "qwen2": {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                  "add_bos_token": False, "chat_template": CHATML},
        "glm4": {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "add_bos_token": False,
                 "chat_template": GLM4},
    }[family]
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=1, ensure_ascii=False)
    print("wrote", os.path.relpath(d, ROOT), os.path.getsize(os.path.join(d, "tokenizer.json")), "bytes")
    write_vectors(os.path.join(OUT, family + ".vectors.txt"), tok,
                  TRICKY + FAMILY_SPECIAL_INPUTS[family] + random_cases())


def smollm2(gguf_path):
    import gguf
    r = gguf.GGUFReader(gguf_path)

    def arr(key):
        f = r.fields[key]
        if f.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [int(f.parts[i][0]) for i in f.data]

    tokens, types, merges = arr("tokenizer.ggml.tokens"), arr("tokenizer.ggml.token_type"), arr("tokenizer.ggml.merges")
    vocab = {t: i for i, t in enumerate(tokens)}
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges])
    tok = Tokenizer(bpe)
    # SmolLM2's tokenizer.json: Digits(individual_digits) then ByteLevel with the GPT-2 regex.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    inputs = TRICKY + FAMILY_SPECIAL_INPUTS["smollm2"] + random_cases()
    write_vectors(os.path.join(OUT, "smollm2.vectors.txt"), tok, inputs)
    # Cross-check with transformers' own GGUF loader (its pre-tokenizer may differ: report only).
    try:
        from transformers import AutoTokenizer
        ht = AutoTokenizer.from_pretrained(os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path))
        diff = [t for t in inputs if ht.encode(t, add_special_tokens=False) != tok.encode(t, add_special_tokens=False).ids]
        print(f"  transformers GGUF loader differs on {len(diff)}/{len(inputs)} inputs: {diff[:5]}")
    except Exception as e:  # noqa: BLE001 - informational only
        print("  transformers GGUF cross-check skipped:", e)
    f = r.fields["tokenizer.chat_template"]
    return bytes(f.parts[f.data[0]]).decode("utf-8")


def chat_templates(smollm_template):
    from transformers import PreTrainedTokenizerFast
    base = Tokenizer(models.BPE())
    families = {
        "chatml": (CHATML, "<|im_start|>", "<|im_end|>"),
        "smollm": (smollm_template, "<|im_start|>", "<|im_end|>"),
        "llama2": (LLAMA2, "<s>", "</s>"),
        "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>"),
        "glm4": (GLM4, "", "<|endoftext|>"),
        "chatglm3": (CHATGLM3, "", "</s>"),
        "zephyr": (ZEPHYR, "<s>", "</s>"),
    }
    out = {}
    for name, (tpl, bos, eos) in families.items():
        kw = {"bos_token": bos} if bos else {}
        ht = PreTrainedTokenizerFast(tokenizer_object=base, eos_token=eos, **kw)
        cases = []
        for msgs, gen in CONVERSATIONS:
            if name == "llama2" and msgs[-1]["role"] == "assistant" and len(msgs) % 2 == 1:
                continue
            for g in ([gen, not gen] if name != "llama2" else [gen]):
                try:
                    text = ht.apply_chat_template(msgs, chat_template=tpl, tokenize=False, add_generation_prompt=g)
                except Exception as e:  # noqa: BLE001
                    print(f"  {name}: skipped a conversation: {e}")
                    continue
                cases.append({"messages": msgs, "add_generation_prompt": g, "expected": text})
        out[name] = {"template": tpl, "bos": bos, "eos": eos, "cases": cases}
    path = os.path.join(OUT, "chat_templates.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
    print("wrote", os.path.relpath(path, ROOT))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smollm-gguf", default=os.path.join(ROOT, "models", "smollm2-135m-instruct-q4_1.gguf"))
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for fam in ("gpt2", "llama3", "qwen2", "glm4"):
        train_family(fam, args.shared)
    tpl = smollm2(args.smollm_gguf)
    chat_templates(tpl)


if __name__ == "__main__":
    main()
