// Flags and library calls of `retain tokenize` (see tokenize_commands.h).
#include "tokenize_commands.h"

#include <iostream>

#include <nlohmann/json.hpp>

#include "retain/bpe.h"
#include "retain/errors.h"
#include "retain/tokenizer.h"

namespace retain::cli {

TokenizeCommands::TokenizeCommands(CLI::App& app) {
  tokenize_ = app.add_subcommand(
      "tokenize", "token ids of each stdin line as a JSON array (--decode: arrays back to text)");
  tokenize_->add_option("--tokenizer", tokenizer_dir_,
                        "model directory, or a folder with tokenizer.json or vocab.json + merges.txt")
      ->required();
  tokenize_->add_flag("--decode", decode_, "read one JSON array of ids a line, print its text");
  tokenize_->add_flag("--specials", specials_,
                      "GPT-2 BPE: a special token's text (<|endoftext|>, <|user|>, ...) becomes its id");
}

bool TokenizeCommands::run(int& exit_code) {
  if (!tokenize_->parsed()) return false;
  exit_code = tokenize();
  return true;
}

int TokenizeCommands::tokenize() {
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(tokenizer_dir_);
  const auto* bpe = dynamic_cast<const Gpt2BpeTokenizer*>(tokenizer.get());
  if (specials_ && bpe == nullptr)
    throw ConfigError("--specials: the tokenizer of " + tokenizer_dir_ + " is " + tokenizer->type() +
                      ", not gpt2-bpe");
  std::ios::sync_with_stdio(false);
  std::string line;
  for (int64_t line_no = 1; std::getline(std::cin, line); ++line_no) {
    if (!decode_) {
      std::cout << nlohmann::json(specials_ ? bpe->encode_with_specials(line) : tokenizer->encode(line))
                << '\n';
      continue;
    }
    try {
      std::cout << tokenizer->decode(nlohmann::json::parse(line).get<std::vector<int64_t>>()) << '\n';
    } catch (const std::exception& e) {  // bad JSON, not an array of integers, an unknown id
      throw DataError("stdin:" + std::to_string(line_no) +
                      ": expected a JSON array of token ids of this tokenizer: " + e.what());
    }
  }
  std::cout.flush();
  return std::cout ? kExitOk : kExitInternal;
}

}  // namespace retain::cli
