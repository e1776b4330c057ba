#include "tokenizer/spm_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "tokenizer/unicode.h"

namespace edgeglm::tokenizer {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// Parses "<0xXX>"; -1 when `text` is not a byte token.
int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int hi = hex(text[3]), lo = hex(text[4]);
  return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

class SpmTokenizer final : public VocabTokenizer {
 public:
  Status load(const formats::Metadata& m) {
    EG_TRY(load_common(m, /*spm=*/true));
    const auto* sc = meta::find(m, "tokenizer.ggml.scores");
    scores_.assign(tokens_.size(), 0.0f);
    if (sc) {
      if (sc->type != formats::MetaType::Array || sc->array_size() != tokens_.size()) {
        return Status::error("tokenizer.ggml.scores: expected an array of " +
                             std::to_string(tokens_.size()) + " floats");
      }
      for (size_t i = 0; i < scores_.size(); ++i) {
        const formats::MetaValue v = sc->element(i);
        int64_t x = 0;
        if (v.type == formats::MetaType::F32 || v.type == formats::MetaType::F64) {
          scores_[i] = float(v.f);
        } else if (meta::as_int(v, &x)) {
          scores_[i] = float(x);
        } else {
          return Status::error("tokenizer.ggml.scores[" + std::to_string(i) + "]: not a number");
        }
      }
    }
    byte_token_.fill(-1);
    token_byte_.assign(tokens_.size(), -1);
    for (size_t i = 0; i < tokens_.size(); ++i) {
      int b = parse_byte_token(tokens_[i]);
      if (b < 0) continue;
      token_byte_[i] = int16_t(b);
      if (types_[i] == kTokByte && byte_token_[size_t(b)] < 0) byte_token_[size_t(b)] = int32_t(i);
    }
    // Vocabs without a byte type still name their byte tokens <0xXX>.
    for (int b = 0; b < 256; ++b) {
      if (byte_token_[size_t(b)] >= 0) continue;
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      byte_token_[size_t(b)] = lookup(name);
    }
    return Status::ok();
  }

  VocabKind kind() const override { return VocabKind::kSpm; }

  std::string token_to_piece(int32_t id, bool render_special) const override {
    if (!valid(id)) return {};
    const auto type = types_[size_t(id)];
    const std::string& text = tokens_[size_t(id)];
    switch (type) {
      case kTokByte:
        return token_byte_[size_t(id)] >= 0 ? std::string(1, char(token_byte_[size_t(id)])) : text;
      case kTokControl:
      case kTokUnknown:
      case kTokUnused:
        return render_special ? text : std::string();
      default:
        break;
    }
    std::string out;
    out.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
      if (text.compare(pos, kSpace.size(), kSpace) == 0) {
        out.push_back(' ');
        pos += kSpace.size();
      } else {
        out.push_back(text[pos++]);
      }
    }
    return out;
  }

 protected:
  struct Symbol {
    int32_t prev, next;
    uint32_t begin, n;  // byte range in the escaped text; n == 0 once merged away
  };
  struct Bigram {
    float score;
    int32_t left, right;
    uint32_t size;
  };
  struct BigramLess {
    // Highest score first, leftmost on ties (llama.cpp's llm_bigram_spm::comparator).
    bool operator()(const Bigram& l, const Bigram& r) const {
      return l.score < r.score || (l.score == r.score && l.left > r.left);
    }
  };

  void encode_fragment(std::string_view raw, bool after_special,
                       std::vector<int32_t>& out) const override {
    // Spaces become U+2581; the dummy prefix goes before the first run and after specials.
    std::string text;
    text.reserve(raw.size() + 8);
    if (add_space_prefix_ && after_special) text += kSpace;
    for (char c : raw) {
      if (c == ' ') {
        text += kSpace;
      } else {
        text.push_back(c);
      }
    }

    std::vector<Symbol> sym;
    sym.reserve(text.size());
    for (uint32_t pos = 0; pos < text.size();) {
      auto len = uint32_t(std::min(unicode::utf8_seq_len(uint8_t(text[pos])), text.size() - pos));
      int32_t idx = int32_t(sym.size());
      sym.push_back({idx - 1, idx + 1, pos, len});
      pos += len;
    }
    if (sym.empty()) return;
    sym.back().next = -1;

    std::vector<Bigram> storage;
    storage.reserve(sym.size() * 2);
    std::priority_queue<Bigram, std::vector<Bigram>, BigramLess> queue(BigramLess{},
                                                                       std::move(storage));
    auto try_add = [&](int32_t l, int32_t r) {
      if (l < 0 || r < 0) return;
      std::string_view s(text.data() + sym[size_t(l)].begin, sym[size_t(l)].n + sym[size_t(r)].n);
      int32_t id = lookup(s);
      if (id < 0) return;
      queue.push({scores_[size_t(id)], l, r, uint32_t(s.size())});
    };
    for (size_t i = 1; i < sym.size(); ++i) try_add(int32_t(i - 1), int32_t(i));

    while (!queue.empty()) {
      Bigram b = queue.top();
      queue.pop();
      Symbol& l = sym[size_t(b.left)];
      Symbol& r = sym[size_t(b.right)];
      // Stale: one side was merged into something else since this pair was queued.
      if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) sym[size_t(r.next)].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }

    for (int32_t i = 0; i >= 0; i = sym[size_t(i)].next) {
      const Symbol& s = sym[size_t(i)];
      int32_t id = lookup(std::string_view(text.data() + s.begin, s.n));
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      // Byte fallback: a piece no token covers is spelled as <0xXX> tokens.
      for (uint32_t k = 0; k < s.n; ++k) {
        int32_t bt = byte_token_[uint8_t(text[s.begin + k])];
        if (bt >= 0) {
          out.push_back(bt);
        } else if (unk_ >= 0) {
          out.push_back(unk_);
        }
      }
    }
  }

 private:
  std::vector<float> scores_;
  std::array<int32_t, 256> byte_token_{};
  std::vector<int16_t> token_byte_;  // byte value of each <0xXX> token, else -1
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> make_spm_tokenizer(const formats::Metadata& meta) {
  auto t = std::make_unique<SpmTokenizer>();
  EG_TRY(t->load(meta));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace edgeglm::tokenizer
