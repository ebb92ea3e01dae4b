// The continual benchmark's metrics (definitions in continual_bench.h and
// docs/continual-bench.md), mean ± std over seeds, and its outputs: text table, JSON, SVG chart.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "retain/continual_bench.h"
#include "retain/errors.h"

namespace retain {

ContinualMetrics continual_metrics(const AccuracyMatrix& acc) {
  const size_t T = acc.size();
  if (T == 0) throw ConfigError("an accuracy matrix needs at least one row");
  for (const auto& row : acc)
    if (row.size() != T) throw ConfigError("an accuracy matrix must be square (one column per task)");
  ContinualMetrics m;
  for (size_t i = 0; i < T; ++i) {
    double sum = 0;
    for (size_t j = 0; j <= i; ++j) sum += acc[i][j];
    m.average_after.push_back(sum / double(i + 1));
  }
  m.final_accuracy = m.average_after.back();
  if (T == 1) return m;
  for (size_t j = 0; j + 1 < T; ++j) {
    double best = acc[j][j];
    for (size_t l = j; l + 1 < T; ++l) best = std::max(best, acc[l][j]);
    m.forgetting_max += best - acc[T - 1][j];              // Chaudhry et al. 2018
    m.forgetting_last += acc[j][j] - acc[T - 1][j];        // accuracy when last trained − final
    m.backward_transfer += acc[T - 1][j] - acc[j][j];      // Lopez-Paz & Ranzato 2017
  }
  const double n = double(T - 1);
  m.forgetting_max /= n;
  m.forgetting_last /= n;
  m.backward_transfer /= n;
  return m;
}

MeanStd mean_std(const std::vector<double>& values) {
  MeanStd out;
  if (values.empty()) return out;
  for (double v : values) out.mean += v;
  out.mean /= double(values.size());
  if (values.size() < 2) return out;
  double ss = 0;
  for (double v : values) ss += (v - out.mean) * (v - out.mean);
  out.std = std::sqrt(ss / double(values.size() - 1));
  return out;
}

MethodSummary summarize(Method method, std::vector<MethodRun> runs) {
  MethodSummary s;
  s.method = method;
  s.runs = std::move(runs);
  if (s.runs.empty()) return s;
  auto over_runs = [&](auto get) {
    std::vector<double> v;
    for (const auto& r : s.runs) v.push_back(get(r));
    return mean_std(v);
  };
  const size_t T = s.runs.front().accuracy.size();
  s.accuracy_mean.assign(T, std::vector<double>(T));
  s.accuracy_std = s.accuracy_mean;
  for (size_t i = 0; i < T; ++i) {
    for (size_t j = 0; j < T; ++j) {
      const auto ms = over_runs([&](const MethodRun& r) { return r.accuracy[i][j]; });
      s.accuracy_mean[i][j] = ms.mean;
      s.accuracy_std[i][j] = ms.std;
    }
    s.average_after.push_back(over_runs([&](const MethodRun& r) { return r.metrics.average_after[i]; }));
  }
  s.final_accuracy = over_runs([](const MethodRun& r) { return r.metrics.final_accuracy; });
  s.forgetting_max = over_runs([](const MethodRun& r) { return r.metrics.forgetting_max; });
  s.forgetting_last = over_runs([](const MethodRun& r) { return r.metrics.forgetting_last; });
  s.backward_transfer = over_runs([](const MethodRun& r) { return r.metrics.backward_transfer; });
  s.seconds = over_runs([](const MethodRun& r) { return r.seconds; });
  return s;
}

namespace {

nlohmann::json ms_json(const MeanStd& v) { return {{"mean", v.mean}, {"std", v.std}}; }

std::string pm(const MeanStd& v, int precision = 3) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f ± %.*f", precision, v.mean, precision, v.std);
  return text;
}

}  // namespace

