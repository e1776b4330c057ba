// edgeglm serve: the OpenAI-compatible service. Binds first (so /health answers "loading" while
// the model maps), loads, tells systemd READY=1, then pings the watchdog only while the engine
// makes progress. SIGTERM drains (running requests finish up to --drain-s, the rest end with
// finish_reason "shutdown") and exits 0; SIGHUP re-reads the config file and the key file.
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <thread>

#include "common.h"
#include "serve/config.h"
#include "serve/http/server.h"
#include "serve/scheduler.h"
#include "serve/systemd_notify.h"

namespace edgeglm::cli {
namespace {

struct ServeArgs {
  std::string config_file;
  std::string tokenizer;
  std::vector<int> cpus;
  std::vector<std::string> api_keys;  // --api-key (visible in `ps`: prefer --api-key-file)
  serve::ServeConfig flags;  // values given on the command line
  // Copies each option the command line set from `flags` onto a config (the file's, or the
  // defaults): flags win over the file, also after a SIGHUP reload.
  std::vector<std::function<void(serve::ServeConfig&)>> overrides;
  std::vector<CLI::Option*> options;
};

// The config in force: the file (if any) over the defaults, the command line over both, the key
// file merged in, validated.
Result<serve::ServeConfig> effective_config(const ServeArgs& a) {
  serve::ServeConfig c;
  if (!a.config_file.empty()) {
    EG_ASSIGN_OR_RETURN(c, serve::load_config_json(a.config_file, serve::ServeConfig{}));
  }
  for (size_t i = 0; i < a.options.size(); ++i)
    if (a.options[i]->count() > 0) a.overrides[i](c);
  EG_TRY(c.validate());
  EG_TRY(serve::merge_api_key_file(c));
  for (const std::string& k : a.api_keys) {
    if (k.size() < 16 || k.find_first_of(" \t\r\n") != std::string::npos)
      return Status::error("--api-key: a key needs at least 16 characters and no whitespace");
    c.api_keys.emplace(k, "normal");
  }
  if (c.model.empty()) return Status::error("no model: give -m MODEL or \"model\" in the config file");
  return c;
}

serve::http::ServedModel describe(const serve::ServeConfig& c, const model::Model& m) {
  serve::http::ServedModel sm;
  sm.id = c.effective_model_alias();
  struct stat st {};
  sm.created = ::stat(c.model.c_str(), &st) == 0 ? int64_t(st.st_mtime) : 0;
  const std::string src = m.file().get_string("tokenizer.chat_template").value_or("");
  Result<tokenizer::ChatTemplate> t = c.chat_template ? tokenizer::chat_template_from_name(*c.chat_template)
                                                      : tokenizer::detect_chat_template(src);
  if (t.ok()) {
    sm.has_chat_template = true;
    sm.chat_template = *t;
    if (!c.chat_template) sm.default_system = tokenizer::default_system_prompt(src);
  }
  return sm;
}

int run(const ServeArgs& a) {
  auto cfg = effective_config(a);
  if (!cfg.ok()) return fail(cfg.status());
  if (cfg->chat_template) {
    if (auto t = tokenizer::chat_template_from_name(*cfg->chat_template); !t.ok()) return fail(t.status());
  }
  auto kv_type = model::parse_kv_type(cfg->kv_type);
  if (!kv_type.ok()) return fail(kv_type.status());

  // Signals are taken by one thread through sigwait; every thread started below inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&sigs, s);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up is a failed write, not a dead server

  serve::http::Server server(*cfg);
  auto port = server.bind(cfg->host, cfg->port);
  if (!port.ok()) return fail(port.status());
  std::fprintf(stderr, "edgeglm serve: listening on http://%s:%d (loading %s)\n", cfg->host.c_str(),
               *port, cfg->model.c_str());
  std::thread http([&] { server.listen(); });
  serve::SystemdNotifier notifier;
  auto stop_http = [&] {
    server.stop();
    http.join();
  };

  ModelArgs margs;
  margs.model = cfg->model;
  margs.tokenizer = a.tokenizer;
  margs.threads = cfg->threads;
  margs.cpus = a.cpus;
  margs.ctx = cfg->ctx;
  margs.kv_type = *kv_type;
  auto loaded = load_model(margs);
  if (!loaded.ok()) return stop_http(), fail(loaded.status());
  ThreadPool pool(margs.thread_count(), margs.pin_cpus());
  serve::SchedulerOptions so;
  so.n_parallel = cfg->parallel;
  so.n_ctx = cfg->ctx;
  so.ubatch = cfg->ubatch;
  so.kv_type = *kv_type;
  so.kv_budget_bytes = size_t(cfg->kv_budget_mb) << 20;
  so.queue_limit = {cfg->queue_interactive, cfg->queue_normal, cfg->queue_batch};
  so.preempt = cfg->preempt;
  so.stall_limit_s = cfg->stall_limit_s;
  auto sched = serve::Scheduler::create(*loaded->model, *loaded->tokenizer, pool, so, &server);
  if (!sched.ok()) return stop_http(), fail(sched.status());
  serve::http::ServedModel sm = describe(*cfg, *loaded->model);
  std::fprintf(stderr,
               "edgeglm serve: model '%s' ready: %d slots x %d positions, %d threads, chat template %s\n",
               sm.id.c_str(), cfg->parallel, cfg->ctx, pool.size(),
               sm.has_chat_template ? tokenizer::chat_template_name(sm.chat_template) : "none");
  server.attach(sched->get(), sm);
  notifier.ready();
  const std::string serving = "serving " + sm.id;
  notifier.status(serving);

  serve::Scheduler& s = **sched;
  // Pings only while the engine makes progress. A drain counts as healthy while it still steps
  // (otherwise a drain longer than WatchdogSec would get the service killed mid-drain). The
  // reason carries no timing, so STATUS= is sent once per change, and is restored on recovery.
  bool was_ok = true;
  const double stall_limit = cfg->stall_limit_s;
  serve::WatchdogPinger pinger(notifier, notifier.watchdog_interval(), [&](std::string& why) {
    const serve::Health h = s.health();
    const bool ok = h.ok || (h.status == "draining" && h.seconds_since_progress <= stall_limit);
    if (!ok) why = h.status == "stalled" ? "stalled: busy, no engine step within the stall limit"
                                         : h.status + ": " + h.reason;
    if (ok && !was_ok) notifier.status(serving);
    was_ok = ok;
    return ok;
  });
  if (notifier.watchdog_interval().count() > 0) pinger.start();

  for (;;) {
    int sig = 0;
    if (sigwait(&sigs, &sig) != 0) continue;
    if (sig == SIGHUP) {
      notifier.reloading();
      auto fresh = effective_config(a);
      if (fresh.ok()) {
        server.reload(*fresh);
        std::fprintf(stderr, "edgeglm serve: reloaded configuration (%zu API keys)\n",
                     fresh->api_keys.size());
      } else {
        std::fprintf(stderr, "edgeglm serve: reload failed, keeping the old configuration: %s\n",
                     fresh.status().message().c_str());
      }
      notifier.ready();
      continue;
    }
    break;  // SIGTERM / SIGINT
  }
  notifier.stopping();
  std::fprintf(stderr, "edgeglm serve: draining (up to %d s)\n", cfg->drain_s);
  const int cut = s.drain(serve::Clock::now() + std::chrono::seconds(cfg->drain_s));
  pinger.stop();
  stop_http();
  const serve::SchedulerStats st = s.stats();
  std::fprintf(stderr,
               "edgeglm serve: stopped; %d request(s) cut short by the drain deadline; %lld tokens "
               "generated in %lld steps\n",
               cut, static_cast<long long>(st.generated_tokens), static_cast<long long>(st.steps));
  return 0;
}

template <class T>
void add_override(ServeArgs& a, CLI::Option* opt, T serve::ServeConfig::*field) {
  a.options.push_back(opt);
  a.overrides.push_back([&a, field](serve::ServeConfig& c) { c.*field = a.flags.*field; });
}

}  // namespace

void register_serve(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ServeArgs>();
  ServeArgs& r = *a;
  serve::ServeConfig& f = r.flags;
  CLI::App* cmd = app.add_subcommand(
      "serve", "OpenAI-compatible HTTP service: priorities, continuous batching, health, systemd");
  cmd->add_option("--config", r.config_file, "JSON config file (keys: see deploy/edgeglm.json); "
                                             "flags given on the command line win")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tokenizer", r.tokenizer, "tokenizer.bin for a llama2.c model");
  cmd->add_option("--api-key", r.api_keys, "accepted API key, class normal (repeatable; visible in ps: "
                                           "prefer --api-key-file)");
  cmd->add_option("--cpus", r.cpus, "pin compute threads to these CPUs")->delimiter(',');
  using SC = serve::ServeConfig;
  add_override(r, cmd->add_option("-m,--model", f.model, "model file (GGUF, llama2.c, HF dir)"), &SC::model);
  add_override(r, cmd->add_option("--host", f.host, "listen address (default 127.0.0.1: local only)"), &SC::host);
  add_override(r, cmd->add_option("--port", f.port, "TCP port (0: any free port)")->check(CLI::Range(0, 65535)), &SC::port);
  add_override(r, cmd->add_option("-t,--threads", f.threads, "compute threads (0: auto)"), &SC::threads);
  add_override(r, cmd->add_option("-c,--ctx", f.ctx, "context positions per sequence"), &SC::ctx);
  add_override(r, cmd->add_option("--parallel", f.parallel, "sequences decoding at once (KV slots)"), &SC::parallel);
  add_override(r, cmd->add_option("--ubatch", f.ubatch, "tokens per engine step (decodes + prompt chunks)"), &SC::ubatch);
  add_override(r, cmd->add_option("--kv-budget,--kv-budget-mb", f.kv_budget_mb, "KV cache admission budget in MiB (0: slots only)"), &SC::kv_budget_mb);
  add_override(r, cmd->add_option("--kv-type", f.kv_type, "KV cache type: f16, f32, q8_0"), &SC::kv_type);
  add_override(r, cmd->add_option("--queue-interactive", f.queue_interactive, "queued interactive requests at most"), &SC::queue_interactive);
  add_override(r, cmd->add_option("--queue-normal", f.queue_normal, "queued normal requests at most"), &SC::queue_normal);
  add_override(r, cmd->add_option("--queue-batch", f.queue_batch, "queued batch requests at most"), &SC::queue_batch);
  add_override(r, cmd->add_option("--max-tokens-limit", f.max_tokens_limit, "largest max_tokens a request may ask"), &SC::max_tokens_limit);
  add_override(r, cmd->add_option("--timeout,--default-timeout-s", f.default_timeout_s, "request deadline in seconds when the request sets none (0: none)"), &SC::default_timeout_s);
  add_override(r, cmd->add_option("--stall-limit-s", f.stall_limit_s, "busy without an engine step this long: /health 503, no watchdog ping"), &SC::stall_limit_s);
  add_override(r, cmd->add_option("--drain-s", f.drain_s, "on SIGTERM, let running requests finish this long"), &SC::drain_s);
  add_override(r, cmd->add_option("--body-limit-bytes", f.body_limit_bytes, "largest request body"), &SC::body_limit_bytes);
  add_override(r, cmd->add_option("--max-stop-strings", f.max_stop_strings, "stop strings per request"), &SC::max_stop_strings);
  add_override(r, cmd->add_option("--max-stop-len", f.max_stop_len, "bytes per stop string"), &SC::max_stop_len);
  add_override(r, cmd->add_option("--api-key-file", f.api_key_file, "file of API keys (one per line, optional priority class after it)"), &SC::api_key_file);
  add_override(r, cmd->add_option("--chat-template", f.chat_template, "chat template name (default: the model's)"), &SC::chat_template);
  add_override(r, cmd->add_option("--model-alias", f.model_alias, "model id clients name (default: file stem)"), &SC::model_alias);
  add_override(r, cmd->add_flag("--allow-debug-hooks", f.allow_debug_hooks, "enable POST /debug/stall (tests only)"), &SC::allow_debug_hooks);
  add_override(r, cmd->add_flag("!--no-preempt", f.preempt, "interactive requests never preempt batch ones"), &SC::preempt);
  cmd->callback([a, &exit_code] { exit_code = run(*a); });
}

}  // namespace edgeglm::cli
