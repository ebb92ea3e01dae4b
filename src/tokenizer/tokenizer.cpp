// The Tokenizer's chat rendering (through its ChatTemplate) and the byte tokenizer (see
// tokenizer.h). Loading a model directory's tokenizer is in tokenizer_load.cpp.
//
// The template is the one place that decides which tokens are trained, so render() and
// render_prompt() must agree token for token on everything before the reply.
#include "retain/tokenizer.h"

#include <algorithm>

#include "retain/errors.h"

namespace retain {
namespace {

// Index of the last assistant message, or -1.
int64_t last_assistant(const ChatExample& example) {
  for (int64_t i = static_cast<int64_t>(example.messages.size()) - 1; i >= 0; --i) {
    if (example.messages[i].role == Role::kAssistant) return i;
  }
  return -1;
}

}  // namespace

int64_t Tokenizer::role_token(Role role) const {
  throw Error("the " + type() + " tokenizer has no role tokens (its chat template is " +
              chat_template_name() + ")");
}

int64_t Tokenizer::end_of_turn_token() const { return piece_token(chat_template().end_of_turn().at(0)); }

std::vector<int64_t> Tokenizer::stop_tokens() const {
  std::vector<int64_t> out;
  auto add = [&](int64_t id) {
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  };
  if (has_chat_template())
    for (const std::string& t : chat_template().end_of_turn()) add(piece_token(t));
  for (const int64_t id : eos_ids_) add(id);
  return out;
}

std::shared_ptr<const ChatTemplate> Tokenizer::default_chat_template() const {
  static const std::shared_ptr<const ChatTemplate> kRetain = make_chat_template("retain");
  return kRetain;
}

const ChatTemplate& Tokenizer::chat_template() const {
  if (template_) return *template_;
  if (const auto t = default_chat_template()) return *t;
  throw CheckpointError("the " + type() + " tokenizer has no chat template (the directory has no "
                        "tokenizer_config.json chat_template or chat_template.jinja); name one with the "
                        "template override (load_tokenizer's template_override, `--chat-template NAME`): " +
                        chat_template_names());
}

int64_t Tokenizer::piece_token(const std::string& token) const {
  const auto id = token_id(token);
  if (!id)
    throw CheckpointError("chat template " + chat_template_name() + " needs the token " + token +
                          ", which the " + type() + " tokenizer does not have");
  return *id;
}

RenderedChat Tokenizer::encode_pieces(const std::vector<ChatPiece>& pieces) const {
  RenderedChat out;
  for (const ChatPiece& piece : pieces) {
    std::vector<int64_t> ids;
    if (piece.kind == ChatPiece::Kind::kToken) ids.push_back(piece_token(piece.text));
    else if (piece.kind == ChatPiece::Kind::kText) ids = encode_with_specials(piece.text);
    else ids = encode(piece.text);
    out.ids.insert(out.ids.end(), ids.begin(), ids.end());
    out.mask.insert(out.mask.end(), ids.size(), piece.trained ? 1 : 0);
  }
  return out;
}

RenderedChat Tokenizer::render(const ChatExample& example) const {
  return encode_pieces(chat_template().render(example.messages, false));
}

std::vector<int64_t> Tokenizer::render_prompt(const ChatExample& example) const {
  const int64_t reply = last_assistant(example);
  if (reply < 0) {
    throw DataError("cannot build a generation prompt for the example from " +
                    example.source_file + ":" + std::to_string(example.source_line) +
                    ": it has no assistant message");
  }
  const std::vector<ChatMessage> before(example.messages.begin(), example.messages.begin() + reply);
  return encode_pieces(chat_template().render(before, true)).ids;
}

std::string Tokenizer::reference_reply(const ChatExample& example) {
  const int64_t reply = last_assistant(example);
  return reply < 0 ? std::string() : example.messages[reply].content;
}

std::vector<int64_t> ByteTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  for (const char c : text) ids.push_back(static_cast<unsigned char>(c));
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int64_t>& ids) const {
  static const char* const kSpecialNames[] = {"<|system|>", "<|user|>", "<|assistant|>",
                                              "<|end|>"};
  std::string text;
  text.reserve(ids.size());
  for (const int64_t id : ids) {
    if (id >= 0 && id < 256) {
      text.push_back(static_cast<char>(static_cast<unsigned char>(id)));
    } else if (id >= kSystem && id <= kEnd) {
      text += kSpecialNames[id - kSystem];
    } else {
      throw Error("token id " + std::to_string(id) + " is outside the byte tokenizer's " +
                  "vocabulary [0, " + std::to_string(vocab_size()) + ")");
    }
  }
  return text;
}

int64_t ByteTokenizer::role_token(Role role) const {
  switch (role) {
    case Role::kSystem: return kSystem;
    case Role::kUser: return kUser;
    case Role::kAssistant: return kAssistant;
  }
  throw Error("unknown role " + std::to_string(static_cast<int>(role)));
}

std::optional<int64_t> ByteTokenizer::token_id(const std::string& token) const {
  static const char* const kNames[] = {"<|system|>", "<|user|>", "<|assistant|>", "<|end|>"};
  for (int64_t i = 0; i < 4; ++i)
    if (token == kNames[i]) return kSystem + i;
  if (token.size() == 1) return static_cast<unsigned char>(token[0]);
  return std::nullopt;
}

nlohmann::json ByteTokenizer::to_json() const {
  return {{"type", type()}, {"format_version", 1}};
}

}  // namespace retain
