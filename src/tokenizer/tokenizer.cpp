// The byte tokenizer, the chat template, and loading a model directory's tokenizer (see
// tokenizer.h).
//
// The template is the one place that decides which tokens are trained, so render() and
// render_prompt() must agree token for token on everything before the reply.
#include "retain/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "retain/bpe.h"
#include "retain/errors.h"

namespace retain {
namespace {

// Appends <|role|> content <|end|>; content and end are trained only for a weight-1 assistant turn.
void append_turn(const Tokenizer& tok, const ChatMessage& message, RenderedChat& out) {
  const uint8_t trained = message.role == Role::kAssistant && message.weight == 1 ? 1 : 0;
  out.ids.push_back(tok.role_token(message.role));
  out.mask.push_back(0);
  const std::vector<int64_t> content = tok.encode(message.content);
  out.ids.insert(out.ids.end(), content.begin(), content.end());
  out.mask.insert(out.mask.end(), content.size(), trained);
  out.ids.push_back(tok.end_of_turn_token());
  out.mask.push_back(trained);
}

// Index of the last assistant message, or -1.
int64_t last_assistant(const ChatExample& example) {
  for (int64_t i = static_cast<int64_t>(example.messages.size()) - 1; i >= 0; --i) {
    if (example.messages[i].role == Role::kAssistant) return i;
  }
  return -1;
}

}  // namespace

RenderedChat Tokenizer::render(const ChatExample& example) const {
  RenderedChat out;
  for (const ChatMessage& message : example.messages) append_turn(*this, message, out);
  return out;
}

std::vector<int64_t> Tokenizer::render_prompt(const ChatExample& example) const {
  const int64_t reply = last_assistant(example);
  if (reply < 0) {
    throw DataError("cannot build a generation prompt for the example from " +
                    example.source_file + ":" + std::to_string(example.source_line) +
                    ": it has no assistant message");
  }
  RenderedChat out;
  for (int64_t i = 0; i < reply; ++i) append_turn(*this, example.messages[i], out);
  out.ids.push_back(role_token(Role::kAssistant));
  return out.ids;
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

nlohmann::json ByteTokenizer::to_json() const {
  return {{"type", type()}, {"format_version", 1}};
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir) {
  const std::filesystem::path path = std::filesystem::path(model_dir) / kTokenizerFile;
  std::error_code ec;
  // No tokenizer file: a Hugging Face directory (GPT-2 BPE files), or a model trained before the
  // file existed, which is byte-level.
  if (!std::filesystem::exists(path, ec)) {
    if (auto bpe = Gpt2BpeTokenizer::from_dir(model_dir)) return bpe;
    return std::make_unique<ByteTokenizer>();
  }

  const std::string where = "tokenizer file " + path.string();
  std::ifstream in(path, std::ios::in | std::ios::binary);
  if (!in || std::filesystem::is_directory(path, ec)) {
    throw CheckpointError("cannot read " + where);
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw CheckpointError("malformed " + where + ": " + e.what());
  }
  if (!config.is_object()) throw CheckpointError("malformed " + where + ": expected a JSON object");
  const auto type_it = config.find("type");
  if (type_it == config.end() || !type_it->is_string()) {
    throw CheckpointError("malformed " + where + ": expected a string \"type\" such as \"byte\"");
  }
  const auto version_it = config.find("format_version");
  if (version_it == config.end() || !version_it->is_number_integer() ||
      version_it->get<int64_t>() != 1) {
    throw CheckpointError(where + " has format_version " +
                          (version_it == config.end() ? std::string("(missing)")
                                                      : version_it->dump()) +
                          "; this build reads format_version 1");
  }
  const std::string type = type_it->get<std::string>();
  if (type == "byte") return std::make_unique<ByteTokenizer>();
  if (type == "gpt2-bpe") return Gpt2BpeTokenizer::from_json(config, where);
  throw CheckpointError(where + " has unknown type \"" + type + "\"; this build supports: byte, gpt2-bpe");
}

}  // namespace retain
