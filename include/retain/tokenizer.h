// Tokenizers and the chat template.
//
// A Tokenizer turns text into ids and back, and renders a conversation into ids plus a loss mask.
// Two implementations: ByteTokenizer (ids 0–255 are bytes, then special tokens) here, and GPT-2
// byte-level BPE (bpe.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "retain/data.h"

namespace retain {

// A rendered conversation. ids.size() == mask.size(); mask[i] == 1 when token i is trained (an
// assistant message's content or its end-of-turn token, from a message with weight 1).
// For next-token training, position t predicts ids[t+1] and counts when mask[t+1] == 1.
struct RenderedChat {
  std::vector<int64_t> ids;
  std::vector<uint8_t> mask;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // "byte" or "gpt2-bpe".
  virtual std::string type() const = 0;
  virtual int64_t vocab_size() const = 0;
  // Plain text, no special tokens.
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
  // Inverse of encode; special tokens are rendered as their names (e.g. "<|end|>").
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  // Role-start token of each role, and the end-of-turn token.
  virtual int64_t role_token(Role role) const = 0;
  virtual int64_t end_of_turn_token() const = 0;

  // The chat template: for each message, <|role|> content <|end|>. Only assistant messages with
  // weight 1 have their content and <|end|> marked as trained.
  RenderedChat render(const ChatExample& example) const;
  // The prompt for generating the reply to `example`'s last assistant message: every message
  // before it, then <|assistant|>. Throws DataError if the example has no assistant message.
  std::vector<int64_t> render_prompt(const ChatExample& example) const;
  // Content of the last assistant message of `example` ("" when none).
  static std::string reference_reply(const ChatExample& example);

  // The tokenizer's file in a model directory (kTokenizerFile), as JSON: {"type":…, "format_version":1, …}.
  virtual nlohmann::json to_json() const = 0;
};

inline constexpr const char* kTokenizerFile = "retain_tokenizer.json";

// 256 byte ids, then <|system|>=256, <|user|>=257, <|assistant|>=258, <|end|>=259. vocab_size 260.
class ByteTokenizer : public Tokenizer {
 public:
  static constexpr int64_t kSystem = 256, kUser = 257, kAssistant = 258, kEnd = 259;
  std::string type() const override { return "byte"; }
  int64_t vocab_size() const override { return 260; }
  std::vector<int64_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t role_token(Role role) const override;
  int64_t end_of_turn_token() const override { return kEnd; }
  nlohmann::json to_json() const override;
};

// Loads the tokenizer of a model directory: DIR/retain_tokenizer.json when present; otherwise GPT-2
// BPE from DIR/tokenizer.json or DIR/vocab.json + DIR/merges.txt when present (a Hugging Face
// directory); otherwise the byte tokenizer. Throws CheckpointError on an unknown type or malformed file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir);

}  // namespace retain
