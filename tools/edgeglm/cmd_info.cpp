// edgeglm info: what a model file is and what it needs to run.
#include <cstdio>
#include <map>

#include "common.h"
#include "core/cpu_topology.h"
#include "core/sys_info.h"
#include "formats/model_file.h"
#include "kernels/isa.h"
#include "kernels/layout.h"
#include "tokenizer/chat_template.h"

namespace edgeglm::cli {
namespace {

struct InfoArgs {
  std::string model;
  std::string tokenizer;
  int64_t ctx = 2048;
  bool metadata = false;
  bool tensors = false;
  bool cpu = false;
  DType kv_type = DType::F16;
};

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

int run(const InfoArgs& a) {
  if (a.cpu) {
    std::printf("cpu features: %s\n", cpu_features_string().c_str());
    std::printf("cores:        %s\n", system_topology().describe().c_str());
    std::string isas;
    for (const kernels::KernelTable* t : kernels::available_isas()) isas += std::string(" ") + t->name;
    std::printf("kernels:      %s (compiled and usable:%s; EDGEGLM_ISA=name forces one)\n",
                kernels::active_isa().name, isas.c_str());
    std::printf("threads:      --threads auto = %d%s\n", auto_thread_count(system_topology()),
                auto_pin_cpus(system_topology()).empty()
                    ? ""
                    : (", pinned to cpu " + format_cpu_list(auto_pin_cpus(system_topology()))).c_str());
    // Which table computes each weight format, and how (int8 activations or float).
    std::printf("formats:     ");
    for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1,
                    DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K,
                    DType::Q6_K, DType::I8_ROW, DType::U8_ROW, DType::I4_G64, DType::I4_G128,
                    DType::U4_G64, DType::U4_G128}) {
      const kernels::ResolvedFormat r = kernels::resolve_format(kernels::active_isa(), t);
      // A run-time layout the table prefers (kernels/layout.h), for matrices whose shape fits it.
      const DType layout = kernels::preferred_layout(t, 64, 256);
      std::printf(" %s=%s%s%s", dtype_name(t), r.isa ? r.isa : "none",
                  r.k.q ? "/int8" : (r.k.f && dtype_traits(t)->quantized ? "/dequant" : ""),
                  layout != t ? (std::string("->") + dtype_name(layout)).c_str() : "");
    }
    std::printf("\n");
  }
  if (a.model.empty()) return a.cpu ? 0 : fail(Status::error("info: a model path is required"));
  auto m = model::Model::load(a.model, a.tokenizer);
  if (!m.ok()) return fail(m.status());
  const model::Model& mod = **m;
  const formats::ModelFile& f = mod.file();
  const model::ModelConfig& c = mod.config();
  static const char* kKinds[] = {"GGUF", "llama2.c checkpoint", "Hugging Face safetensors"};
  std::printf("file:          %s (%s%s), %.2f MiB on disk\n", f.path.c_str(), kKinds[int(f.kind)],
              f.kind == formats::FileKind::kGguf ? (" v" + std::to_string(f.gguf_version)).c_str() : "",
              mib(double(f.file_bytes)));
  std::printf("name:          %s\n", f.get_string("general.name").value_or("-").c_str());
  std::printf("architecture:  %s (%s)\n", c.arch_name.c_str(), model::arch_display_name(c.arch));
  // quantize's FFN padding (compress/pad_ffn.h) records the width before it.
  std::string padded;
  if (auto from = f.get_int("edgeglm.ffn_padded_from"); from.ok() && from->has_value() && **from < c.n_ff)
    padded = " (" + std::to_string(**from) + " + " + std::to_string(c.n_ff - **from) + " zero channels)";
  std::printf("layers %lld, embedding %lld, heads %lld (kv %lld, head dim %lld), ffn %lld%s, vocab %lld\n",
              (long long)c.n_layer, (long long)c.n_embd, (long long)c.n_head, (long long)c.n_head_kv,
              (long long)c.head_dim, (long long)c.n_ff, padded.c_str(), (long long)c.n_vocab);
  std::printf("rope:          %lld of %lld dims rotate, %s pairs, base %g%s\n", (long long)c.rope.n_rot,
              (long long)c.head_dim, c.rope.neox ? "neox (i, i+d/2)" : "interleaved (2i, 2i+1)",
              double(c.rope.base),
              f.find("rope_freqs.weight")          ? ", per-pair frequency factors (rope_freqs)"
              : c.rope.scaling == model::RopeScaling::kNone ? ""
              : c.rope.scaling == model::RopeScaling::kLinear ? ", linear scaling"
                                                              : ", llama3 scaling");
  std::printf("norm eps %g, trained context %lld, output %s\n", double(c.norm_eps),
              (long long)c.n_ctx_train, mod.weights().tied_output ? "tied to the embedding" : "separate");

