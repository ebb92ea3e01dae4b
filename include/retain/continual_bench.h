// `retain bench continual`: the standard continual-learning benchmark on Fashion-MNIST with the
// `mlp` family (docs/continual-bench.md has the protocols, the methods and the metrics).
//
// Protocols (van de Ven & Tolias 2019; Hsu et al. 2018): permuted — every task a fixed pixel
// permutation (task 1 the identity) of all ten classes, one head; split-task — task t holds
// classes {2t, 2t+1} and only those outputs count (training and evaluation); split-class — the
// same tasks with a single head over all classes. Methods: naive (fine-tune on each task in turn),
// replay (a Reservoir of examples, half of every batch replayed), ewc (one penalty per earlier
// task), online-ewc (one consolidated penalty, F ← γF + F_new), joint (every task so far).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "retain/features.h"

namespace retain {

enum class Protocol { kPermuted, kSplitTask, kSplitClass };
enum class Method { kNaive, kReplay, kEwc, kOnlineEwc, kJoint };

// "permuted" | "split-task" | "split-class"; "naive" | "replay" | "ewc" | "online-ewc" | "joint".
// The parsers throw ConfigError on anything else; parse_methods takes a comma-separated list.
const char* protocol_name(Protocol p);
Protocol parse_protocol(const std::string& name);
const char* method_name(Method m);
std::vector<Method> parse_methods(const std::string& csv);

// The λ used when none is given (chosen on short runs, docs/continual-bench.md): permuted 100,
// split-task 10,000, split-class 10,000.
double default_ewc_lambda(Protocol p);

struct ContinualBenchConfig {
  Protocol protocol = Protocol::kPermuted;
  std::vector<Method> methods = {Method::kNaive, Method::kReplay, Method::kEwc, Method::kOnlineEwc, Method::kJoint};
  int64_t tasks = 5;              // permuted: ≥ 1; split: 1..5 (ten classes, two a task)
  int64_t iters_per_task = 1000;  // optimizer steps per task
  int64_t seeds = 3;              // runs with seeds first_seed, first_seed + 1, …
  uint64_t first_seed = 1;
  double ewc_lambda = -1;         // < 0: default_ewc_lambda(protocol)
  double ewc_gamma = 1.0;         // online EWC's decay
  int64_t batch_size = 128;
  double lr = 1e-3;               // Adam, one optimizer for the whole sequence
  int64_t replay_capacity = 1000;
  int64_t fisher_samples = 1000;  // examples of each task for its empirical Fisher
  std::vector<int64_t> hidden_sizes = {400, 400};
  int64_t train_per_task = 0;     // 0: every training example of a task; else this many (fixed subset)
  int64_t test_per_task = 0;      // 0: every test example of a task; else this many
  // Throws ConfigError naming the setting that is out of range.
  void validate() const;
  double lambda() const;  // ewc_lambda, or the protocol's default
};

// acc[i][j]: accuracy on task j's test set after training on tasks 1..i+1 (every j, seen or not).
using AccuracyMatrix = std::vector<std::vector<double>>;

// With T tasks and a = acc (0-based): average_after[i] = mean_{j≤i} a[i][j]; final_accuracy =
// average_after[T−1]; over the earlier tasks j < T−1 (all 0 when T = 1):
// forgetting_max = mean_j (max_{j≤l<T−1} a[l][j] − a[T−1][j]) (Chaudhry et al. 2018),
// forgetting_last = mean_j (a[j][j] − a[T−1][j]) (accuracy when the task was last the one trained),
// backward_transfer = mean_j (a[T−1][j] − a[j][j]) (Lopez-Paz & Ranzato 2017; = −forgetting_last).
struct ContinualMetrics {
  std::vector<double> average_after;
  double final_accuracy = 0, forgetting_max = 0, forgetting_last = 0, backward_transfer = 0;
};
// Throws ConfigError when the matrix is empty or not square.
ContinualMetrics continual_metrics(const AccuracyMatrix& acc);

struct MeanStd {
  double mean = 0, std = 0;  // std: sample standard deviation (n − 1), 0 for one value
};
MeanStd mean_std(const std::vector<double>& values);

struct MethodRun {
  uint64_t seed = 0;
  AccuracyMatrix accuracy;
  ContinualMetrics metrics;
  double seconds = 0;  // training, Fisher and evaluation of this run
};

struct MethodSummary {
  Method method = Method::kNaive;
  std::vector<MethodRun> runs;
  AccuracyMatrix accuracy_mean, accuracy_std;
  std::vector<MeanStd> average_after;
  MeanStd final_accuracy, forgetting_max, forgetting_last, backward_transfer, seconds;
};

struct ContinualBenchResult {
  ContinualBenchConfig config;
  std::vector<MethodSummary> methods;
  double seconds = 0;  // the whole benchmark
  nlohmann::json to_json() const;
};

// Summarises the runs of one method (mean ± std over its runs).
MethodSummary summarize(Method method, std::vector<MethodRun> runs);

// Runs every method with every seed on train / test (e.g. load_mnist_split of Fashion-MNIST;
// inputs in [0, 1], labels 0..9). `progress` receives one line per finished run.
ContinualBenchResult run_continual_bench(const ContinualBenchConfig& config, const FeatureSet& train,
                                         const FeatureSet& test,
                                         const std::function<void(const std::string&)>& progress = {});

// The summary table, the average accuracy after each task and each method's accuracy matrix.
std::string format_continual_report(const ContinualBenchResult& result);

// A self-contained SVG line chart: average accuracy after each task, one line per method, with
// axes, ticks, a title and a legend.
std::string continual_svg(const ContinualBenchResult& result);

}  // namespace retain