nlohmann::json ContinualBenchResult::to_json() const {
  const auto& c = config;
  nlohmann::json out = {{"protocol", protocol_name(c.protocol)},
                        {"tasks", c.tasks},
                        {"iters_per_task", c.iters_per_task},
                        {"seeds", c.seeds},
                        {"first_seed", c.first_seed},
                        {"ewc_lambda", c.lambda()},
                        {"ewc_gamma", c.ewc_gamma},
                        {"batch_size", c.batch_size},
                        {"lr", c.lr},
                        {"replay_capacity", c.replay_capacity},
                        {"fisher_samples", c.fisher_samples},
                        {"hidden_sizes", c.hidden_sizes},
                        {"train_per_task", c.train_per_task},
                        {"test_per_task", c.test_per_task},
                        {"seconds", seconds},
                        {"methods", nlohmann::json::array()}};
  for (const auto& m : methods) {
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& r : m.runs)
      runs.push_back({{"seed", r.seed},
                      {"accuracy", r.accuracy},
                      {"average_after", r.metrics.average_after},
                      {"final_accuracy", r.metrics.final_accuracy},
                      {"forgetting_max", r.metrics.forgetting_max},
                      {"forgetting_last", r.metrics.forgetting_last},
                      {"backward_transfer", r.metrics.backward_transfer},
                      {"seconds", r.seconds}});
    nlohmann::json after = nlohmann::json::array();
    for (const auto& v : m.average_after) after.push_back(ms_json(v));
    out["methods"].push_back({{"method", method_name(m.method)},
                              {"final_accuracy", ms_json(m.final_accuracy)},
                              {"forgetting_max", ms_json(m.forgetting_max)},
                              {"forgetting_last", ms_json(m.forgetting_last)},
                              {"backward_transfer", ms_json(m.backward_transfer)},
                              {"seconds", ms_json(m.seconds)},
                              {"average_after", after},
                              {"accuracy_mean", m.accuracy_mean},
                              {"accuracy_std", m.accuracy_std},
                              {"runs", runs}});
  }
  return out;
}

std::string format_continual_report(const ContinualBenchResult& result) {
  const auto& c = result.config;
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof line,
                "continual benchmark: %s, %ld tasks × %ld iterations, batch %ld, %ld seed(s), λ = %g, γ = %g\n",
                protocol_name(c.protocol), long(c.tasks), long(c.iters_per_task), long(c.batch_size),
                long(c.seeds), c.lambda(), c.ewc_gamma);
  out << line;
  std::snprintf(line, sizeof line, "%-11s  %-15s  %-15s  %-15s  %-16s  %s\n", "method", "final avg acc",
                "forgetting max", "forgetting last", "BWT", "time (s)");
  out << line;
  for (const auto& m : result.methods) {
    std::snprintf(line, sizeof line, "%-11s  %-15s  %-15s  %-15s  %-16s  %s\n", method_name(m.method),
                  pm(m.final_accuracy).c_str(), pm(m.forgetting_max).c_str(), pm(m.forgetting_last).c_str(),
                  pm(m.backward_transfer).c_str(), pm(m.seconds, 1).c_str());
    out << line;
  }
  out << "\naverage accuracy after each task (mean over seeds):\n" << std::string(11, ' ');
  for (int64_t i = 0; i < c.tasks; ++i) out << "  task " << (i + 1);
  out << "\n";
  for (const auto& m : result.methods) {
    std::snprintf(line, sizeof line, "%-11s", method_name(m.method));
    out << line;
    for (const auto& v : m.average_after) {
      std::snprintf(line, sizeof line, "  %6.3f", v.mean);
      out << line;
    }
    out << "\n";
  }
  for (const auto& m : result.methods) {
    out << "\n" << method_name(m.method) << ": accuracy on task j (columns) after task i (rows), mean over seeds\n";
    for (size_t i = 0; i < m.accuracy_mean.size(); ++i) {
      std::snprintf(line, sizeof line, "  after %-3zu", i + 1);
      out << line;
      for (double a : m.accuracy_mean[i]) {
        std::snprintf(line, sizeof line, " %6.3f", a);
        out << line;
      }
      out << "\n";
    }
  }
  std::snprintf(line, sizeof line, "\ntotal %.1f s\n", result.seconds);
  out << line;
  return out.str();
}

}  // namespace retain
