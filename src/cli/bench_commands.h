// The benchmark subcommands of `retain`: bench continual (the continual-learning benchmark on
// Fashion-MNIST, docs/continual-bench.md). Registers its flags on construction.
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

namespace retain::cli {

class BenchCommands {
 public:
  explicit BenchCommands(CLI::App& app);
  // Runs the parsed subcommand if it is one of these: returns true and sets `exit_code`.
  // Returns false when another subcommand was parsed.
  bool run(int& exit_code);

 private:
  int continual();

  CLI::App* continual_ = nullptr;
  std::string protocol_ = "permuted", methods_ = "naive,replay,ewc,online-ewc,joint", data_dir_, plot_,
              hidden_ = "400,400";
  int64_t tasks_ = 5, iters_ = 1000, seeds_ = 3, threads_ = 0, batch_size_ = 128, replay_capacity_ = 1000,
          fisher_samples_ = 1000, train_per_task_ = 0, test_per_task_ = 0;
  uint64_t first_seed_ = 1;
  double lambda_ = -1, gamma_ = 1.0, lr_ = 1e-3;
  bool json_ = false;
};

}  // namespace retain::cli
