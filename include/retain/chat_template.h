// Chat templates: how a conversation becomes the text and special tokens a model was trained on.
//
// A template is a named renderer written here, one per template family the supported models ship
// (their Jinja chat_template is recognised, never interpreted): it turns messages into pieces,
// each a special token, template text or message content, with whether it is trained. The
// tokenizer turns the pieces into ids (Tokenizer::render). docs/formats.md, "Chat templates",
// lists the names, what each renders and how a template text is recognised.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "retain/data.h"

namespace retain {

// One piece of a rendered conversation.
struct ChatPiece {
  enum class Kind {
    kToken,    // `text` is one token of the vocabulary (a special or added token), by its text
    kText,     // template text: added tokens in it are recognised as such
    kContent,  // message content: special tokens' text in it is plain text (no injection)
  };
  Kind kind = Kind::kText;
  std::string text;
  bool trained = false;  // whether its tokens count in the loss
};

// What a template needs to know beyond the messages; every field has the default stated.
struct ChatTemplateOptions {
  std::string bos_token;  // tokenizer_config.json's bos_token ("" when none): llama3 starts with it
  // The system message rendered when a conversation has none ("" for none). make_chat_template
  // fills in the template's own default (Qwen2.5: "You are Qwen, created by Alibaba Cloud. You
  // are a helpful assistant.") unless `default_system_set`.
  std::string default_system;
  bool default_system_set = false;
};

class ChatTemplate {
 public:
  virtual ~ChatTemplate() = default;
  // The name it is selected by (make_chat_template).
  virtual std::string name() const = 0;
  // `messages` rendered in order; with `add_generation_prompt`, followed by the header that opens
  // the assistant's reply (for generation; never trained). Trained pieces: an assistant message's
  // content and its end-of-turn token, when the message has weight 1. Throws DataError when the
  // template cannot render the conversation (for example a system message that is not first).
  virtual std::vector<ChatPiece> render(const std::vector<ChatMessage>& messages,
                                        bool add_generation_prompt) const = 0;
  // The text of the token(s) that end an assistant turn ("<|im_end|>", "<|eot_id|>", "<|end|>").
  virtual std::vector<std::string> end_of_turn() const = 0;
  // What it was made with (make_chat_template fills in defaults).
  const ChatTemplateOptions& options() const { return options_; }

 protected:
  explicit ChatTemplate(ChatTemplateOptions options) : options_(std::move(options)) {}

 private:
  ChatTemplateOptions options_;
};

// The built-in templates, by name: "retain" (<|role|> content <|end|>: retain's byte-level and
// GPT-2 tokenizers), "chatml" (SmolLM2; with the Qwen2.5 default system message as "qwen2.5"),
// "qwen3", "llama3". Throws ConfigError naming `name` and listing the names otherwise.
std::shared_ptr<const ChatTemplate> make_chat_template(const std::string& name,
                                                       ChatTemplateOptions options = {});
// The names make_chat_template accepts, comma-separated (for messages).
std::string chat_template_names();

// The built-in template that renders exactly what Jinja text `jinja` renders, or nullopt. Known
// texts are matched by the SHA-256 of the text with all whitespace removed: the model templates
// the parity tests check (Qwen3's, Llama 3's two) and the canonical ChatML template.
struct RecognisedTemplate {
  std::string name;
  ChatTemplateOptions options;
};
std::optional<RecognisedTemplate> recognise_chat_template(const std::string& jinja);

// Python's str.strip() (Jinja's `trim`): `text` without leading and trailing whitespace
// (str.isspace: Unicode White_Space and U+001C..U+001F).
std::string python_strip(const std::string& text);

}  // namespace retain
