#include "serve/metrics.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <utility>

#include "core/sys_info.h"

namespace edgeglm::serve {
namespace {

// std::atomic<double>::fetch_add is C++20 but not lock-free everywhere; a CAS loop is portable
// to every cross compiler we target.
void atomic_add(std::atomic<double>& a, double v) {
  double cur = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

const char* type_name(MetricType t) {
  switch (t) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

// HELP text escapes only backslash and newline (quotes are literal there).
std::string escape_help(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// `{a="x",b="y"}` (empty when there are no labels); `extra` is appended last (the histogram `le`).
void append_labels(std::string& out, const std::vector<std::string>& names,
                   const LabelValues& values, std::string_view extra_name = {},
                   std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    out += escape_label_value(values[i]);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void append_sample(std::string& out, std::string_view name, const std::vector<std::string>& names,
                   const LabelValues& values, const std::string& value) {
  out += name;
  append_labels(out, names, values);
  out += ' ';
  out += value;
  out += '\n';
}

[[maybe_unused]] bool valid_bounds(const std::vector<double>& bounds) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) return false;
    if (i > 0 && !(bounds[i - 1] < bounds[i])) return false;
  }
  return true;
}

// +Inf as the last bound is accepted (it is what users often write) and dropped: it is implicit.
std::vector<double> strip_inf(std::vector<double> bounds) {
  if (!bounds.empty() && std::isinf(bounds.back()) && bounds.back() > 0) bounds.pop_back();
  return bounds;
}

template <class Child, class Make>
Child& child_for(std::map<LabelValues, std::unique_ptr<Child>>& children, const LabelValues& values,
                 Make make) {
  auto it = children.find(values);
  if (it == children.end()) it = children.emplace(values, make()).first;
  return *it->second;
}

}  // namespace

bool is_valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  auto head = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
  };
  if (!head(name[0])) return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [&](char c) { return head(c) || (c >= '0' && c <= '9'); });
}

bool is_valid_label_name(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") return false;
  auto head = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!head(name[0])) return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [&](char c) { return head(c) || (c >= '0' && c <= '9'); });
}

std::string format_metric_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Integral values print as integers: "1e+06" parses too, but counts read better exactly.
  if (v == std::trunc(v) && std::fabs(v) < 9.2e18) return std::to_string(int64_t(v));
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);  // shortest text that round-trips
  return std::string(buf, r.ptr);
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

double process_rss_bytes() { return double(current_rss_bytes()); }

// ---- children ----

void Counter::add_fraction(double v) {
  assert(v >= 0 && "counter increments must be non-negative");
  if (!(v >= 0)) return;  // also rejects NaN
  atomic_add(fraction_, v);
}

double Counter::value() const { return double(integer_part()) + fractional_part(); }

void Gauge::add(double v) { atomic_add(value_, v); }

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds->size() + 1]) {
  for (size_t i = 0; i <= bounds->size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double v) {
  const auto& b = *bounds_;
  // First bound >= v; NaN compares false everywhere, so route it to +Inf explicitly.
  size_t i = std::isnan(v) ? b.size() : size_t(std::lower_bound(b.begin(), b.end(), v) - b.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum_, v);
}

uint64_t Histogram::count() const {
  uint64_t n = 0;
  for (size_t i = 0; i <= bounds_->size(); ++i) n += bucket_count(i);
  return n;
}

// ---- families ----

MetricFamily::MetricFamily(std::string name, std::string help, MetricType type,
                           std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), type_(type),
      label_names_(std::move(label_names)) {
  assert(is_valid_metric_name(name_) && "invalid metric name");
  for ([[maybe_unused]] const auto& l : label_names_)
    assert(is_valid_label_name(l) && "invalid label name");
}

bool MetricFamily::check_arity(const LabelValues& values) const {
  bool ok = values.size() == label_names_.size();
  assert(ok && "labels(): wrong number of label values for this family");
  return ok;
}

static void append_header(std::string& out, const MetricFamily& f) {
  out += "# HELP ";
  out += f.name();
  out += ' ';
  out += escape_help(f.help());
  out += "\n# TYPE ";
  out += f.name();
  out += ' ';
  out += type_name(f.type());
  out += '\n';
}

CounterFamily::CounterFamily(std::string name, std::string help,
                             std::vector<std::string> label_names)
    : MetricFamily(std::move(name), std::move(help), MetricType::kCounter,
                   std::move(label_names)) {}

Counter& CounterFamily::labels(const LabelValues& values) {
  if (!check_arity(values)) return detached_;
  std::lock_guard<std::mutex> lock(mu_);
  return child_for(children_, values, [] { return std::make_unique<Counter>(); });
}

void CounterFamily::render(std::string& out) const {
  append_header(out, *this);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [values, c] : children_) {
    // Print the exact integer when there were no fractional increments (counts above 2^53).
    double frac = c->fractional_part();
    std::string v = frac == 0 ? std::to_string(c->integer_part()) : format_metric_value(c->value());
    append_sample(out, name_, label_names_, values, v);
  }
}

