#include "compress/smoothing.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "model/convert.h"
#include "quant/quant.h"

namespace edgeglm::compress {
namespace {

using model::MatmulSite;

// The working copy: tensors touched are decoded to F32 once and written back at the end.
class Editor {
 public:
  explicit Editor(formats::ModelFile& f) : f_(f) {}

  // Float copy of a tensor (rows of shape[0]); null if absent.
  std::vector<float>* get(const std::string& name) {
    auto it = edits_.find(name);
    if (it != edits_.end()) return &it->second;
    const formats::TensorInfo* t = f_.find(name);
    if (!t || !quant::quant_ops(t->dtype)) return nullptr;
    std::vector<float>& v = edits_[name];
    v.resize(size_t(t->nelements()));
    model::dequantize_rows(*t, 0, t->nelements() / t->shape[0], v.data());
    return &v;
  }
  int64_t cols(const std::string& name) const { return f_.find(name)->shape[0]; }

  void commit() {
    for (auto& [name, v] : edits_)
      for (formats::TensorInfo& t : f_.tensors)
        if (t.name == name) f_.replace_with_f32(t, v, t.shape);
  }

 private:
  formats::ModelFile& f_;
  std::map<std::string, std::vector<float>> edits_;
};

// s_j from the input's second moments and the consumers' column maxima.
std::vector<double> smoothing_factors(const InputStats& st, const std::vector<const std::vector<float>*>& ws,
                                      int64_t cols, double alpha) {
  std::vector<double> wmax(size_t(cols), 0.0);
  for (const std::vector<float>* w : ws)
    for (size_t k = 0; k < w->size(); ++k)
      wmax[k % size_t(cols)] = std::max(wmax[k % size_t(cols)], double(std::fabs((*w)[k])));
  std::vector<double> s(size_t(cols), 1.0);
  const double n = double(std::max<int64_t>(st.n_tokens, 1));
  for (int64_t j = 0; j < cols; ++j) {
    const double rms = std::sqrt(std::max(0.0, double(st.xtx[size_t(j * cols + j)])) / n);
    if (rms > 0 && wmax[size_t(j)] > 0)
      s[size_t(j)] = std::clamp(std::pow(rms, alpha) / std::pow(wmax[size_t(j)], 1.0 - alpha), 1e-4, 1e4);
  }
  return s;
}

void scale_columns(std::vector<float>& w, const std::vector<double>& s) {
  const size_t cols = s.size();
  for (size_t k = 0; k < w.size(); ++k) w[k] = float(double(w[k]) * s[k % cols]);
}

void scale_stats(InputStats& st, const std::vector<double>& s) {
  const int64_t n = st.n_in;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      st.xtx[size_t(i * n + j)] = float(double(st.xtx[size_t(i * n + j)]) / (s[size_t(i)] * s[size_t(j)]));
}

}  // namespace

Result<SmoothResult> smooth_model(const formats::ModelFile& file, const model::ModelConfig& cfg,
                                  Calibration& calib, const SmoothOptions& opts) {
  if (!(opts.alpha > 0 && opts.alpha <= 1))
    return Status::error("smoothing strength must be in (0, 1], got " + std::to_string(opts.alpha));
  SmoothResult res;
  res.file = std::make_unique<formats::ModelFile>(file);
  Editor ed(*res.file);
  for (int64_t il = 0; il < cfg.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    auto stats = [&](MatmulSite site) -> InputStats* {
      auto it = calib.stats.find({site, il});
      return it == calib.stats.end() ? nullptr : &it->second;
    };
    // Producer vector (norm) / consumer matrices' columns.
    auto norm_site = [&](MatmulSite site, const std::string& norm, std::vector<std::string> mats) {
      InputStats* st = stats(site);
      std::vector<float>* g = ed.get(p + norm);
      std::vector<const std::vector<float>*> ws;
      std::vector<std::vector<float>*> wm;
      for (const std::string& m : mats) {
        std::vector<float>* w = ed.get(p + m);
        if (!w) return;
        ws.push_back(w);
        wm.push_back(w);
      }
      if (!st || !g || int64_t(g->size()) != st->n_in || ed.cols(p + mats[0]) != st->n_in) return;
      const std::vector<double> s = smoothing_factors(*st, ws, st->n_in, opts.alpha);
      for (size_t j = 0; j < g->size(); ++j) (*g)[j] = float(double((*g)[j]) / s[j]);
      for (std::vector<float>* w : wm) scale_columns(*w, s);
      scale_stats(*st, s);
      ++res.sites;
    };
    norm_site(MatmulSite::kAttnIn, "attn_norm.weight", {"attn_q.weight", "attn_k.weight", "attn_v.weight"});
    norm_site(MatmulSite::kFfnIn, "ffn_norm.weight", {"ffn_gate.weight", "ffn_up.weight"});

    // FFN down: rows of ffn_up produce its input channels (only with a separate ffn_gate).
    if (InputStats* st = stats(MatmulSite::kFfnDown); st && res.file->find(p + "ffn_gate.weight")) {
      std::vector<float>* up = ed.get(p + "ffn_up.weight");
      std::vector<float>* down = ed.get(p + "ffn_down.weight");
      if (up && down && ed.cols(p + "ffn_down.weight") == st->n_in &&
          int64_t(up->size()) == st->n_in * ed.cols(p + "ffn_up.weight")) {
        const std::vector<double> s = smoothing_factors(*st, {down}, st->n_in, opts.alpha);
        const int64_t uc = ed.cols(p + "ffn_up.weight");
        for (int64_t j = 0; j < st->n_in; ++j)
          for (int64_t k = 0; k < uc; ++k) (*up)[size_t(j * uc + k)] = float(double((*up)[size_t(j * uc + k)]) / s[size_t(j)]);
        scale_columns(*down, s);
        scale_stats(*st, s);
        ++res.sites;
      }
    }

    // Attention output: rows of attn_v (and its bias) produce it, one factor per (kv head, dim)
    // shared by the group's query heads.
    if (InputStats* st = stats(MatmulSite::kAttnOut)) {
      std::vector<float>* v = ed.get(p + "attn_v.weight");
      std::vector<float>* o = ed.get(p + "attn_output.weight");
      const int64_t hd = cfg.head_dim, group = cfg.n_head / std::max<int64_t>(cfg.n_head_kv, 1);
      if (v && o && st->n_in == cfg.n_head * hd && ed.cols(p + "attn_output.weight") == st->n_in &&
          int64_t(v->size()) == cfg.n_head_kv * hd * ed.cols(p + "attn_v.weight") && group >= 1) {
        const std::vector<double> per_q = smoothing_factors(*st, {o}, st->n_in, opts.alpha);
        std::vector<double> s(size_t(st->n_in), 1.0), s_kv(size_t(cfg.n_head_kv * hd), 0.0);
        for (int64_t h = 0; h < cfg.n_head; ++h)
          for (int64_t d = 0; d < hd; ++d) {
            double& k = s_kv[size_t((h / group) * hd + d)];
            k = std::max(k, per_q[size_t(h * hd + d)]);
          }
        for (int64_t h = 0; h < cfg.n_head; ++h)
          for (int64_t d = 0; d < hd; ++d) s[size_t(h * hd + d)] = s_kv[size_t((h / group) * hd + d)];
        const int64_t vc = ed.cols(p + "attn_v.weight");
        for (int64_t r = 0; r < cfg.n_head_kv * hd; ++r)
          for (int64_t k = 0; k < vc; ++k) (*v)[size_t(r * vc + k)] = float(double((*v)[size_t(r * vc + k)]) / s_kv[size_t(r)]);
        if (std::vector<float>* bv = ed.get(p + "attn_v.bias"))
          for (size_t r = 0; r < bv->size() && r < s_kv.size(); ++r) (*bv)[r] = float(double((*bv)[r]) / s_kv[r]);
        scale_columns(*o, s);
        scale_stats(*st, s);
        ++res.sites;
      }
    }
  }
  ed.commit();
  return res;
}

}  // namespace edgeglm::compress
