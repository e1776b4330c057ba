// The decoder forward pass shared by every architecture; ArchSpec flags and the bound weights say
// which optional pieces (biases, post norms, fused tensors, rope layout) a model has.
#include <cmath>

#include "kernels/kernels.h"
#include "model/model.h"

namespace edgeglm::model {

namespace k = edgeglm::kernels;

namespace {
// Attention work below this many multiply-adds per thread is not worth waking a thread for.
constexpr int64_t kMinAttentionMacsPerThread = 32 * 1024;
}  // namespace

void Context::attention(int64_t il, int64_t n) {
  const ModelConfig& c = config_;
  const int64_t kv_dim = c.kv_dim();
  const float* kc = k_cache_ + il * opts_.n_ctx * kv_dim;
  const float* vc = v_cache_ + il * opts_.n_ctx * kv_dim;
  const float scale = 1.0f / std::sqrt(float(c.head_dim));
  const int64_t items = n * c.n_head;  // (token, head) pairs
  // About 2 * n_kv * head_dim multiply-adds per pair: small batches stay on this thread.
  const int64_t macs_per_item = 2 * (n_past_ + n) * c.head_dim;
  pool_.parallel_for(
      items,
      [&](int64_t b, int64_t e, int ith) {
        float* scratch = scores_ + int64_t(ith) * opts_.n_ctx;
        for (int64_t it = b; it < e;) {
          const int64_t t = it / c.n_head;
          const int64_t h0 = it % c.n_head;
          const int64_t h1 = std::min(c.n_head, h0 + (e - it));
          // Token t sits at position n_past + t and sees positions 0 .. n_past + t (causal).
          k::attention_one(q_ + t * c.q_dim(), kc, vc, n_past_ + t + 1, kv_dim, c.n_head,
                           c.n_head_kv, c.head_dim, scale, att_ + t * c.q_dim(), scratch, h0, h1);
          it += h1 - h0;
        }
      },
      kMinAttentionMacsPerThread / macs_per_item + 1);
}

void Context::forward(const int32_t* tokens, int64_t n, bool all_logits, bool need_logits) {
  const ModelConfig& c = config_;
  const Weights& w = model_.weights();
  const int64_t E = c.n_embd, QD = c.q_dim(), KD = c.kv_dim();

  const int64_t R = c.rope.n_rot;
  for (int64_t t = 0; t < n; ++t) {
    k::get_row(w.token_embd, tokens[t], x_ + t * E);
    k::rope_angles(float(n_past_ + t), w.inv_freq.data(), R, rope_ + t * R);
  }

  for (int64_t il = 0; il < c.n_layer; ++il) {
    const LayerWeights& l = w.layers[size_t(il)];
    for (int64_t t = 0; t < n; ++t) k::rmsnorm(h_ + t * E, x_ + t * E, l.attn_norm, E, c.norm_eps);
    k::matmul(l.wq, h_, n, q_, pool_);
    k::matmul(l.wk, h_, n, k_, pool_);
    k::matmul(l.wv, h_, n, v_, pool_);
    float* kc = k_cache_ + (il * opts_.n_ctx + n_past_) * KD;
    float* vc = v_cache_ + (il * opts_.n_ctx + n_past_) * KD;
    for (int64_t t = 0; t < n; ++t) {
      float* qt = q_ + t * QD;
      float* kt = k_ + t * KD;
      if (l.bq) k::add_inplace(qt, l.bq, QD);
      if (l.bk) k::add_inplace(kt, l.bk, KD);
      if (l.bv) k::add_inplace(v_ + t * KD, l.bv, KD);
      k::rope(qt, c.n_head, c.head_dim, R, rope_ + t * R, c.rope.neox);
      k::rope(kt, c.n_head_kv, c.head_dim, R, rope_ + t * R, c.rope.neox);
      std::copy(kt, kt + KD, kc + t * KD);
      std::copy(v_ + t * KD, v_ + (t + 1) * KD, vc + t * KD);
    }
    attention(il, n);
    k::matmul(l.wo, att_, n, h_, pool_);
    for (int64_t t = 0; t < n; ++t) {
      if (l.post_attn_norm) k::rmsnorm(h_ + t * E, h_ + t * E, l.post_attn_norm, E, c.norm_eps);
      k::add_inplace(x_ + t * E, h_ + t * E, E);
      k::rmsnorm(h_ + t * E, x_ + t * E, l.ffn_norm, E, c.norm_eps);
    }
    k::matmul(l.w_gate, h_, n, gate_, pool_);
    k::matmul(l.w_up, h_, n, up_, pool_);
    k::silu_mul(gate_, up_, n * c.n_ff);
    k::matmul(l.w_down, gate_, n, h_, pool_);
    for (int64_t t = 0; t < n; ++t) {
      if (l.post_ffn_norm) k::rmsnorm(h_ + t * E, h_ + t * E, l.post_ffn_norm, E, c.norm_eps);
      k::add_inplace(x_ + t * E, h_ + t * E, E);
    }
  }
  n_past_ += n;
  if (!need_logits) return;

  // Logits only where they are needed: every token, or the last one.
  const int64_t first = all_logits ? 0 : n - 1;
  const int64_t m = n - first;
  for (int64_t t = 0; t < m; ++t)
    k::rmsnorm(h_ + t * E, x_ + (first + t) * E, w.output_norm, E, c.norm_eps);
  k::matmul(w.output, h_, m, logits_, pool_);
}

}  // namespace edgeglm::model
