// Tokenizers, and rendering a conversation with a chat template (chat_template.h).
//
// A Tokenizer turns text into ids and back, and renders a conversation into ids plus a loss mask.
// Three implementations: ByteTokenizer (ids 0–255 are bytes, then special tokens) here, GPT-2
// byte-level BPE (bpe.h) and Hugging Face tokenizer.json files (hf_tokenizer.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "retain/chat_template.h"
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
  // "byte", "gpt2-bpe", "hf-bpe" or "sentencepiece".
  virtual std::string type() const = 0;
  virtual int64_t vocab_size() const = 0;
  // Plain text: special tokens' text is encoded as ordinary text.
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
  // As encode, but the text of a special (or added) token becomes its id. Default: encode.
  virtual std::vector<int64_t> encode_with_specials(const std::string& text) const { return encode(text); }
  // Inverse of encode; special tokens are rendered as their names (e.g. "<|end|>").
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  // The id of the token whose text is `token` (vocabulary, added or special token), if any.
  virtual std::optional<int64_t> token_id(const std::string& token) const = 0;
  // Role-start token of each role (tokenizers with retain's own chat tokens only; others throw
  // Error). The end-of-turn token: the first of the chat template's end_of_turn().
  virtual int64_t role_token(Role role) const;
  virtual int64_t end_of_turn_token() const;
  // Every id generation stops at: the template's end-of-turn tokens, then generation_config.json's
  // eos_token_id list (set_eos_ids), without repeats.
  std::vector<int64_t> stop_tokens() const;
  void set_eos_ids(std::vector<int64_t> ids) { eos_ids_ = std::move(ids); }
  const std::vector<int64_t>& eos_ids() const { return eos_ids_; }

  // The chat template: render and render_prompt delegate to it. Default: default_chat_template().
  // Throws CheckpointError (naming the template override) when there is none.
  const ChatTemplate& chat_template() const;
  bool has_chat_template() const { return template_ != nullptr || default_chat_template() != nullptr; }
  std::string chat_template_name() const { return chat_template().name(); }
  void set_chat_template(std::shared_ptr<const ChatTemplate> t) { template_ = std::move(t); }
  // The template used when none was set: "retain" (<|role|> content <|end|>) here; HfTokenizer has
  // none (its directory's template is set by load_tokenizer).
  virtual std::shared_ptr<const ChatTemplate> default_chat_template() const;

  // The conversation rendered by the chat template. ids.size() == mask.size(); only an assistant
  // message with weight 1 has tokens trained (its content and end-of-turn token).
  RenderedChat render(const ChatExample& example) const;
  // The prompt for generating the reply to `example`'s last assistant message: every message
  // before it, then the template's generation prompt. Throws DataError if the example has no
  // assistant message.
  std::vector<int64_t> render_prompt(const ChatExample& example) const;
  // Content of the last assistant message of `example` ("" when none).
  static std::string reference_reply(const ChatExample& example);
  // Ids and mask of rendered pieces. Default: each piece on its own (a kToken piece through
  // token_id, which must know it: CheckpointError otherwise). Tokenizers whose pre-tokenizer
  // would split text differently across piece boundaries override this.
  virtual RenderedChat encode_pieces(const std::vector<ChatPiece>& pieces) const;

  // The tokenizer's file in a model directory (kTokenizerFile), as JSON: {"type":…, "format_version":1, …}.
  virtual nlohmann::json to_json() const = 0;

 protected:
  // The id of a kToken piece; CheckpointError naming the template when the vocabulary lacks it.
  int64_t piece_token(const std::string& token) const;

 private:
  std::shared_ptr<const ChatTemplate> template_;
  std::vector<int64_t> eos_ids_;
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
  std::optional<int64_t> token_id(const std::string& token) const override;
  int64_t role_token(Role role) const override;
  int64_t end_of_turn_token() const override { return kEnd; }
  nlohmann::json to_json() const override;
};

// Loads the tokenizer of a model directory and its chat template:
//  - DIR/retain_tokenizer.json when present (what to_json() wrote);
//  - else DIR/tokenizer.json: with a chat template (tokenizer_config.json's chat_template or
//    DIR/chat_template.jinja) or a `template_override`, the general reader (HfTokenizer, with the
//    recognised template, the override, and generation_config.json's eos_token_id as stop tokens);
//    without either (or with retain's own template, as `export --hf` writes it), GPT-2 BPE
//    (Gpt2BpeTokenizer, retain's chat tokens appended) when the file is
//    GPT-2 byte-level BPE, else HfTokenizer without a template (render throws CheckpointError);
//  - else DIR/tokenizer.model (SentencePieceTokenizer), its template and stop tokens as above;
//  - else GPT-2 BPE from DIR/vocab.json + DIR/merges.txt;
//  - else the byte tokenizer.
// `template_override` ("" for none) names a built-in template (make_chat_template) used instead of
// the directory's own. Throws CheckpointError (naming the file and the field) on a malformed or
// unsupported file, and on a chat template that is not recognised and not overridden (the message
// names the override); ConfigError on an unknown override name.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir,
                                          const std::string& template_override = "");

}  // namespace retain
