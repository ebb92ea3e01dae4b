// GPT-2 byte-level BPE: the tokenizer of GPT-2, DistilGPT-2 and their fine-tunes.
//
// Text is split into pieces by GPT-2's pre-tokenizer regex, each piece's UTF-8 bytes are spelled
// with GPT-2's bytes_to_unicode alphabet, and merges are applied lowest rank first, exactly as
// openai/gpt-2's encoder.py does. Files: vocab.json + merges.txt, or a Hugging Face tokenizer.json,
// or retain's own retain_tokenizer.json (to_json()); see docs/formats.md, "GPT-2 BPE tokenizer".
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "retain/tokenizer.h"

namespace retain {

// GPT-2's bytes_to_unicode: the character (as UTF-8) that stands for each byte in vocab.json and
// merges.txt. Printable Latin-1 bytes stand for themselves; the others map to U+0100.. in order
// (space → "Ġ" U+0120, newline → "Ċ" U+010A).
const std::array<std::string, 256>& gpt2_byte_to_unicode();

// GPT-2's pre-tokenizer: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (PCRE2, Unicode properties), where \s is Unicode White_Space as in GPT-2's Python `regex`,
// Hugging Face tokenizers and tiktoken. Returns the pieces as views into `text`; they concatenate
// to `text`. Invalid UTF-8: each maximal run of bytes that are not part of a valid UTF-8 sequence
// is one piece of its own, and the valid text between such runs is split independently, so every
// byte string round-trips through encode/decode.
std::vector<std::string_view> gpt2_pre_tokenize(std::string_view text);

// The tokenizer. Special tokens: <|endoftext|> (when in the vocabulary), every added token of a
// tokenizer.json, and the four chat tokens <|system|> <|user|> <|assistant|> <|end|>, which take
// their id from the files when present there and are otherwise appended after the largest id (for
// GPT-2: 50257..50260, so vocab_size() = 50261 and a model needs that many embedding rows).
// encode() never produces a special token; encode_with_specials() recognises their text.
// Thread-safe: encode may be called from several threads (the piece cache has a lock).
class Gpt2BpeTokenizer : public Tokenizer {
 public:
  static constexpr const char* kEndOfText = "<|endoftext|>";
  // Chat tokens, in the order system, user, assistant, end of turn.
  static constexpr std::array<const char*, 4> kChatTokens = {"<|system|>", "<|user|>",
                                                             "<|assistant|>", "<|end|>"};
  // Pieces cached at most (then the cache starts over); longer pieces are not cached.
  static constexpr size_t kCacheCapacity = 1 << 16;
  static constexpr size_t kCacheMaxPieceBytes = 128;
  // Ids, appended chat tokens included, stay below this.
  static constexpr int64_t kMaxVocabSize = int64_t{1} << 24;

  // From a vocab.json ({"token": id}) and a merges.txt ("#version" line, then "a b" per line,
  // rank = order). Throws CheckpointError naming the file (and the line of merges.txt) when a file
  // is missing or malformed, an id is duplicated or negative, a byte has no token, or a merge's
  // parts or result are not in the vocabulary.
  static std::unique_ptr<Gpt2BpeTokenizer> from_files(const std::string& vocab_json,
                                                      const std::string& merges_txt);
  // From a Hugging Face tokenizer.json: model.type "BPE" (vocab, merges as "a b" or ["a","b"]),
  // pre_tokenizer ByteLevel without add_prefix_space, no normalizer. Its added_tokens are special.
  // Throws CheckpointError naming the file and the offending key otherwise.
  static std::unique_ptr<Gpt2BpeTokenizer> from_tokenizer_json(const std::string& path);
  // From to_json()'s object (retain_tokenizer.json); `where` names it in errors.
  static std::unique_ptr<Gpt2BpeTokenizer> from_json(const nlohmann::json& config,
                                                     const std::string& where);
  // From a directory with tokenizer.json (preferred) or vocab.json + merges.txt; nullptr when it
  // has neither.
  static std::unique_ptr<Gpt2BpeTokenizer> from_dir(const std::string& dir);

  std::string type() const override { return "gpt2-bpe"; }
  // Largest id + 1 (ids from the files plus appended chat tokens).
  int64_t vocab_size() const override { return vocab_size_; }
  // Plain text: special tokens' text is encoded as ordinary text.
  std::vector<int64_t> encode(const std::string& text) const override;
  // As encode, but the literal text of a special token (leftmost first, then longest) becomes its id.
  std::vector<int64_t> encode_with_specials(const std::string& text) const override;
  // The bytes of each id, special tokens as their text. The result is not always valid UTF-8 (a
  // character split across ids). Throws Error on an id that is not in the vocabulary.
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t role_token(Role role) const override;
  int64_t end_of_turn_token() const override { return chat_ids_[3]; }
  // A special token's id, else a vocabulary entry's (its byte-level spelling).
  std::optional<int64_t> token_id(const std::string& token) const override;
  // {"type": "gpt2-bpe", "format_version": 1, "vocab": {...}, "merges": ["a b", ...],
  //  "special_tokens": {"<|endoftext|>": 50256, "<|system|>": 50257, ...}}: self-contained.
  nlohmann::json to_json() const override;

  // The id of special token `text`, if it is one.
  std::optional<int64_t> special_token(const std::string& text) const;
  // The vocabulary (byte-level spelling → id), the merges in rank order, the special tokens.
  const std::unordered_map<std::string, int64_t>& vocab() const { return vocab_; }
  const std::vector<std::pair<std::string, std::string>>& merges() const { return merges_; }
  const std::map<std::string, int64_t>& special_tokens() const { return specials_; }
  // Pieces in the cache now (for tests).
  size_t cache_size() const;

  // What the loaders read; `where` and `merge_where[i]` name the source of each for errors.
  struct Files {
    std::unordered_map<std::string, int64_t> vocab;
    std::vector<std::pair<std::string, std::string>> merges;
    std::vector<std::string> merge_where;  // "merges.txt:12"
    std::map<std::string, int64_t> specials;
    std::string where;  // the vocabulary's file
  };
  // Validates and indexes `files` (see from_files for what it rejects).
  explicit Gpt2BpeTokenizer(Files files);

 private:
  std::vector<int32_t> merge_piece(std::string_view piece) const;
  void encode_plain(std::string_view text, std::vector<int64_t>& out) const;

  struct MergeRule {
    int32_t rank;
    int32_t id;
  };
  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::pair<std::string, std::string>> merges_;
  std::map<std::string, int64_t> specials_;
  std::unordered_map<uint64_t, MergeRule> rules_;  // (left id << 32 | right id) → rule
  std::array<int32_t, 256> byte_ids_{};
  std::vector<std::string> id_bytes_;  // decoded bytes of each id
  std::vector<uint8_t> id_known_;      // whether an id is in the vocabulary
  std::array<int64_t, 4> chat_ids_{};
  int64_t vocab_size_ = 0;

  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace retain
