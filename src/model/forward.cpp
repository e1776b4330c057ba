// The decoder forward pass shared by every architecture; ArchSpec flags and the bound weights say
// which optional pieces (biases, post norms, fused tensors, rope layout) a model has.
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "quant/quant.h"

#include "kernels/kernels.h"
#include "model/model.h"

namespace edgeglm::model {

namespace k = edgeglm::kernels;

namespace {
// Attention work below this many multiply-adds per thread is not worth waking a thread for.
constexpr int64_t kMinAttentionMacsPerThread = 128 * 1024;
// Keys per part when a decode step's attention is split over the keys.
constexpr int64_t kMinKeysPerPart = 256;
}  // namespace

void Context::store_kv(const float* x, char* cache, int32_t seq, int64_t il, int64_t pos) const {
  const int64_t hd = config_.head_dim;
  for (int64_t h = 0; h < config_.n_head_kv; ++h)
    quant::quantize_row(opts_.kv_type, x + h * hd, kv_slice(cache, seq, il, h, pos), hd);
}

void Context::plan_attention(int64_t n) {
  const int64_t group = config_.n_head / config_.n_head_kv;
  const int64_t block = std::min(k::attention_token_block(group), opts_.n_ubatch);
  // Runs of consecutive tokens of one sequence, up to `block` tokens: each run reads its
  // sequence's cache once for all its query rows. Token t sits at position pos_[t] of its sequence
  // and sees positions 0 .. pos_[t] (causal; earlier tokens of the same sequence in this batch are
  // already stored). The same for every layer of the pass.
  att_runs_.clear();
  att_max_pos_ = 0;
  for (int64_t t = 0; t < n; ++t) {
    att_n_[size_t(t)] = pos_[size_t(t)] + 1;
    att_max_pos_ = std::max(att_max_pos_, pos_[size_t(t)]);
    if (att_runs_.empty() || seq_[size_t(t)] != seq_[size_t(t - 1)] || t - att_runs_.back() == block)
      att_runs_.push_back(t);
  }
  att_runs_.push_back(n);
}

void Context::attention(int64_t il, int64_t n) {
  const ModelConfig& c = config_;
  const float scale = 1.0f / std::sqrt(float(c.head_dim));
  const int64_t group = c.n_head / c.n_head_kv;
  const int64_t block = std::min(k::attention_token_block(group), opts_.n_ubatch);
  const int64_t scratch_floats = k::attention_scratch_floats(opts_.n_ctx, block * group, c.head_dim);
  const int64_t max_pos = att_max_pos_;
  const int64_t runs = int64_t(att_runs_.size()) - 1;
  const int64_t items = runs * c.n_head_kv;  // (run, kv head) pairs
  auto run = [&](int64_t b, int64_t e, int ith) {
    float* scratch = scores_ + int64_t(ith) * scratch_floats;
    for (int64_t it = b; it < e; ++it) {
      const int64_t r = it / c.n_head_kv, t0 = att_runs_[size_t(r)], nt = att_runs_[size_t(r + 1)] - t0;
      const int32_t s = seq_[size_t(t0)];
      const k::KvView kc = kv_view(k_cache_, s, il, 0), vc = kv_view(v_cache_, s, il, 0);
      k::attention_tokens(q_ + t0 * c.q_dim(), c.q_dim(), kc, vc, &att_n_[size_t(t0)], nt, it % c.n_head_kv,
                          group, c.head_dim, scale, att_ + t0 * c.q_dim(), scratch);
    }
  };
  // About 2 * n_kv * head_dim * group multiply-adds per token and kv head: small batches stay on
  // this thread.
  const int64_t macs_per_item = 2 * (max_pos + 1) * c.head_dim * group * ((n + runs - 1) / runs);
  const int64_t grain = kMinAttentionMacsPerThread / macs_per_item + 1;
  if (items < 2 * grain) return run(0, items, 0);
  // Decode with fewer (token, kv head) items than two per thread (SmolLM2's 3 kv heads on 2
  // threads split 2 : 1, one kv head leaves every other thread idle): each item's keys are split
  // into parts of at least kMinKeysPerPart, every part its own task, and the parts' outputs merged
  // by their softmax statistics (flash-decoding).
  const int64_t threads = pool_.size();
  const int64_t parts = runs == n && items < 2 * threads
                            ? std::min((2 * threads + items - 1) / items, (max_pos + 1) / kMinKeysPerPart)
                            : 1;
  if (parts > 1) return attention_in_parts(il, n, parts, scale, group, scratch_floats);
  // A prompt's later tokens see more keys (causal), so equal ranges left the last thread with 3/4
  // of the work; stealing from the ends of the others' ranges balances it.
  pool_.parallel_for_stealing(items, /*step=*/1, grain, run);
}

void Context::attention_in_parts(int64_t il, int64_t n, int64_t parts, float scale, int64_t group,
                                 int64_t scratch_floats) {
  const ModelConfig& c = config_;
  const int64_t QD = c.q_dim(), hd = c.head_dim, items = n * c.n_head_kv, tasks = items * parts;
  // Sized in Context::create for the most tasks a split makes (house rule 3: no allocation here).
  if (att_parts_.size() < size_t(tasks * QD) || att_stats_.size() < size_t(tasks * 2 * group)) std::abort();
  pool_.parallel_for_stealing(tasks, /*step=*/1, /*grain=*/1, [&](int64_t b, int64_t e, int ith) {
    float* scratch = scores_ + int64_t(ith) * scratch_floats;
    for (int64_t it = b; it < e; ++it) {
      const int64_t item = it / parts, p = it % parts;
      const int64_t t = item / c.n_head_kv, h = item % c.n_head_kv;
      const int32_t s = seq_[size_t(t)];
      const int64_t n_kv = att_n_[size_t(t)], k0 = n_kv * p / parts, k1 = n_kv * (p + 1) / parts;
      const int64_t len = k1 - k0;
      float* stats = att_stats_.data() + it * 2 * group;
      if (len == 0) {  // a token with fewer keys than parts: this part weighs nothing
        for (int64_t g = 0; g < group; ++g) stats[2 * g] = -INFINITY, stats[2 * g + 1] = 0.0f;
        std::fill_n(att_parts_.data() + it * QD + h * group * hd, group * hd, 0.0f);
        continue;
      }
      const k::KvView kc = kv_view(k_cache_, s, il, k0), vc = kv_view(v_cache_, s, il, k0);
      k::attention_tokens(q_ + t * QD, QD, kc, vc, &len, 1, h, group, hd, scale, att_parts_.data() + it * QD,
                          scratch, stats);
    }
  });
  for (int64_t item = 0; item < items; ++item) {
    const int64_t t = item / c.n_head_kv, h0 = (item % c.n_head_kv) * group;
    k::merge_attention_parts(att_parts_.data() + item * parts * QD + h0 * hd, QD,
                             att_stats_.data() + item * parts * 2 * group, 2 * group, parts, group, hd,
                             att_ + t * QD + h0 * hd);
  }
}

void Context::forward(int64_t n, int64_t n_out) {
  const ModelConfig& c = config_;
  const Weights& w = model_.weights();
  const int64_t E = c.n_embd, QD = c.q_dim(), KD = c.kv_dim();

  const int64_t R = c.rope.n_rot;
  plan_attention(n);
  for (int64_t t = 0; t < n; ++t) {
    k::get_row(w.token_embd, tok_[size_t(t)], x_ + t * E);
    k::rope_angles(float(pos_[size_t(t)]), w.inv_freq.data(), R, rope_ + t * R);
  }

  for (int64_t il = 0; il < c.n_layer; ++il) {
    const LayerWeights& l = w.layers[size_t(il)];
    for (int64_t t = 0; t < n; ++t) k::rmsnorm(h_ + t * E, x_ + t * E, l.attn_norm, E, c.norm_eps);
    {  // q, k, v share their input: one quantization, one dispatch
      const TensorView* ws[3] = {&l.wq, &l.wk, &l.wv};
      float* ys[3] = {q_, k_, v_};
      if (opts_.observer) opts_.observer->observe(MatmulSite::kAttnIn, il, h_, n, E);
      k::matmul_group(ws, ys, 3, h_, n, pool_);
    }
    for (int64_t t = 0; t < n; ++t) {
      float* qt = q_ + t * QD;
      float* kt = k_ + t * KD;
      if (l.bq) k::add_inplace(qt, l.bq, QD);
      if (l.bk) k::add_inplace(kt, l.bk, KD);
      if (l.bv) k::add_inplace(v_ + t * KD, l.bv, KD);
      k::rope(qt, c.n_head, c.head_dim, R, rope_ + t * R, c.rope.neox);
      k::rope(kt, c.n_head_kv, c.head_dim, R, rope_ + t * R, c.rope.neox);
      store_kv(kt, k_cache_, seq_[size_t(t)], il, pos_[size_t(t)]);
      store_kv(v_ + t * KD, v_cache_, seq_[size_t(t)], il, pos_[size_t(t)]);
    }
    attention(il, n);
    if (opts_.observer) opts_.observer->observe(MatmulSite::kAttnOut, il, att_, n, QD);
    k::matmul(l.wo, att_, n, h_, pool_);
    for (int64_t t = 0; t < n; ++t) {
      if (l.post_attn_norm) k::rmsnorm(h_ + t * E, h_ + t * E, l.post_attn_norm, E, c.norm_eps);
      k::add_inplace(x_ + t * E, h_ + t * E, E);
      k::rmsnorm(h_ + t * E, x_ + t * E, l.ffn_norm, E, c.norm_eps);
    }
    {
      const TensorView* ws[2] = {&l.w_gate, &l.w_up};
      float* ys[2] = {gate_, up_};
      if (opts_.observer) opts_.observer->observe(MatmulSite::kFfnIn, il, h_, n, E);
      k::matmul_group(ws, ys, 2, h_, n, pool_);
    }
    k::silu_mul(gate_, up_, n * c.n_ff);
    if (opts_.observer) opts_.observer->observe(MatmulSite::kFfnDown, il, gate_, n, c.n_ff);
    k::matmul(l.w_down, gate_, n, h_, pool_);
    for (int64_t t = 0; t < n; ++t) {
      if (l.post_ffn_norm) k::rmsnorm(h_ + t * E, h_ + t * E, l.post_ffn_norm, E, c.norm_eps);
      k::add_inplace(x_ + t * E, h_ + t * E, E);
    }
  }
  if (n_out == 0) return;

  // Logits only where they are needed: the rows staged in out_rows_.
  for (int64_t r = 0; r < n_out; ++r)
    k::rmsnorm(h_ + r * E, x_ + out_rows_[size_t(r)] * E, w.output_norm, E, c.norm_eps);
  if (opts_.observer) opts_.observer->observe(MatmulSite::kOutput, c.n_layer, h_, n_out, E);
  k::matmul(w.output, h_, n_out, logits_, pool_);
}

}  // namespace edgeglm::model