  std::map<std::string, std::pair<int, size_t>> by_type;
  for (const auto& t : f.tensors) {
    auto& e = by_type[dtype_name(t.dtype)];
    e.first++;
    e.second += t.nbytes;
  }
  std::printf("tensors:       %zu:", f.tensors.size());
  for (const auto& [name, e] : by_type)
    std::printf(" %s x%d (%.2f MiB)", name.c_str(), e.first, mib(double(e.second)));
  std::printf("\n");
  const double params = double(mod.n_params());
  std::printf("parameters:    %.2f M, %.3f bits per weight, weights %.2f MiB\n", params / 1e6,
              8.0 * double(mod.weight_bytes()) / params, mib(double(mod.weight_bytes())));
  const size_t kv = mod.kv_cache_bytes(a.ctx, a.kv_type);
  model::ContextOptions co;
  co.n_ctx = a.ctx;
  co.kv_type = a.kv_type;
  const int threads = auto_thread_count(system_topology());
  const size_t act = model::Context::planned_bytes(mod, co, threads) - kv;
  std::printf("memory at --ctx %lld: weights %.2f MiB (mmapped) + KV cache %.2f MiB (%s) + "
              "activations %.2f MiB (%d threads) = %.2f MiB\n",
              (long long)a.ctx, mib(double(mod.weight_bytes())), mib(double(kv)), dtype_name(a.kv_type), mib(double(act)),
              threads, mib(double(mod.weight_bytes() + kv + act)));
  std::printf("bytes read per decoded token: %.2f MiB\n", mib(double(mod.bytes_per_token())));

  auto tok = tokenizer::Tokenizer::from_metadata(f.meta);
  if (tok.ok()) {
    std::printf("tokenizer:     %s, %d tokens, bos %d, eos %d, add_bos %s\n",
                (*tok)->kind() == tokenizer::VocabKind::kSpm ? "sentencepiece bpe" : "byte-level bpe",
                (*tok)->n_vocab(), (*tok)->bos_id(), (*tok)->eos_id(), (*tok)->add_bos() ? "yes" : "no");
  } else {
    std::printf("tokenizer:     none (%s)\n", tok.status().message().c_str());
  }
  auto tmpl = tokenizer::detect_chat_template(f.get_string("tokenizer.chat_template").value_or(""));
  std::printf("chat template: %s\n", tmpl.ok() ? tokenizer::chat_template_name(*tmpl) : "none recognised");

  if (a.metadata)
    for (const auto& [k, v] : f.meta) std::printf("  %s = %s\n", k.c_str(), v.to_string().c_str());
  if (a.tensors)
    for (const auto& t : f.tensors)
      std::printf("  %-32s %-7s %s %llu bytes\n", t.name.c_str(), dtype_name(t.dtype),
                  t.shape_string().c_str(), (unsigned long long)t.nbytes);
  return 0;
}

}  // namespace

void register_info(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<InfoArgs>();
  CLI::App* cmd = app.add_subcommand("info", "describe a model: architecture, tensors, size, memory");
  cmd->add_option("model", a->model, "model: .gguf, llama2.c .bin or Hugging Face directory");
  cmd->add_option("--tokenizer", a->tokenizer, "llama2.c tokenizer.bin");
  cmd->add_option("-c,--ctx", a->ctx, "context size for the memory estimate")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  cmd->add_flag("--metadata", a->metadata, "list every metadata key");
  cmd->add_flag("--tensors", a->tensors, "list every tensor");
  add_kv_type_option(cmd, a->kv_type);
  cmd->add_flag("--cpu", a->cpu,
                "print the CPU features and cores detected, and which kernels serve each format");
  cmd->callback([a, &exit_code] { exit_code = run(*a); });
}

}  // namespace edgeglm::cli
