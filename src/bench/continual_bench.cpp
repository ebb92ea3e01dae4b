// The continual-learning benchmark: tasks of each protocol, the training of each method, and
// evaluation after every task. Metrics and output formats are in continual_bench_report.cpp.
#include <algorithm>
#include <chrono>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>

#include "retain/continual_bench.h"
#include "retain/errors.h"
#include "retain/ewc.h"
#include "retain/mlp.h"
#include "retain/model.h"
#include "retain/reservoir.h"

namespace retain {

const char* protocol_name(Protocol p) {
  switch (p) {
    case Protocol::kPermuted: return "permuted";
    case Protocol::kSplitTask: return "split-task";
    case Protocol::kSplitClass: return "split-class";
  }
  return "?";
}

Protocol parse_protocol(const std::string& name) {
  for (auto p : {Protocol::kPermuted, Protocol::kSplitTask, Protocol::kSplitClass})
    if (name == protocol_name(p)) return p;
  throw ConfigError("unknown protocol \"" + name + "\"; expected permuted, split-task or split-class");
}

const char* method_name(Method m) {
  switch (m) {
    case Method::kNaive: return "naive";
    case Method::kReplay: return "replay";
    case Method::kEwc: return "ewc";
    case Method::kOnlineEwc: return "online-ewc";
    case Method::kJoint: return "joint";
  }
  return "?";
}

std::vector<Method> parse_methods(const std::string& csv) {
  std::vector<Method> out;
  std::stringstream in(csv);
  std::string name;
  while (std::getline(in, name, ',')) {
    bool found = false;
    for (auto m : {Method::kNaive, Method::kReplay, Method::kEwc, Method::kOnlineEwc, Method::kJoint})
      if (name == method_name(m)) {
        if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
        found = true;
      }
    if (!found)
      throw ConfigError("unknown method \"" + name + "\"; expected naive, replay, ewc, online-ewc or joint");
  }
  if (out.empty()) throw ConfigError("--methods lists no method");
  return out;
}

double default_ewc_lambda(Protocol p) { return p == Protocol::kPermuted ? 100.0 : 10000.0; }

double ContinualBenchConfig::lambda() const { return ewc_lambda < 0 ? default_ewc_lambda(protocol) : ewc_lambda; }

void ContinualBenchConfig::validate() const {
  auto require = [](bool ok, const std::string& what) {
    if (!ok) throw ConfigError(what);
  };
  require(tasks >= 1, "--tasks must be ≥ 1");
  require(protocol == Protocol::kPermuted || tasks <= 5, "the split protocols have at most 5 tasks (two classes each)");
  require(iters_per_task >= 1, "--iters-per-task must be ≥ 1");
  require(seeds >= 1, "--seeds must be ≥ 1");
  require(batch_size >= 2, "the batch size must be ≥ 2 (half of it is replayed)");
  require(lr > 0, "the learning rate must be > 0");
  require(replay_capacity >= 1, "the replay buffer must hold ≥ 1 example");
  require(fisher_samples >= 1, "the Fisher needs ≥ 1 example");
  require(ewc_gamma >= 0, "--gamma must be ≥ 0");
  require(train_per_task >= 0 && test_per_task >= 0, "the per-task subset sizes must be ≥ 0");
  require(!methods.empty(), "no method to run");
}

namespace {

constexpr int64_t kNumClasses = 10;
constexpr uint64_t kSubsetSeed = 20190415;  // the data subsets do not change with the run seed

// An example of a task: its row in the base data set and its task.
struct Ref {
  int64_t row, task;
};

// The tasks of one run: which rows each task holds, and how its inputs and outputs are shaped.
struct Tasks {
  const FeatureSet* train;
  const FeatureSet* test;
  std::vector<std::vector<int64_t>> train_rows, test_rows;
  torch::Tensor perms;    // (T, D) int64 pixel permutations (permuted), else undefined
  torch::Tensor allowed;  // (T, C) bool outputs of each task (split-task), else undefined

