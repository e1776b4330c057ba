#include "compress/quantize_model.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <tuple>
#include <unistd.h>

#include "model/convert.h"
#include "quant/calibrated.h"
#include "quant/quant.h"

namespace edgeglm::compress {
namespace {

namespace fs = std::filesystem;

quant::TensorDesc describe(const formats::TensorInfo& t) {
  quant::TensorDesc d;
  d.name = t.name;
  d.n_dims = int(t.shape.size());
  d.cols = t.shape.empty() ? 0 : t.shape[0];
  d.rows = d.cols > 0 ? t.nelements() / d.cols : 0;
  return d;
}

bool is_float_type(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

}  // namespace

Result<KeepRule> parse_keep_rule(const std::string& spec) {
  const size_t eq = spec.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    return Status::error("--keep '" + spec + "': expected REGEX=TYPE (e.g. 'output|token_embd=q8_0')");
  KeepRule r;
  r.pattern = spec.substr(0, eq);
  const std::string type = spec.substr(eq + 1);
  auto dt = dtype_from_name(type);
  if (dt.ok()) {
    r.type = *dt;
  } else {
    auto s = quant::find_scheme(type);
    if (!s.ok() || (*s)->kind == quant::SchemeKind::kMixed)
      return Status::error("--keep '" + spec + "': unknown type '" + type +
                           "' (a format such as q8_0, q6_k, f16, i8_row, or a fixed scheme name)");
    r.type = (*s)->type;
  }
  const quant::QuantOps* ops = quant::quant_ops(r.type);
  if (!ops || !ops->quantize_row)
    return Status::error("--keep '" + spec + "': cannot write tensors as " + dtype_name(r.type));
  try {
    r.re = std::regex(r.pattern, std::regex::ECMAScript | std::regex::optimize);
  } catch (const std::regex_error& e) {
    return Status::error("--keep '" + spec + "': bad regular expression: " + e.what());
  }
  return r;
}

Result<std::vector<TensorChoice>> plan_tensors(const formats::ModelFile& file,
                                               const model::ModelConfig& cfg,
                                               const QuantizeOptions& opts) {
  if (!opts.scheme) return Status::error("quantize: no scheme");
  quant::ModelDesc md;
  md.n_layer = cfg.n_layer;
  md.tied_output = file.find("output.weight") == nullptr;
  std::vector<TensorChoice> out;
  for (const formats::TensorInfo& t : file.tensors) {
    const quant::TensorDesc d = describe(t);
    TensorChoice c;
    c.name = t.name;
    c.from = t.dtype;
    c.rows = d.rows;
    c.cols = d.cols;
    if (opts.scheme->kind == quant::SchemeKind::kMixed && quant::is_quantizable(d)) {
      auto it = opts.plan.find(t.name);
      if (it == opts.plan.end())
        return Status::error("quantize: the mixed plan has no type for '" + t.name + "'");
      c.to = it->second;
    } else {
      c.to = quant::scheme_tensor_type(*opts.scheme, d, md, t.dtype);
    }
    // Vectors in half precision (some Hugging Face files) become F32 as `convert` makes them.
    if (!quant::is_quantizable(d) && is_float_type(t.dtype)) c.to = DType::F32;
    bool kept = false;  // a --keep rule chose the type
    if (quant::is_quantizable(d)) {
      for (const KeepRule& k : opts.keep)
        if (std::regex_search(t.name, k.re)) {
          if (!dtype_row_ok(k.type, d.cols))
            return Status::error("--keep '" + k.pattern + "': tensor '" + t.name + "' has rows of " +
                                 std::to_string(d.cols) + " elements, which " +
                                 dtype_name(k.type) + " cannot store");
          c.to = k.type;
          kept = true;
          break;
        }
    }
    // The fixed scheme's own format, where a row-length fallback replaced it (fallback_notes).
    c.wanted = c.to;
    if (!kept && opts.scheme->kind != quant::SchemeKind::kMixed && quant::is_quantizable(d))
      c.wanted = quant::scheme_preferred_type(*opts.scheme, d, md, t.dtype);
    c.bytes = dtype_row_bytes(c.to, d.cols) * uint64_t(d.rows);
    c.calibrated = opts.calib && c.to != c.from && quant::calib_supported(c.to) &&
                   opts.calib->for_tensor(t.name, md.tied_output) != nullptr;
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<std::string> fallback_notes(const std::vector<TensorChoice>& plan) {
  struct Group {
    int n = 0;
    std::string names;
  };
  std::map<std::tuple<DType, DType, int64_t>, Group> groups;  // (wanted, to, cols)
  for (const TensorChoice& c : plan) {
    if (c.wanted == c.to) continue;
    Group& g = groups[{c.wanted, c.to, c.cols}];
    if (g.n < 3) g.names += (g.n ? ", " : "") + c.name;
    if (g.n == 3) g.names += ", ...";
    ++g.n;
  }
  std::vector<std::string> out;
  for (const auto& [key, g] : groups) {
    const auto& [wanted, to, cols] = key;
    out.push_back(std::to_string(g.n) + (g.n == 1 ? " matrix" : " matrices") + " kept as " + dtype_name(to) +
                  ", not " + dtype_name(wanted) + ": rows of " + std::to_string(cols) +
                  " elements are no whole number of its " + std::to_string(dtype_traits(wanted)->block_size) +
                  "-element blocks (" + g.names + ")");
  }
  return out;
}

Status check_output_path(const std::string& in_path, const std::string& out_path) {
  if (out_path.empty()) return Status::error("quantize: no output path (-o OUT.gguf)");
  std::error_code ec;
  if (fs::exists(out_path, ec) && fs::equivalent(in_path, out_path, ec))
    return Status::error(out_path + ": the output would overwrite the input; choose another path");
  const fs::path parent = fs::absolute(fs::path(out_path), ec).parent_path();
  if (!fs::is_directory(parent, ec))
    return Status::error(out_path + ": directory " + parent.string() + " does not exist");
  if (::access(parent.c_str(), W_OK) != 0)
    return Status::error(out_path + ": directory " + parent.string() + " is not writable");
  if (fs::is_directory(out_path, ec)) return Status::error(out_path + ": is a directory");
  return Status::ok();
}

Status quantize_matrix(DType type, const float* w, int64_t rows, int64_t cols, const float* h,
                       uint8_t* out, ThreadPool& pool) {
  if (h && quant::calib_supported(type)) return quant::quantize_matrix(type, w, rows, cols, h, out, &pool);
  const size_t row_bytes = dtype_row_bytes(type, cols);
  pool.parallel_for(
      rows,
      [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) quant::quantize_row(type, w + r * cols, out + size_t(r) * row_bytes, cols);
      },
      8);
  return Status::ok();
}

Result<QuantizeResult> quantize_model(const model::Model& model, const std::string& out_path,
                                      const QuantizeOptions& opts, ThreadPool& pool,
                                      const QuantizeProgress& progress) {
  const formats::ModelFile& file = model.file();
  EG_TRY(check_output_path(file.path, out_path));
  EG_ASSIGN_OR_RETURN(std::vector<TensorChoice> plan, plan_tensors(file, model.config(), opts));
  std::map<std::string, DType> types;
  for (const TensorChoice& c : plan) types[c.name] = c.to;
  const bool tied = file.find("output.weight") == nullptr;

  // Factorized Hessians are shared by the matrices that read the same input (q/k/v, gate/up);
  // tensors come grouped by layer, so the cache is emptied when the layer changes.
  std::map<const InputStats*, std::shared_ptr<const quant::CalibHessian>> hess;
  int64_t hess_layer = -2;

  model::ConvertOptions co;
  co.tensor_type = [&](const formats::TensorInfo& t) { return types.at(t.name); };
  co.quantize_matrix = [&](const std::string& name, DType type, const float* w, int64_t rows,
                           int64_t cols, uint8_t* out) -> Status {
    const InputStats* st = opts.calib && quant::calib_supported(type)
                               ? opts.calib->for_tensor(name, tied)
                               : nullptr;
    if (!st) return quantize_matrix(type, w, rows, cols, nullptr, out, pool);
    if (st->n_in != cols)
      return Status::error("calibration statistics of '" + name + "' have " +
                           std::to_string(st->n_in) + " channels, the tensor " + std::to_string(cols));
    const int64_t layer = quant::layer_of(name);
    if (layer != hess_layer) {
      hess.clear();
      hess_layer = layer;
    }
    auto it = hess.find(st);
    if (it == hess.end()) {
      auto h = quant::prepare_hessian(st->xtx.data(), cols, &pool);
      if (!h.ok()) return h.status().with_context("tensor '" + name + "'");
      it = hess.emplace(st, std::move(h).value()).first;
    }
    Status s = quant::quantize_matrix(type, w, rows, cols, *it->second, out, &pool);
    return s.is_ok() ? s : s.with_context("tensor '" + name + "'");
  };
  co.file_type = opts.scheme->file_type;
  const bool any_integer = std::any_of(plan.begin(), plan.end(), [](const TensorChoice& c) {
    const DTypeTraits* tr = dtype_traits(c.to);
    return tr && tr->quantized;
  });
  const bool any_calibrated =
      std::any_of(plan.begin(), plan.end(), [](const TensorChoice& c) { return c.calibrated; });
  QuantizeResult res;
  res.method = any_calibrated ? "gptq" : "rtn";
  if (any_integer) co.extra_meta["general.quantization_version"] = formats::MetaValue::from_u32(2);
  co.extra_meta["edgeglm.quantize.scheme"] = formats::MetaValue::from_string(opts.scheme->name);
  co.extra_meta["edgeglm.quantize.method"] = formats::MetaValue::from_string(res.method);
  co.extra_meta["edgeglm.quantize.calibration"] = formats::MetaValue::from_string(
      opts.calib ? opts.calib->source + ", " + std::to_string(opts.calib->tokens) + " tokens" : "none");
  std::vector<std::string> plan_strings;
  for (const TensorChoice& c : plan)
    if (c.to != c.from) plan_strings.push_back(c.name + "=" + dtype_name(c.to));
  co.extra_meta["edgeglm.quantize.plan"] = formats::MetaValue::from_strings(plan_strings);

  const auto t0 = std::chrono::steady_clock::now();
  EG_TRY(model::convert_to_gguf(file, out_path, co, [&](size_t i, size_t n) {
    if (progress) progress(i, n, i >= 1 && i <= file.tensors.size() ? file.tensors[i - 1].name : "");
  }));
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::error_code ec;
  res.in_bytes = file.file_bytes;
  res.out_bytes = fs::file_size(out_path, ec);
  for (const TensorChoice& c : plan) {
    res.weight_bytes += c.bytes;
    res.n_params += c.rows * c.cols;
  }
  res.bits_per_weight = res.n_params ? 8.0 * double(res.weight_bytes) / double(res.n_params) : 0;
  res.tensors = std::move(plan);
  return res;
}

}  // namespace edgeglm::compress
