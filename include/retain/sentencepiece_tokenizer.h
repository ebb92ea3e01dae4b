// SentencePiece models (tokenizer.model: Llama 2, Mistral 7B, TinyLlama), through Debian's
// libsentencepiece, so that ids are the library's own.
//
// Special (control) tokens such as <s> and </s> never come out of encode; a chat template adds
// them as tokens. docs/formats.md, "SentencePiece tokenizer".
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "retain/tokenizer.h"

namespace retain {

class SentencePieceTokenizer : public Tokenizer {
 public:
  // Reads a tokenizer.model file. Throws CheckpointError naming the file when it is missing or
  // not a SentencePiece model.
  static std::unique_ptr<SentencePieceTokenizer> from_file(const std::string& path);
  // From the model's serialized bytes (what to_json() keeps); `where` names them in errors.
  static std::unique_ptr<SentencePieceTokenizer> from_bytes(const std::string& bytes, const std::string& where);
  ~SentencePieceTokenizer() override;

  std::string type() const override { return "sentencepiece"; }
  int64_t vocab_size() const override;
  // The library's Encode (normalization, the dummy prefix, byte fallback as the model says).
  std::vector<int64_t> encode(const std::string& text) const override;
  // The library's Decode; control tokens (<s>, </s>) as their text. Throws Error on an id that is
  // not in the vocabulary.
  std::string decode(const std::vector<int64_t>& ids) const override;
  // A piece's id (nullopt for a piece the model lacks).
  std::optional<int64_t> token_id(const std::string& piece) const override;
  std::shared_ptr<const ChatTemplate> default_chat_template() const override { return nullptr; }
  // {"type": "sentencepiece", "format_version": 1, "model_base64": "...", "chat_template": name,
  //  "eos_token_ids": [...]}: self-contained.
  nlohmann::json to_json() const override;

 private:
  SentencePieceTokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// RFC 4648 base64 (for binary files inside retain_tokenizer.json). decode throws Error on bad input.
std::string base64_encode(const std::string& bytes);
std::string base64_decode(const std::string& text);

}  // namespace retain
