// `retain tokenize`: text lines on stdin to token ids (one JSON array a line), or back with --decode.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace retain::cli {

class TokenizeCommands {
 public:
  explicit TokenizeCommands(CLI::App& app);
  // Runs the parsed subcommand if it is `tokenize`: returns true and sets `exit_code`.
  // Returns false when another subcommand was parsed.
  bool run(int& exit_code);

 private:
  int tokenize();

  CLI::App* tokenize_ = nullptr;
  std::string tokenizer_dir_, chat_template_;
  bool decode_ = false, specials_ = false, chat_ = false, mask_ = false;
};

}  // namespace retain::cli
