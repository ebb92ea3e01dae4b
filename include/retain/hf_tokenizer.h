// Hugging Face tokenizer.json files of the BPE kind (Qwen2/3, Llama 3, SmolLM2, GPT-2, Llama 2's
// byte-fallback BPE), read as the `tokenizers` library reads them.
//
// Encoding: added tokens are split out of the text first (leftmost, then longest; honouring
// single_word, lstrip, rstrip and normalized), then each remaining section is normalized,
// pre-tokenized and merged by the BPE model. Supported components (others are refused, naming the
// file and the field): normalizer none, NFC/NFD/NFKC/NFKD (ICU), Prepend, Replace(String),
// Sequence; pre_tokenizer ByteLevel (add_prefix_space, use_regex), Split (Regex or String pattern;
// every behavior; invert), Digits, Sequence; model BPE (merges as "a b" or ["a", "b"], ignore_merges,
// byte_fallback, unk_token, fuse_unk, continuing_subword_prefix, end_of_word_suffix; no dropout);
// decoder ByteLevel, ByteFallback, Fuse, Replace, Strip, BPEDecoder, Sequence. The post_processor
// is not applied: encode never adds bos/eos (a chat template adds what it needs). See
// docs/formats.md, "Hugging Face tokenizer.json".
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "retain/tokenizer.h"

namespace retain {

namespace hf {
class Normalizer;
class PreTokenizer;
class BpeModel;
class Decoder;
}  // namespace hf

class HfTokenizer : public Tokenizer {
 public:
  // One entry of tokenizer.json's added_tokens.
  struct AddedToken {
    std::string content;
    int64_t id = 0;
    bool special = false, single_word = false, lstrip = false, rstrip = false, normalized = false;
  };

  // Reads tokenizer.json `path`. Throws CheckpointError naming the file and the JSON field on a
  // malformed file, an unsupported component (by its type), a merge that names a token not in
  // model.vocab, or an added token whose id is negative, too large (≥ 2^24) or another token's.
  static std::unique_ptr<HfTokenizer> from_file(const std::string& path);
  // From the text of a tokenizer.json; `where` names it in errors.
  static std::unique_ptr<HfTokenizer> from_json_text(std::string text, const std::string& where);
  ~HfTokenizer() override;

  std::string type() const override { return "hf-bpe"; }
  // Largest id (vocabulary or added token) + 1.
  int64_t vocab_size() const override { return vocab_size_; }
  // Special tokens' text is plain text (tokenizers' encode_special_tokens); non-special added
  // tokens (Qwen3's <think>) are still split out, as the library does. Thread-safe.
  std::vector<int64_t> encode(const std::string& text) const override;
  // What the `tokenizers` library's encode(text, add_special_tokens=false) returns.
  std::vector<int64_t> encode_with_specials(const std::string& text) const override;
  // Added tokens as their text; the rest through the decoder. decode(encode(s)) == s for every
  // byte string s with a ByteLevel decoder. Throws Error on an id that is not in the vocabulary.
  std::string decode(const std::vector<int64_t>& ids) const override;
  std::optional<int64_t> token_id(const std::string& token) const override;
  // Text pieces between two kToken pieces are tokenized as one text, as tokenizing the rendered
  // string would; a token is trained when its first byte comes from a trained piece.
  RenderedChat encode_pieces(const std::vector<ChatPiece>& pieces) const override;
  // {"type": "hf-bpe", "format_version": 1, "tokenizer_json": {...}, "chat_template": name,
  //  "chat_template_options": {...}, "eos_token_ids": [...]}: self-contained.
  nlohmann::json to_json() const override;

  const std::vector<AddedToken>& added_tokens() const { return added_; }
  std::shared_ptr<const ChatTemplate> default_chat_template() const override { return nullptr; }

 private:
  HfTokenizer() = default;
  // Appends the ids of `text`; special tokens are recognised only when `specials`.
  void encode_into(const std::string& text, bool specials, std::vector<int64_t>& out) const;
  // Appends the ids of a section with no added tokens in it.
  void encode_section(const std::string& text, std::vector<int64_t>& out) const;
  // The ids of a section and the byte offset where each begins (normalized text already).
  void encode_normalized(const std::string& text, std::vector<int64_t>& ids, std::vector<size_t>* starts) const;
  // [begin, end, token index) of each added token found in `text`, in order.
  struct Match {
    size_t begin, end, token;
  };
  std::vector<Match> find_added(const std::string& text, bool specials, bool normalized) const;

  std::string json_text_;  // the file, for to_json()
  std::unique_ptr<hf::Normalizer> normalizer_;
  std::unique_ptr<hf::PreTokenizer> pre_tokenizer_;
  std::unique_ptr<hf::BpeModel> model_;
  std::unique_ptr<hf::Decoder> decoder_;
  std::vector<AddedToken> added_;
  std::vector<int64_t> added_index_of_id_;  // id → index in added_, -1 when none
  std::array<std::vector<size_t>, 256> added_by_first_byte_;  // indices into added_, longest first
  int64_t vocab_size_ = 0;
};

}  // namespace retain
