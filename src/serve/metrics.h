// A small thread-safe Prometheus metrics registry rendered in the text exposition format 0.0.4.
//
// Families (counter, gauge, histogram) are registered once with a name, help text and a fixed list
// of label names; children are addressed by label values and returned by reference. A child never
// moves or dies while its registry lives, so hot paths look it up once and keep the reference:
//
//   auto& requests = registry.counter("edgeglm_requests_total", "Requests by status.",
//                                     {"status", "priority"});
//   Counter& ok_interactive = requests.labels({"200", "interactive"});  // once, at start-up
//   ok_interactive.inc();                                                 // per request: one atomic
//
// Updates are lock-free atomics; only creating a child or registering a family takes a mutex.
//
// Programming errors are asserted, not returned: an invalid metric/label name, re-registering a
// name with a different type, label names or buckets, non-increasing histogram bounds, and calling
// labels() with the wrong number of values. These depend on code, not on input, so a test run
// finds them. In a release build (asserts off) they stay harmless: labels() with the wrong count
// returns a detached child that is never rendered, and a conflicting registration returns a
// detached family, so the exposition text stays parseable.
//
// Label values may come from input (they are escaped), but each distinct value set is a child
// that lives forever: use labels only for small closed sets (status codes, priority classes).
#pragma once
#include <atomic>
#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace edgeglm::serve {

using LabelValues = std::vector<std::string>;

// The HTTP Content-Type of render()'s output.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType { kCounter, kGauge, kHistogram };

// A monotonic counter. Integer increments are kept in a uint64 so counts stay exact past 2^53;
// fractional increments (seconds, joules) go to a separate double; the value is their sum.
class Counter {
 public:
  Counter() = default;
  void inc() { ints_.fetch_add(1, std::memory_order_relaxed); }
  template <std::integral T>
  void inc(T n) {
    if (n > 0) ints_.fetch_add(uint64_t(n), std::memory_order_relaxed);
  }
  // Negative or NaN increments would break monotonicity: asserted, ignored in release builds.
  template <std::floating_point T>
  void inc(T v) {
    add_fraction(double(v));
  }
  double value() const;
  uint64_t integer_part() const { return ints_.load(std::memory_order_relaxed); }
  double fractional_part() const { return fraction_.load(std::memory_order_relaxed); }

 private:
  void add_fraction(double v);
  std::atomic<uint64_t> ints_{0};
  std::atomic<double> fraction_{0.0};
};

class Gauge {
 public:
  Gauge() = default;
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double v);
  void inc() { add(1.0); }
  void dec() { add(-1.0); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Observations are counted in per-bucket (non-cumulative) atomics; render() makes them cumulative
// and derives _count from the bucket total, so `le="+Inf"` always equals `_count` in one render.
class Histogram {
 public:
  // `bounds`: finite, strictly increasing upper bounds (+Inf is implicit); owned by the family.
  explicit Histogram(const std::vector<double>* bounds);
  // v <= bound goes to that bound's bucket (Prometheus `le` semantics); NaN counts only in +Inf.
  void observe(double v);
  uint64_t count() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  // Non-cumulative count of bucket i; i == bounds().size() is the +Inf bucket.
  uint64_t bucket_count(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  const std::vector<double>& bounds() const { return *bounds_; }

 private:
  const std::vector<double>* bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // (bounds.size() + 1)
  std::atomic<double> sum_{0.0};
};

class MetricFamily {
 public:
  virtual ~MetricFamily() = default;
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Appends "# HELP", "# TYPE" and the samples, children sorted by label values.
  virtual void render(std::string& out) const = 0;

 protected:
  MetricFamily(std::string name, std::string help, MetricType type,
               std::vector<std::string> label_names);
  bool check_arity(const LabelValues& values) const;

  std::string name_;
  std::string help_;
  MetricType type_;
  std::vector<std::string> label_names_;
  mutable std::mutex mu_;  // guards the child maps, not the children's values
};

class CounterFamily : public MetricFamily {
 public:
  CounterFamily(std::string name, std::string help, std::vector<std::string> label_names);
  Counter& labels(const LabelValues& values);
  Counter& get() { return labels({}); }  // the child of a family without labels
  void render(std::string& out) const override;

 private:
  std::map<LabelValues, std::unique_ptr<Counter>> children_;
  Counter detached_;  // returned on a label-count mismatch; never rendered
};

// Gauges are either set by the program or computed at render time by a callback (process RSS,
// queue depth). A callback replaces the set value of the same label values.
class GaugeFamily : public MetricFamily {
 public:
  GaugeFamily(std::string name, std::string help, std::vector<std::string> label_names);
  Gauge& labels(const LabelValues& values);
  Gauge& get() { return labels({}); }
  // `fn` runs on the thread calling render(), without any registry lock held; it must be
  // thread-safe and cheap.
  void set_callback(const LabelValues& values, std::function<double()> fn);
  void render(std::string& out) const override;

 private:
  std::map<LabelValues, std::unique_ptr<Gauge>> children_;
  std::map<LabelValues, std::function<double()>> callbacks_;
  Gauge detached_;
};

class HistogramFamily : public MetricFamily {
 public:
  HistogramFamily(std::string name, std::string help, std::vector<double> bounds,
                  std::vector<std::string> label_names);
  Histogram& labels(const LabelValues& values);
  Histogram& get() { return labels({}); }
  const std::vector<double>& bounds() const { return bounds_; }
  void render(std::string& out) const override;

 private:
  std::vector<double> bounds_;  // finite, strictly increasing; +Inf implicit
  std::map<LabelValues, std::unique_ptr<Histogram>> children_;
  Histogram detached_{&bounds_};
};

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Registering an existing name with the same type and labels (and buckets) returns the
  // existing family, so independent components may declare the metrics they share.
  CounterFamily& counter(const std::string& name, const std::string& help,
                         const std::vector<std::string>& label_names = {});
  GaugeFamily& gauge(const std::string& name, const std::string& help,
                     const std::vector<std::string>& label_names = {});
  HistogramFamily& histogram(const std::string& name, const std::string& help,
                             const std::vector<double>& bounds,
                             const std::vector<std::string>& label_names = {});
  // An unlabelled gauge whose value is fn() at render time.
  void callback_gauge(const std::string& name, const std::string& help, std::function<double()> fn);

  // The exposition text: families sorted by name, each with # HELP and # TYPE.
  std::string render() const;

 private:
  // Defined and used only in metrics.cpp.
  template <class F, class Make, class Same>
  F& get_or_add(const std::string& name, MetricType type, Make make, Same same);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<MetricFamily>> families_;
  std::vector<std::unique_ptr<MetricFamily>> detached_;  // conflicting registrations; not rendered
};

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool is_valid_metric_name(std::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved by Prometheus).
bool is_valid_label_name(std::string_view name);
// Prometheus sample value spelling: integers without exponent, shortest round-trip otherwise,
// "+Inf", "-Inf", "NaN".
std::string format_metric_value(double v);
// Escapes backslash, double quote and newline for a label value.
std::string escape_label_value(std::string_view v);

// Resident set size of this process in bytes (0 if /proc is unavailable).
double process_rss_bytes();

}  // namespace edgeglm::serve
