// The subcommands of `retain`: each registers its flags on construction and runs the library call.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "flags.h"
#include <nlohmann/json.hpp>

namespace retain::cli {

class Commands {
 public:
  explicit Commands(CLI::App& app);
  // Runs the parsed subcommand; returns the exit code.
  int run();

 private:
  void add_finetune(CLI::App& app);
  void add_eval(CLI::App& app);
  void add_generate(CLI::App& app);
  void add_data(CLI::App& app);
  void add_fisher(CLI::App& app);
  int finetune();
  int eval();
  int generate();
  int data_validate();
  int fisher();

  CLI::App* finetune_ = nullptr;
  CLI::App* eval_ = nullptr;
  CLI::App* generate_ = nullptr;
  CLI::App* data_validate_ = nullptr;
  CLI::App* fisher_ = nullptr;

  // finetune
  std::string config_path_, resume_;
  std::map<std::string, std::string> job_flags_;  // key (underscores) → flag value as typed
  LoraFlags lora_flags_;
  bool overwrite_ = false;
  int nproc_ = 1;
  // eval / generate / data
  std::string model_, test_, prompt_, system_, device_ = "cpu", labels_, workspace_;
  std::vector<std::string> files_;
  bool json_ = false, no_exact_match_ = false, raw_ = false, chat_ = false;
  int64_t batch_size_ = 16, max_new_tokens_ = 128, top_k_ = 0, context_ = 0;
  uint64_t seed_ = 1234;
  double temperature_ = 0.0;
  // fisher
  std::string estimator_ = "empirical", consolidate_with_, ewc_out_;
  int64_t fisher_samples_ = 1000, samples_per_example_ = 1, fisher_batch_ = 32;
  double gamma_ = 1.0;
  bool bf16_ = false;
  std::string fisher_path_ = "auto";
};

}  // namespace retain::cli
