// The continual-round subcommands of `retain`: train (one round, or --resume RUN) and gate
// (re-run the gate for a registered version), and sweep (a grid of rounds in a scratch workspace). Each registers its flags on construction.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "flags.h"

namespace retain::cli {

class RoundCommands {
 public:
  explicit RoundCommands(CLI::App& app);
  // Runs the parsed subcommand if it is one of these: returns true and sets `exit_code`.
  bool run(int& exit_code);

 private:
  int train();
  int gate();
  int sweep();
  // The flags that set round-config keys, shared by train and sweep (which sets λ and the replay
  // ratio from its own lists, so it leaves those two out).
  void add_config_flags(CLI::App& command, bool for_sweep);
  // --config read, its paths resolved, then the flags and --set applied in that order, and the
  // thread count chosen when none is given: the config a round or a sweep validates.
  nlohmann::json config_with_flags();

  CLI::App* train_ = nullptr;
  CLI::App* gate_ = nullptr;
  CLI::App* sweep_ = nullptr;

  std::string workspace_, config_path_, data_, base_, resume_, name_, version_, device_;
  std::map<std::string, std::string> section_flags_;  // "section.key" → value as typed
  LoraFlags lora_flags_;
  std::vector<std::string> overrides_;               // --set section.key=value
  double wait_lock_s_ = 0;
  int nproc_ = 1;
  bool no_promote_ = false, promote_stale_ = false, json_ = false, keep_workspace_ = false;
  // sweep
  std::string lambdas_, ratios_, old_set_, new_set_, out_dir_, plot_;
};

}  // namespace retain::cli
