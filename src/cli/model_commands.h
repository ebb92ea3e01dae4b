// `retain export` (a version or model directory as a Hugging Face GPT-2 directory) and
// `retain logits` (a model's logits on token ids, for parity checks against other implementations).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace retain::cli {

class ModelCommands {
 public:
  explicit ModelCommands(CLI::App& app);
  // Runs the parsed subcommand if it is one of these: returns true and sets `exit_code`.
  // Returns false when another subcommand was parsed.
  bool run(int& exit_code);

 private:
  int export_model();
  int logits();

  CLI::App* export_ = nullptr;
  CLI::App* logits_ = nullptr;
  std::string model_id_, model_dir_, hf_dir_, peft_dir_, base_name_, workspace_, out_, device_ = "cpu";
  bool overwrite_ = false;
};

}  // namespace retain::cli
