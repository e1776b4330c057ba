#include "tokenizer/bpe_tokenizer.h"

#include <queue>

#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/unicode.h"

namespace edgeglm::tokenizer {
namespace {

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

class BpeTokenizer final : public VocabTokenizer {
 public:
  Status load(const formats::Metadata& m) {
    EG_TRY(load_common(m, /*spm=*/false));
    EG_ASSIGN_OR_RETURN(std::string pre, meta::get_string(m, "tokenizer.ggml.pre", "default"));
    if (!pre_tokenizer_from_name(pre, &pre_)) {
      return Status::error("tokenizer.ggml.pre: unsupported pre-tokenizer '" + pre +
                           "' (supported: default, gpt2, llama-bpe, llama3, qwen2, smollm, glm4, "
                           "chatglm-bpe)");
    }
    // Llama-3's tokenizer.json sets ignore_merges: a piece that is a whole token is taken as is.
    EG_ASSIGN_OR_RETURN(ignore_merges_, meta::get_bool(m, "tokenizer.ggml.ignore_merges",
                                                       pre_ == PreTokenizer::kLlama3 &&
                                                           (pre == "llama-bpe" || pre == "llama3" ||
                                                            pre == "llama-v3")));

    const auto* merges = meta::find(m, "tokenizer.ggml.merges");
    if (!merges) return Status::error("tokenizer.ggml.merges: missing (needed by a gpt2 vocab)");
    if (merges->type != formats::MetaType::Array ||
        (merges->array_size() != 0 && (merges->elem_type != formats::MetaType::String ||
                                      merges->strs.size() != merges->array_size()))) {
      return Status::error("tokenizer.ggml.merges: expected an array of strings");
    }
    merges_.reserve(merges->array_size());
    std::string joined;
    for (size_t r = 0; r < merges->array_size(); ++r) {
      const std::string& s = merges->str_at(r);
      size_t sp = s.find(' ', 1);
      if (sp == std::string::npos) {
        return Status::error("tokenizer.ggml.merges[" + std::to_string(r) + "]: '" + s +
                             "' is not two tokens separated by a space");
      }
      std::string_view a(s.data(), sp), b(s.data() + sp + 1, s.size() - sp - 1);
      joined.assign(a);
      joined.append(b);
      int32_t ia = lookup(a), ib = lookup(b), ij = lookup(joined);
      // A merge whose parts or result are not tokens can never apply; llama.cpp skips them too.
      if (ia < 0 || ib < 0 || ij < 0) continue;
      merges_.emplace(pair_key(ia, ib), Merge{int32_t(r), ij});  // first (lowest rank) wins
    }

    std::string s;
    for (int b = 0; b < 256; ++b) {
      s.clear();
      unicode::append_utf8(s, unicode::byte_to_codepoint(uint8_t(b)));
      byte_token_[size_t(b)] = lookup(s);
    }
    return Status::ok();
  }

  VocabKind kind() const override { return VocabKind::kBpe; }

  std::string token_to_piece(int32_t id, bool render_special) const override {
    if (!valid(id)) return {};
    const std::string& text = tokens_[size_t(id)];
    switch (types_[size_t(id)]) {
      case kTokControl:
      case kTokUnknown:
      case kTokUnused:
        return render_special ? text : std::string();
      case kTokUserDefined:
        return text;  // added tokens are stored as plain text, not byte-level
      default:
        break;
    }
    std::string out;
    if (!unicode::byte_level_to_bytes(text, out)) return text;
    return out;
  }

 protected:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // -1 at the ends; id == -1 once merged away
  };
  struct Candidate {
    int32_t rank;
    int32_t left, right;
    int32_t left_id, right_id;
  };
  struct CandidateGreater {
    // Lowest rank first, leftmost on ties.
    bool operator()(const Candidate& a, const Candidate& b) const {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
  };

  void encode_fragment(std::string_view text, bool /*after_special*/,
                       std::vector<int32_t>& out) const override {
    unicode::Codepoints cps;
    std::vector<std::pair<uint32_t, uint32_t>> pieces;
    pre_tokenize(pre_, text, cps, pieces);
    std::vector<Symbol> sym;
    std::vector<Candidate> storage;
    std::string mapped;
    for (auto [b, e] : pieces) {
      std::string_view piece = text.substr(b, e - b);
      if (ignore_merges_) {
        mapped.clear();
        unicode::bytes_to_byte_level(piece, mapped);
        int32_t id = lookup(mapped);
        if (id >= 0) {
          out.push_back(id);
          continue;
        }
      }
      encode_piece(piece, sym, storage, out);
    }
  }

 private:
  void encode_piece(std::string_view piece, std::vector<Symbol>& sym,
                    std::vector<Candidate>& storage, std::vector<int32_t>& out) const {
    sym.clear();
    for (char c : piece) {
      int32_t id = byte_token_[uint8_t(c)];
      if (id < 0) id = unk_;
      if (id < 0) continue;  // a vocab without this byte and without <unk>: drop it
      int32_t idx = int32_t(sym.size());
      sym.push_back({id, idx - 1, idx + 1});
    }
    if (sym.empty()) return;
    sym.back().next = -1;

    storage.clear();
    std::priority_queue<Candidate, std::vector<Candidate>, CandidateGreater> queue(
        CandidateGreater{}, std::move(storage));
    auto try_add = [&](int32_t l, int32_t r) {
      if (l < 0 || r < 0) return;
      auto it = merges_.find(pair_key(sym[size_t(l)].id, sym[size_t(r)].id));
      if (it == merges_.end()) return;
      queue.push({it->second.rank, l, r, sym[size_t(l)].id, sym[size_t(r)].id});
    };
    for (size_t i = 1; i < sym.size(); ++i) try_add(int32_t(i - 1), int32_t(i));

    while (!queue.empty()) {
      Candidate c = queue.top();
      queue.pop();
      Symbol& l = sym[size_t(c.left)];
      // Stale: either side changed since the pair was queued.
      if (l.id != c.left_id || l.next != c.right || sym[size_t(c.right)].id != c.right_id) continue;
      Symbol& r = sym[size_t(c.right)];
      l.id = merges_.find(pair_key(c.left_id, c.right_id))->second.id;
      l.next = r.next;
      if (r.next >= 0) sym[size_t(r.next)].prev = c.left;
      r.id = -1;
      r.next = r.prev = -1;
      try_add(l.prev, c.left);
      try_add(c.left, l.next);
    }
    for (int32_t i = 0; i >= 0; i = sym[size_t(i)].next) out.push_back(sym[size_t(i)].id);
  }

  PreTokenizer pre_ = PreTokenizer::kGpt2;
  bool ignore_merges_ = false;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> rank, merged id
  std::array<int32_t, 256> byte_token_{};
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> make_bpe_tokenizer(const formats::Metadata& meta) {
  auto t = std::make_unique<BpeTokenizer>();
  EG_TRY(t->load(meta));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace edgeglm::tokenizer