GaugeFamily::GaugeFamily(std::string name, std::string help, std::vector<std::string> label_names)
    : MetricFamily(std::move(name), std::move(help), MetricType::kGauge, std::move(label_names)) {}

Gauge& GaugeFamily::labels(const LabelValues& values) {
  if (!check_arity(values)) return detached_;
  std::lock_guard<std::mutex> lock(mu_);
  return child_for(children_, values, [] { return std::make_unique<Gauge>(); });
}

void GaugeFamily::set_callback(const LabelValues& values, std::function<double()> fn) {
  if (!check_arity(values)) return;
  std::lock_guard<std::mutex> lock(mu_);
  callbacks_[values] = std::move(fn);
}

void GaugeFamily::render(std::string& out) const {
  append_header(out, *this);
  // Snapshot under the lock, evaluate callbacks outside it: a callback may take its own locks
  // (the scheduler's queue) and must not be able to deadlock against labels() on another thread.
  std::map<LabelValues, double> values;
  std::vector<std::pair<LabelValues, std::function<double()>>> callbacks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [lv, g] : children_) values[lv] = g->value();
    callbacks.assign(callbacks_.begin(), callbacks_.end());
  }
  for (auto& [lv, fn] : callbacks) values[lv] = fn ? fn() : 0.0;
  for (const auto& [lv, v] : values) append_sample(out, name_, label_names_, lv, format_metric_value(v));
}

HistogramFamily::HistogramFamily(std::string name, std::string help, std::vector<double> bounds,
                                 std::vector<std::string> label_names)
    : MetricFamily(std::move(name), std::move(help), MetricType::kHistogram,
                   std::move(label_names)),
      bounds_(strip_inf(std::move(bounds))) {
  assert(valid_bounds(bounds_) && "histogram bounds must be finite and strictly increasing");
  for ([[maybe_unused]] const auto& l : label_names_)
    assert(l != "le" && "'le' is reserved for histogram buckets");
}

Histogram& HistogramFamily::labels(const LabelValues& values) {
  if (!check_arity(values)) return detached_;
  std::lock_guard<std::mutex> lock(mu_);
  return child_for(children_, values, [this] { return std::make_unique<Histogram>(&bounds_); });
}

void HistogramFamily::render(std::string& out) const {
  append_header(out, *this);
  std::vector<std::string> le_text;
  for (double b : bounds_) le_text.push_back(format_metric_value(b));
  le_text.push_back("+Inf");
  const std::string bucket_name = name_ + "_bucket";
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [values, h] : children_) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < le_text.size(); ++i) {
      cumulative += h->bucket_count(i);
      out += bucket_name;
      append_labels(out, label_names_, values, "le", le_text[i]);
      out += ' ';
      out += std::to_string(cumulative);
      out += '\n';
    }
    append_sample(out, name_ + "_sum", label_names_, values, format_metric_value(h->sum()));
    append_sample(out, name_ + "_count", label_names_, values, std::to_string(cumulative));
  }
}

// ---- registry ----

template <class F, class Make, class Same>
F& MetricsRegistry::get_or_add(const std::string& name, MetricType type, Make make, Same same) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) {
    auto f = make();
    F& ref = *f;
    families_.emplace(name, std::move(f));
    return ref;
  }
  MetricFamily* existing = it->second.get();
  bool ok = existing->type() == type && same(static_cast<const F&>(*existing));
  assert(ok && "metric re-registered with a different type, labels or buckets");
  if (ok) return static_cast<F&>(*existing);
  auto f = make();
  F& ref = *f;
  detached_.push_back(std::move(f));
  return ref;
}

CounterFamily& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                        const std::vector<std::string>& label_names) {
  return get_or_add<CounterFamily>(
      name, MetricType::kCounter,
      [&] { return std::make_unique<CounterFamily>(name, help, label_names); },
      [&](const CounterFamily& f) { return f.label_names() == label_names; });
}

GaugeFamily& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                                    const std::vector<std::string>& label_names) {
  return get_or_add<GaugeFamily>(
      name, MetricType::kGauge,
      [&] { return std::make_unique<GaugeFamily>(name, help, label_names); },
      [&](const GaugeFamily& f) { return f.label_names() == label_names; });
}

HistogramFamily& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                            const std::vector<double>& bounds,
                                            const std::vector<std::string>& label_names) {
  return get_or_add<HistogramFamily>(
      name, MetricType::kHistogram,
      [&] { return std::make_unique<HistogramFamily>(name, help, bounds, label_names); },
      [&](const HistogramFamily& f) {
        return f.label_names() == label_names && f.bounds() == strip_inf(bounds);
      });
}

void MetricsRegistry::callback_gauge(const std::string& name, const std::string& help,
                                     std::function<double()> fn) {
  gauge(name, help).set_callback({}, std::move(fn));
}

std::string MetricsRegistry::render() const {
  std::vector<const MetricFamily*> families;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, f] : families_) families.push_back(f.get());
  }
  // Families are never removed, so rendering them without the registry lock is safe and lets a
  // callback register a metric without deadlocking.
  std::string out;
  for (const MetricFamily* f : families) f->render(out);
  return out;
}

}  // namespace edgeglm::serve