  // x (B, D), y (B), allowed (B, C) or undefined, for examples of `set`.
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> batch(const FeatureSet& set,
                                                                const std::vector<Ref>& refs) const {
    std::vector<int64_t> rows, task_ids;
    for (const auto& r : refs) {
      rows.push_back(r.row);
      task_ids.push_back(r.task);
    }
    const auto row = torch::tensor(rows, torch::kLong), task = torch::tensor(task_ids, torch::kLong);
    auto x = set.x.index_select(0, row);
    if (perms.defined()) x = x.gather(1, perms.index_select(0, task));
    return {x, set.y.index_select(0, row), allowed.defined() ? allowed.index_select(0, task) : torch::Tensor()};
  }
};

std::vector<int64_t> subset(std::vector<int64_t> rows, int64_t n, uint64_t seed) {
  if (n <= 0 || n >= int64_t(rows.size())) return rows;
  std::mt19937_64 rng(seed);
  std::shuffle(rows.begin(), rows.end(), rng);
  rows.resize(n);
  std::sort(rows.begin(), rows.end());
  return rows;
}

std::vector<int64_t> rows_of_classes(const FeatureSet& set, const std::vector<int64_t>& classes) {
  auto keep = torch::zeros_like(set.y, torch::kBool);
  for (int64_t c : classes) keep.logical_or_(set.y == c);
  const auto idx = keep.nonzero().view({-1}).contiguous();
  return std::vector<int64_t>(idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + idx.numel());
}

Tasks make_tasks(const ContinualBenchConfig& c, const FeatureSet& train, const FeatureSet& test, uint64_t seed) {
  Tasks t{&train, &test, {}, {}, {}, {}};
  const int64_t D = train.num_features();
  if (c.protocol == Protocol::kPermuted) {
    std::vector<torch::Tensor> perms;
    std::mt19937_64 rng(seed * 7919 + 17);
    for (int64_t k = 0; k < c.tasks; ++k) {
      std::vector<int64_t> p(D);
      std::iota(p.begin(), p.end(), 0);
      if (k > 0) std::shuffle(p.begin(), p.end(), rng);
      perms.push_back(torch::tensor(p, torch::kLong));
      std::vector<int64_t> all_train(train.size()), all_test(test.size());
      std::iota(all_train.begin(), all_train.end(), 0);
      std::iota(all_test.begin(), all_test.end(), 0);
      t.train_rows.push_back(subset(all_train, c.train_per_task, kSubsetSeed + k));
      t.test_rows.push_back(subset(all_test, c.test_per_task, kSubsetSeed + 100 + k));
    }
    t.perms = torch::stack(perms);
    return t;
  }
  if (c.protocol == Protocol::kSplitTask) t.allowed = torch::zeros({c.tasks, kNumClasses}, torch::kBool);
  for (int64_t k = 0; k < c.tasks; ++k) {
    const std::vector<int64_t> classes = {2 * k, 2 * k + 1};
    t.train_rows.push_back(subset(rows_of_classes(train, classes), c.train_per_task, kSubsetSeed + k));
    t.test_rows.push_back(subset(rows_of_classes(test, classes), c.test_per_task, kSubsetSeed + 100 + k));
    if (t.allowed.defined()) t.allowed.index_put_({k, torch::indexing::Slice(2 * k, 2 * k + 2)}, true);
  }
  return t;
}

// An endless shuffled stream over a pool of examples (shuffled before every pass, the first too).
class Stream {
 public:
  Stream(std::vector<Ref> pool, uint64_t seed) : pool_(std::move(pool)), rng_(seed), pos_(pool_.size()) {}
  void next(int64_t n, std::vector<Ref>& out) {
    for (int64_t i = 0; i < n; ++i) {
      if (pos_ == pool_.size()) {
        std::shuffle(pool_.begin(), pool_.end(), rng_);
        pos_ = 0;
      }
      out.push_back(pool_[pos_++]);
    }
  }

