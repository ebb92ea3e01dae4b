// Flags and library calls of `retain tokenize` (see tokenize_commands.h).
#include "tokenize_commands.h"

#include <iostream>

#include <nlohmann/json.hpp>

#include "retain/chat_template.h"
#include "retain/config.h"
#include "retain/data.h"
#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/tokenizer.h"

namespace retain::cli {

TokenizeCommands::TokenizeCommands(CLI::App& app) {
  tokenize_ = app.add_subcommand(
      "tokenize", "token ids of each stdin line as a JSON array (--decode: arrays back to text)");
  tokenize_->add_option("--tokenizer", tokenizer_dir_,
                        "model directory, or a folder with tokenizer.json or vocab.json + merges.txt")
      ->required();
  tokenize_->add_flag("--decode", decode_, "read one JSON array of ids a line, print its text");
  tokenize_->add_flag("--specials", specials_, "a special token's text (<|endoftext|>, <|im_end|>, ...) becomes its id");
  tokenize_->add_flag("--chat", chat_,
                      "read chat JSONL lines; print the ids of each conversation rendered with the chat template");
  tokenize_->add_flag("--mask", mask_, "with --chat: print {\"ids\": [...], \"mask\": [...]} (1 = trained token)");
  tokenize_->add_option("--chat-template", chat_template_,
                        "render with this built-in template instead of the one the directory names: " +
                            chat_template_names());
}

bool TokenizeCommands::run(int& exit_code) {
  if (!tokenize_->parsed()) return false;
  exit_code = tokenize();
  return true;
}

int TokenizeCommands::tokenize() {
  if (mask_ && !chat_) throw ConfigError("--mask goes with --chat");
  if (chat_ && (decode_ || specials_)) throw ConfigError("--chat renders conversations; it takes neither --decode nor --specials");
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(tokenizer_dir_, chat_template_);
  std::ios::sync_with_stdio(false);
  std::string line;
  for (int64_t line_no = 1;; ++line_no) {
    const LineRead read = read_line_bounded(std::cin, line);
    if (read == LineRead::kEnd) break;
    if (read == LineRead::kTooLong)
      throw DataError("stdin:" + std::to_string(line_no) + ": " + kLineTooLongRule + ": " + line_too_long_message());
    if (chat_) {
      ChatExample example;
      std::vector<DataIssue> issues;
      if (!parse_chat_line(line, "stdin", line_no, example, issues)) {
        if (issues.empty()) continue;  // a blank line
        throw DataError(issues.front().to_string());
      }
      const RenderedChat r = tokenizer->render(example);
      if (mask_) std::cout << nlohmann::json({{"ids", r.ids}, {"mask", r.mask}}) << '\n';
      else std::cout << nlohmann::json(r.ids) << '\n';
      continue;
    }
    if (!decode_) {
      std::cout << nlohmann::json(specials_ ? tokenizer->encode_with_specials(line) : tokenizer->encode(line)) << '\n';
      continue;
    }
    try {
      std::cout << tokenizer->decode(parse_json_text(line).get<std::vector<int64_t>>()) << '\n';
    } catch (const std::exception& e) {  // bad JSON, not an array of integers, an unknown id
      throw DataError("stdin:" + std::to_string(line_no) +
                      ": expected a JSON array of token ids of this tokenizer: " + e.what());
    }
  }
  std::cout.flush();
  return std::cout ? kExitOk : kExitInternal;
}

}  // namespace retain::cli
