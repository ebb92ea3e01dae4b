// Flags and library calls of `retain bench continual` (see bench_commands.h).
#include "bench_commands.h"

#include <cstdio>
#include <iostream>
#include <sstream>

#include <torch/torch.h>

#include "retain/continual_bench.h"
#include "retain/errors.h"
#include "retain/features.h"
#include "retain/fileio.h"
#include "retain/log.h"
#include "retain/trainer.h"

namespace retain::cli {

namespace {

std::vector<int64_t> parse_sizes(const std::string& csv) {
  std::vector<int64_t> out;
  std::stringstream in(csv);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (used != item.size() || v <= 0) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (const std::logic_error&) {
      throw ConfigError("--hidden: \"" + item + "\" is not a positive integer");
    }
  }
  if (out.empty()) throw ConfigError("--hidden needs at least one layer size");
  return out;
}

}  // namespace

BenchCommands::BenchCommands(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "benchmarks that print figures");
  bench->require_subcommand(1);
  continual_ = bench->add_subcommand(
      "continual", "continual-learning benchmark on Fashion-MNIST: naive, replay, EWC, online EWC, joint");
  auto* c = continual_;
  c->add_option("--protocol", protocol_, "permuted | split-task | split-class")->capture_default_str();
  c->add_option("--methods", methods_, "comma-separated: naive, replay, ewc, online-ewc, joint")
      ->capture_default_str();
  c->add_option("--tasks", tasks_, "number of tasks (split protocols: at most 5)")->capture_default_str();
  c->add_option("--iters-per-task", iters_, "Adam steps per task")->capture_default_str();
  c->add_option("--seeds", seeds_, "runs per method (seeds --seed, --seed + 1, …)")->capture_default_str();
  c->add_option("--seed", first_seed_, "first seed")->capture_default_str();
  c->add_option("--lambda", lambda_, "EWC λ (λ/2 Σ F (θ − θ*)²); default: permuted 100, split 10000");
  c->add_option("--gamma", gamma_, "online EWC decay γ (F ← γ F + F_new)")->capture_default_str();
  c->add_option("--lr", lr_, "Adam learning rate")->capture_default_str();
  c->add_option("--batch-size", batch_size_, "examples per step (replay: half of them replayed)")
      ->capture_default_str();
  c->add_option("--buffer-size", replay_capacity_, "replay reservoir capacity")->capture_default_str();
  c->add_option("--fisher-samples", fisher_samples_, "examples per task for the EWC Fisher")->capture_default_str();
  c->add_option("--hidden", hidden_, "hidden layer sizes, comma-separated")->capture_default_str();
  c->add_option("--train-per-task", train_per_task_, "training examples per task; 0 = all")->capture_default_str();
  c->add_option("--test-per-task", test_per_task_, "test examples per task; 0 = all")->capture_default_str();
  c->add_option("--data-dir", data_dir_, std::string("Fashion-MNIST IDX folder (default ") + kFashionMnistDir + ")");
  c->add_option("--threads", threads_, "torch threads; 0 = LibTorch's default")->capture_default_str();
  c->add_flag("--json", json_, "print the results as JSON instead of tables");
  c->add_option("--plot", plot_, "write an SVG chart of the average accuracy after each task");
}

bool BenchCommands::run(int& exit_code) {
  if (!continual_->parsed()) return false;
  exit_code = continual();
  return true;
}

int BenchCommands::continual() {
  ContinualBenchConfig config;
  config.protocol = parse_protocol(protocol_);
  config.methods = parse_methods(methods_);
  config.tasks = tasks_;
  config.iters_per_task = iters_;
  config.seeds = seeds_;
  config.first_seed = first_seed_;
  config.ewc_lambda = lambda_;
  config.ewc_gamma = gamma_;
  config.lr = lr_;
  config.batch_size = batch_size_;
  config.replay_capacity = replay_capacity_;
  config.fisher_samples = fisher_samples_;
  config.hidden_sizes = parse_sizes(hidden_);
  config.train_per_task = train_per_task_;
  config.test_per_task = test_per_task_;
  config.validate();
  if (threads_ < 0) throw ConfigError("--threads must be ≥ 0");
  if (threads_ > 0) torch::set_num_threads(int(threads_));
  reuse_host_memory();  // as retain train does: freed activations stay mapped for the next step

  const std::string dir = data_dir_.empty() ? kFashionMnistDir : data_dir_;
  const FeatureSet train = load_mnist_split(dir, "train");
  const FeatureSet test = load_mnist_split(dir, "test");
  log()->info("Fashion-MNIST from {}: {} training, {} test examples; {} threads", dir, train.size(), test.size(),
              torch::get_num_threads());
  const auto result = run_continual_bench(config, train, test, [](const std::string& line) { log()->info(line); });
  if (json_) std::cout << result.to_json().dump(2) << "\n";
  else std::cout << format_continual_report(result);
  if (!plot_.empty()) {
    write_file_atomic(plot_, continual_svg(result));
    if (!json_) std::printf("chart written to %s\n", plot_.c_str());
  }
  return kExitOk;
}

}  // namespace retain::cli