 private:
  std::vector<Ref> pool_;
  std::mt19937_64 rng_;
  size_t pos_;
};

std::vector<Ref> refs_of(const std::vector<std::vector<int64_t>>& rows, int64_t first, int64_t last) {
  std::vector<Ref> out;
  for (int64_t k = first; k <= last; ++k)
    for (int64_t r : rows[k]) out.push_back({r, k});
  return out;
}

double accuracy(MlpClassifier& model, const Tasks& tasks, int64_t task) {
  torch::NoGradGuard no_grad;
  const auto refs = refs_of(tasks.test_rows, task, task);
  int64_t correct = 0;
  for (size_t s = 0; s < refs.size(); s += 1000) {
    const std::vector<Ref> chunk(refs.begin() + s, refs.begin() + std::min(refs.size(), s + 1000));
    auto [x, y, allowed] = tasks.batch(*tasks.test, chunk);
    auto pred = mask_logits(model->forward(x), allowed).argmax(1);
    correct += pred.eq(y).sum().item<int64_t>();
  }
  return refs.empty() ? 0.0 : double(correct) / double(refs.size());
}

// Empirical Fisher of the model on `fisher_samples` examples of task k, and the EWC state
// anchored at the current weights (F ← γ·F_prev + F_new when `previous` is given).
EwcState task_ewc_state(MlpClassifier& model, const Tasks& tasks, int64_t k, const ContinualBenchConfig& c,
                        uint64_t seed, const EwcState* previous) {
  auto refs = refs_of(tasks.train_rows, k, k);
  std::mt19937_64 rng(seed + 31 * k);
  std::shuffle(refs.begin(), refs.end(), rng);
  refs.resize(std::min<size_t>(refs.size(), c.fisher_samples));
  auto [x, y, allowed] = tasks.batch(*tasks.train, refs);
  FisherOptions options;
  options.num_samples = 0;  // all of the drawn examples
  options.batch_size = 256;
  options.path = FisherOptions::Path::kBatched;
  const auto fisher = estimate_mlp_fisher(model, x, y, options, allowed);
  return consolidate(previous, fisher, parameter_tensors(*model), previous ? c.ewc_gamma : 1.0);
}

MethodRun run_method(const ContinualBenchConfig& c, Method method, const FeatureSet& train, const FeatureSet& test,
                     uint64_t seed) {
  const auto start = std::chrono::steady_clock::now();
  const Tasks tasks = make_tasks(c, train, test, seed);
  torch::manual_seed(seed);
  MlpConfig mc;
  mc.input_size = train.num_features();
  mc.hidden_sizes = c.hidden_sizes;
  mc.num_classes = kNumClasses;
  MlpClassifier model(mc);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(c.lr));
  Reservoir<Ref> reservoir(c.replay_capacity, seed * 104729 + 3);
  std::vector<EwcState> states;               // ewc: one per earlier task; online-ewc: one
  std::vector<std::unique_ptr<EwcPenalty>> penalties;
  const double lambda = c.lambda();

  MethodRun run;
  run.seed = seed;
  for (int64_t k = 0; k < c.tasks; ++k) {
    Stream stream(refs_of(tasks.train_rows, method == Method::kJoint ? 0 : k, k), seed * 1000003 + k);
    model->train();
    for (int64_t it = 0; it < c.iters_per_task; ++it) {
      std::vector<Ref> refs;
      const bool replaying = method == Method::kReplay && reservoir.size() > 0;
      stream.next(replaying ? c.batch_size - c.batch_size / 2 : c.batch_size, refs);
      if (method == Method::kReplay) {
        const std::vector<Ref> fresh(refs);
        if (replaying) for (const auto& r : reservoir.draw(c.batch_size / 2)) refs.push_back(r);
        for (const auto& r : fresh) reservoir.offer(r);
      }
      auto [x, y, allowed] = tasks.batch(train, refs);
      optimizer.zero_grad();
      classifier_losses(model->forward(x), y, allowed).mean().backward();
      for (const auto& p : penalties) p->add_gradient();  // λ·F·(θ − θ*) per penalty
      optimizer.step();
    }
    if (method == Method::kEwc || method == Method::kOnlineEwc) {
      const bool online = method == Method::kOnlineEwc;
      auto state = task_ewc_state(model, tasks, k, c, seed, online && !states.empty() ? &states.back() : nullptr);
      if (online) states.clear(), penalties.clear();
      states.push_back(std::move(state));
      penalties.push_back(std::make_unique<EwcPenalty>(*model, states.back(), lambda));
    }
    model->eval();
    std::vector<double> row;
    for (int64_t j = 0; j < c.tasks; ++j) row.push_back(accuracy(model, tasks, j));
    run.accuracy.push_back(std::move(row));
  }
  run.metrics = continual_metrics(run.accuracy);
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return run;
}

}  // namespace

ContinualBenchResult run_continual_bench(const ContinualBenchConfig& config, const FeatureSet& train,
                                         const FeatureSet& test,
                                         const std::function<void(const std::string&)>& progress) {
  config.validate();
  if (train.size() == 0 || test.size() == 0) throw DataError("the benchmark needs training and test examples");
  if (train.num_features() != test.num_features())
    throw DataError("training and test examples have different feature counts");
  const auto start = std::chrono::steady_clock::now();
  ContinualBenchResult result;
  result.config = config;
  for (const Method m : config.methods) {
    std::vector<MethodRun> runs;
    for (int64_t s = 0; s < config.seeds; ++s) {
      runs.push_back(run_method(config, m, train, test, config.first_seed + s));
      if (progress) {
        std::ostringstream line;
        line.precision(4);
        line << method_name(m) << " seed " << runs.back().seed << ": final average accuracy "
             << runs.back().metrics.final_accuracy << " (" << runs.back().seconds << " s)";
        progress(line.str());
      }
    }
    result.methods.push_back(summarize(m, std::move(runs)));
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace retain
