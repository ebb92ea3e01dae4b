// Internals of the Hugging Face tokenizer.json reader (hf_tokenizer.h): the normalizers,
// pre-tokenizers and BPE model, each doing what its namesake in the `tokenizers` library does.
// Private to src/tokenizer/.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace retain::hf {

// The JSON file at `path`; CheckpointError "cannot read …" or "<path>: malformed JSON: …".
nlohmann::json read_json(const std::string& path);

// Length of the valid UTF-8 sequence at s (RFC 3629), or 0 when s[0] does not start one.
size_t utf8_length(const unsigned char* s, size_t left);
// Code point of the valid sequence of length n at s.
uint32_t utf8_decode(const unsigned char* s, size_t n);
void utf8_append(uint32_t cp, std::string& out);
// `text` with every `from` replaced by `to` (left to right, not overlapping).
std::string replace_all(const std::string& text, const std::string& from, const std::string& to);
// The {"String": ...} pattern of a Replace step; CheckpointError naming `where` otherwise.
std::string replace_pattern(const nlohmann::json& j, const std::string& where);
// Unicode White_Space (what Rust's char::is_whitespace and \s in tokenizers' regexes match).
bool is_white_space(uint32_t cp);

// A compiled PCRE2 pattern with the `tokenizers` library's meaning of \s and \S (Unicode
// White_Space). Throws CheckpointError (naming `where`) when the pattern does not compile.
class Regex {
 public:
  Regex(const std::string& pattern, bool literal, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // The non-overlapping matches in valid UTF-8 `text`, as [begin, end) byte offsets.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  void* code_ = nullptr;  // pcre2_code*
};

// A normalizer step: text in, text out (valid UTF-8 in and out).
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string text) const = 0;
  // Whether normalize(a + b) == normalize(a) + normalize(b) whenever b starts with a character that
  // composes with nothing (true for the Unicode forms; false for Prepend).
  virtual bool piecewise() const { return true; }
};
// From tokenizer.json's "normalizer" (null → nullptr). Throws CheckpointError naming `where`.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where);

// A piece of pre-tokenized text: `text` (after any byte-level spelling) and the byte offset in
// the section where it starts.
struct Piece {
  std::string text;
  size_t origin = 0;
  bool byte_level = false;  // text is spelled in GPT-2's byte alphabet
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their split (in order; text of each piece is valid UTF-8).
  virtual void split(std::vector<Piece>& pieces) const = 0;
  // Whether it spells its output in GPT-2's byte alphabet (a ByteLevel step).
  virtual bool byte_level() const { return false; }
};
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& where);

// The BPE model: vocabulary, merges by rank (applied as tokenizers' Word::merge_all does, lowest
// rank then leftmost first), ignore_merges, byte_fallback, unk_token, prefix and suffix.
class BpeModel {
 public:
  struct Options {
    std::optional<std::string> unk_token;
    bool fuse_unk = false, byte_fallback = false, ignore_merges = false;
    std::string continuing_subword_prefix, end_of_word_suffix;
  };
  // `merges` in rank order; `where[i]` names merge i in errors. Throws CheckpointError.
  BpeModel(std::unordered_map<std::string, int64_t> vocab,
           const std::vector<std::pair<std::string, std::string>>& merges,
           const std::vector<std::string>& where, Options options, const std::string& file);
  // Appends the ids of one pre-tokenized piece. Thread-safe.
  void encode(std::string_view piece, std::vector<int64_t>& out) const;
  std::optional<int64_t> id(const std::string& token) const;
  const std::string* token(int64_t id) const;  // nullptr when id is not in the vocabulary
  int64_t max_id() const { return static_cast<int64_t>(id_to_token_.size()) - 1; }
  const Options& options() const { return options_; }
  static constexpr size_t kCacheCapacity = 1 << 16, kCacheMaxPieceBytes = 128;

 private:
  std::vector<int64_t> merge_word(std::string_view piece) const;
  struct Rule {
    int32_t rank;
    int32_t id;
  };
  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<const std::string*> id_to_token_;
  std::unordered_map<uint64_t, Rule> rules_;
  std::array<int32_t, 256> byte_ids_{};  // <0xXX> tokens, -1 when absent
  std::optional<int64_t> unk_id_;
  Options options_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache_;
};

// The decoder: ids' token strings → bytes.
class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the tokens (each a byte string) in place, as the decoder step does.
  virtual void decode(std::vector<std::string>& tokens) const = 0;
};
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const std::string& where);

}  // namespace retain::hf
