// The workspace and replay-buffer subcommands of `retain`: init, buffer {add, sample, stats,
// export, remove, resize}, and mix. Each registers its flags on construction and calls the library.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace retain::cli {

class ReplayCommands {
 public:
  explicit ReplayCommands(CLI::App& app);
  // Runs the parsed subcommand if it is one of these: returns true and sets `exit_code`.
  // Returns false when another subcommand was parsed.
  bool run(int& exit_code);

 private:
  void add_buffer(CLI::App& app);
  void add_mix(CLI::App& app);
  int init();
  int buffer_add();
  int buffer_sample();
  int buffer_stats();
  int buffer_export();
  int buffer_remove();
  int buffer_resize();
  int mix();

  CLI::App* init_ = nullptr;
  CLI::App* add_ = nullptr;
  CLI::App* sample_ = nullptr;
  CLI::App* stats_ = nullptr;
  CLI::App* export_ = nullptr;
  CLI::App* remove_ = nullptr;
  CLI::App* resize_ = nullptr;
  CLI::App* mix_ = nullptr;

  std::string workspace_, source_, strategy_ = "diverse", out_;
  std::vector<std::string> files_;
  int64_t n_ = 0, per_topic_cap_ = 0, top_ = 20, max_size_ = 0;
  uint64_t seed_ = 1234;
  double replay_ratio_ = 0.3;
  bool json_ = false, no_commit_ = false;
};

}  // namespace retain::cli
