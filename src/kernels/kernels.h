// The math of the forward pass; callers go through these entry points. Matrix products dispatch
// to the best ISA table (isa.h); the element-wise functions here are the scalar reference.
#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace edgeglm::kernels {

// y (n_tok, n_out) = x (n_tok, n_in) . W^T, with W (n_out, n_in) in any weight format.
// Integer formats quantize x to int8 blocks once (qacts.h) and use integer dot products; float
// formats decode each weight row once for all tokens. Rows are shared out across the pool.
void matmul(const TensorView& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool);

// Several matrices with the same input (q/k/v, gate/up): x is quantized once and all their rows
// are shared out in one dispatch. ys[i] is (n_tok, ws[i]->ne[1]); 1 <= n_w <= 8.
void matmul_group(const TensorView* const* ws, float* const* ys, int n_w, const float* x,
                  int64_t n_tok, ThreadPool& pool);

// out (n) = row r of a 2-D tensor of any format, as float (embedding lookup).
void get_row(const TensorView& t, int64_t r, float* out);

float dot_f32(const float* a, const float* b, int64_t n);

// y = x / sqrt(mean(x^2) + eps) * w ; y may alias x.
void rmsnorm(float* y, const float* x, const float* w, int64_t n, float eps);

// x = softmax(x) over n elements, max-subtracted.
void softmax(float* x, int64_t n);

// g = silu(g) * u over n elements.
void silu_mul(float* g, const float* u, int64_t n);

void add_inplace(float* y, const float* x, int64_t n);

// Rotary position embedding on one token's heads x (n_heads, head_dim), rotating the first n_rot
// dims of each head: pair i by the angle whose cos/sin are cos_sin[2i], cos_sin[2i+1] (computed
// once per position by rope_angles, shared by every layer and by q and k).
//   interleaved pairs: (x[2i], x[2i+1])         -- GGUF llama / chatglm / glm4, HF glm
//   neox pairs:        (x[i], x[i + n_rot/2])   -- HF llama (rotate_half), qwen2
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos_sin,
          bool neox);
// cos_sin (n_rot) = {cos, sin} of pos * inv_freq[i] for each of the n_rot/2 pairs.
void rope_angles(float pos, const float* inv_freq, int64_t n_rot, float* cos_sin);

// A layer's KV cache in F32, F16 or Q8_0 (head_dim a multiple of 32): kv head g's slice of
// position j at data + g * head_bytes + j * row_bytes. head_bytes 0: the heads side by side in one
// row per position (head g at element g * head_dim, row_bytes for all of them); the engine's cache
// is head-major instead (each head's positions contiguous, row_bytes one slice, head_bytes n_ctx
// of them), so that one head's attention streams through memory.
struct KvView {
  DType type = DType::F32;
  const void* data = nullptr;
  size_t row_bytes = 0;
  size_t head_bytes = 0;
};

// A run of n_tok tokens of one sequence against kv group `kv_head` (query heads kv_head*group ..
// +group): scores, softmax, weighted sum of values. Token i's heads are at q + i * ldq ((n_head,
// head_dim) as one token's q), it sees cache positions [0, n_kv[i]) (n_kv[i] >= 1: causal), and
// its outputs go to out + i * ldq. The SIMD tables convert each cache row once for all the run's
// query rows (tokens x group heads), so a prompt's tokens share it as grouped-query heads do.
//   scratch: attention_scratch_floats(max n_kv, n_tok * group, head_dim) floats
//   row_stats: null, or 2 * n_tok * group floats: for query row r (token r / group, head r % group)
//     the maximum score and the sum of exp(score - maximum), so that attention over parts of the
//     cache (views that start at a later row, their own n_kv) can be merged: merge_attention_parts.
void attention_tokens(const float* q, int64_t ldq, const KvView& k, const KvView& v, const int64_t* n_kv,
                      int64_t n_tok, int64_t kv_head, int64_t group, int64_t head_dim, float scale, float* out,
                      float* scratch, float* row_stats = nullptr);
// out (rows, head_dim) = the attention over all of n_parts parts of the keys, from each part's
// normalized output (rows, head_dim) at parts + p * part_stride and its row_stats at
// stats + p * stats_stride: the parts weighed by sum * exp(max - the overall maximum).
void merge_attention_parts(const float* parts, int64_t part_stride, const float* stats, int64_t stats_stride,
                           int64_t n_parts, int64_t rows, int64_t head_dim, float* out);
// One token: attention_tokens of a run of one.
//   q, out: (n_head, head_dim) of this token     scratch: attention_scratch_floats(n_kv, group, ...)
inline void attention_group(const float* q, const KvView& k, const KvView& v, int64_t n_kv, int64_t kv_head,
                            int64_t group, int64_t head_dim, float scale, float* out, float* scratch) {
  attention_tokens(q, 0, k, v, &n_kv, 1, kv_head, group, head_dim, scale, out, scratch);
}
// Cache rows the SIMD attention converts to floats at a time (attention_impl.h, blocked_attention).
constexpr int64_t kAttentionKeyBlock = 64;
// Query rows (tokens x heads of a group) worth one pass over the cache: 4 vectors of 8 heads.
constexpr int64_t kAttentionRows = 32;
// Tokens of one sequence per attention_tokens call during a prompt: about kAttentionRows rows.
inline int64_t attention_token_block(int64_t group) { return group >= kAttentionRows ? 1 : kAttentionRows / group; }
// Scratch of attention_tokens for up to `rows` query rows over up to n_ctx positions: their scores,
// the queries transposed in vectors of 8 rows, one block of converted cache rows, and alignment.
inline int64_t attention_scratch_floats(int64_t n_ctx, int64_t rows, int64_t head_dim) {
  return rows * n_ctx + ((rows + 7) / 8 * 8 + kAttentionKeyBlock) * head_dim + 8;
}

}  // namespace edgeglm::kernels
