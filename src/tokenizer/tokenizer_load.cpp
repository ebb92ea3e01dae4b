// load_tokenizer (tokenizer.h): which tokenizer and chat template a model directory has.
#include <filesystem>

#include "hf_internal.h"
#include "retain/config.h"
#include "retain/bpe.h"
#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/hash.h"
#include "retain/hf_tokenizer.h"
#include "retain/sentencepiece_tokenizer.h"

namespace retain {
namespace {

namespace fs = std::filesystem;

bool file_exists(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

nlohmann::json read_json_or_null(const fs::path& path) {
  return file_exists(path) ? hf::read_json(path.string()) : nlohmann::json();
}

// A token setting of tokenizer_config.json: "text" or {"content": "text", ...}.
std::string token_text(const nlohmann::json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return "";
}

// The Jinja chat template of a directory and where it came from ("" when there is none).
struct TemplateSource {
  std::string text, where;
};

TemplateSource read_template(const fs::path& root, const nlohmann::json& config) {
  const fs::path jinja = root / "chat_template.jinja";
  if (file_exists(jinja)) return {read_file(jinja.string()), jinja.string()};
  const std::string where = (root / "tokenizer_config.json").string() + ": chat_template";
  if (!config.is_object() || !config.contains("chat_template") || config["chat_template"].is_null()) return {};
  const nlohmann::json& t = config["chat_template"];
  if (t.is_string()) return {t.get<std::string>(), where};
  if (t.is_array()) {  // [{"name": "default", "template": "..."}, {"name": "tool_use", ...}]
    for (const auto& entry : t)
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string())
        return {entry["template"].get<std::string>(), where + "[name=default]"};
  }
  throw CheckpointError(where + ": expected a string, or a list with {\"name\": \"default\", \"template\": ...}");
}

std::shared_ptr<const ChatTemplate> choose_template(const TemplateSource& source, const std::string& override_name,
                                                    ChatTemplateOptions options) {
  if (!override_name.empty()) return make_chat_template(override_name, options);
  if (source.text.empty()) return nullptr;
  auto recognised = recognise_chat_template(source.text);
  if (!recognised) {
    std::string squeezed;
    for (const char c : source.text)
      if (!std::isspace(static_cast<unsigned char>(c))) squeezed += c;
    throw CheckpointError(source.where + ": this chat template is not one retain renders (sha256 of its text "
                          "without whitespace: " + sha256_hex(squeezed) + "); retain never renders a template "
                          "approximately: name a built-in one that renders the same text with the template "
                          "override (load_tokenizer's template_override, `--chat-template NAME`, config key "
                          "chat_template): " + chat_template_names());
  }
  recognised->options.bos_token = options.bos_token;
  return make_chat_template(recognised->name, recognised->options);
}

// generation_config.json's eos_token_id (an id or a list), else tokenizer_config.json's eos_token.
std::vector<int64_t> eos_ids(const fs::path& root, const nlohmann::json& config, const Tokenizer& tok) {
  const fs::path path = root / "generation_config.json";
  const nlohmann::json generation = read_json_or_null(path);
  std::vector<int64_t> out;
  if (generation.is_object() && generation.contains("eos_token_id")) {
    const nlohmann::json& e = generation["eos_token_id"];
    for (const auto& id : e.is_array() ? e : nlohmann::json::array({e})) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= tok.vocab_size())
        throw CheckpointError(path.string() + ": eos_token_id: " + id.dump() + " is not a token id of this tokenizer (" +
                              std::to_string(tok.vocab_size()) + " ids)");
      out.push_back(id.get<int64_t>());
    }
    return out;
  }
  if (const auto id = tok.token_id(token_text(config, "eos_token"))) out.push_back(*id);
  return out;
}

std::unique_ptr<Tokenizer> load_hf_dir(const fs::path& root, const std::string& override_name) {
  const nlohmann::json config = read_json_or_null(root / "tokenizer_config.json");
  const TemplateSource source = read_template(root, config);
  const std::string path = (root / "tokenizer.json").string();
  const bool retain_template = !source.text.empty() && recognise_chat_template(source.text) &&
                               recognise_chat_template(source.text)->name == "retain";
  if ((source.text.empty() || retain_template) && override_name.empty()) {
    // No chat template, or retain's own (a directory `retain export --hf` wrote): a GPT-2 style
    // directory keeps retain's chat tokens and template.
    try {
      return Gpt2BpeTokenizer::from_tokenizer_json(path);
    } catch (const CheckpointError&) {
      // Not GPT-2 byte-level BPE: the general reader below, without a template.
    }
  }
  auto tok = HfTokenizer::from_file(path);
  ChatTemplateOptions options;
  options.bos_token = token_text(config, "bos_token");
  if (auto t = choose_template(source, override_name, options)) tok->set_chat_template(std::move(t));
  tok->set_eos_ids(eos_ids(root, config, *tok));
  const nlohmann::json model_config = read_json_or_null(root / "config.json");
  if (model_config.is_object() && model_config.contains("vocab_size") &&
      model_config["vocab_size"].is_number_integer() &&
      tok->vocab_size() > model_config["vocab_size"].get<int64_t>())
    throw CheckpointError(path + ": added_tokens: token id " + std::to_string(tok->vocab_size() - 1) +
                          " is past the model's vocabulary (" + (root / "config.json").string() + ": vocab_size " +
                          model_config["vocab_size"].dump() + ")");
  return tok;
}

// Why a build without libsentencepiece (the default) refuses tokenizer.model files.
const char* kNoSentencePiece =
    "this build reads no SentencePiece model: Debian's libsentencepiece carries its own copy of "
    "protobuf, which clashes with LibTorch's in one process (a crash at start-up), so it is off by "
    "default (-DRETAIN_WITH_SENTENCEPIECE=ON where the two agree); use the model's tokenizer.json";

// DIR/tokenizer.model (SentencePiece), with the directory's template and stop tokens.
std::unique_ptr<Tokenizer> load_sentencepiece_dir(const fs::path& root, const std::string& override_name) {
#ifndef RETAIN_WITH_SENTENCEPIECE
  throw CheckpointError((root / "tokenizer.model").string() + ": " + kNoSentencePiece);
#else
  const nlohmann::json config = read_json_or_null(root / "tokenizer_config.json");
  auto tok = SentencePieceTokenizer::from_file((root / "tokenizer.model").string());
  ChatTemplateOptions options;
  options.bos_token = token_text(config, "bos_token");
  if (auto t = choose_template(read_template(root, config), override_name, options)) tok->set_chat_template(std::move(t));
  tok->set_eos_ids(eos_ids(root, config, *tok));
  return tok;
#endif
}

// retain_tokenizer.json (`config`, read from `where`).
std::unique_ptr<Tokenizer> from_retain_file(const nlohmann::json& config, const std::string& where) {
  if (!config.is_object()) throw CheckpointError("malformed " + where + ": expected a JSON object");
  const auto type_it = config.find("type");
  if (type_it == config.end() || !type_it->is_string())
    throw CheckpointError("malformed " + where + ": expected a string \"type\" such as \"byte\"");
  const auto version_it = config.find("format_version");
  if (version_it == config.end() || !version_it->is_number_integer() || version_it->get<int64_t>() != 1) {
    throw CheckpointError(where + " has format_version " +
                          (version_it == config.end() ? std::string("(missing)") : version_it->dump()) +
                          "; this build reads format_version 1");
  }
  const std::string type = type_it->get<std::string>();
  if (type == "byte") return std::make_unique<ByteTokenizer>();
  if (type == "gpt2-bpe") return Gpt2BpeTokenizer::from_json(config, where);
  if (type == "hf-bpe") {
    if (!config.contains("tokenizer_json")) throw CheckpointError(where + ": missing \"tokenizer_json\"");
    auto tok = HfTokenizer::from_json_text(config["tokenizer_json"].dump(), where + ": tokenizer_json");
    try {
      if (config.contains("chat_template")) {
        ChatTemplateOptions options;
        const auto& o = config.value("chat_template_options", nlohmann::json::object());
        options.bos_token = o.value("bos_token", "");
        options.default_system = o.value("default_system", "");
        options.default_system_set = true;
        tok->set_chat_template(make_chat_template(config["chat_template"].get<std::string>(), options));
      }
      tok->set_eos_ids(config.value("eos_token_ids", std::vector<int64_t>{}));
    } catch (const nlohmann::json::exception& e) {
      throw CheckpointError(where + ": chat_template, chat_template_options or eos_token_ids: " + e.what());
    }
    return tok;
  }
  if (type == "sentencepiece") {
#ifndef RETAIN_WITH_SENTENCEPIECE
    throw CheckpointError(where + ": " + kNoSentencePiece);
#else
    std::unique_ptr<SentencePieceTokenizer> tok;
    try {
      tok = SentencePieceTokenizer::from_bytes(base64_decode(config.at("model_base64").get<std::string>()),
                                               where + ": model_base64");
      if (config.contains("chat_template"))
        tok->set_chat_template(make_chat_template(config["chat_template"].get<std::string>()));
      tok->set_eos_ids(config.value("eos_token_ids", std::vector<int64_t>{}));
    } catch (const nlohmann::json::exception& e) {
      throw CheckpointError(where + ": model_base64, chat_template or eos_token_ids: " + e.what());
    } catch (const CheckpointError&) {
      throw;
    } catch (const Error& e) {
      throw CheckpointError(where + ": model_base64: " + e.what());
    }
    return tok;
#endif
  }
  throw CheckpointError(where + " has unknown type \"" + type +
                        "\"; this build supports: byte, gpt2-bpe, hf-bpe, sentencepiece");
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir, const std::string& template_override) {
  const fs::path root(model_dir);
  const fs::path path = root / kTokenizerFile;
  std::unique_ptr<Tokenizer> tok;
  if (file_exists(path)) {
    const std::string where = "tokenizer file " + path.string();
    std::string text;
    try {
      text = read_file(path.string());
    } catch (const Error&) {
      throw CheckpointError("cannot read " + where);
    }
    const nlohmann::json config = parse_json<CheckpointError>(text, "malformed " + where);
    tok = from_retain_file(config, where);
  } else if (file_exists(root / "tokenizer.json")) {
    return load_hf_dir(root, template_override);
  } else if (file_exists(root / "tokenizer.model")) {
    return load_sentencepiece_dir(root, template_override);
  } else if (auto bpe = Gpt2BpeTokenizer::from_dir(model_dir)) {
    tok = std::move(bpe);
  } else {
    tok = std::make_unique<ByteTokenizer>();
  }
  if (!template_override.empty()) {
    ChatTemplateOptions options;
    if (tok->has_chat_template()) options = tok->chat_template().options();
    tok->set_chat_template(make_chat_template(template_override, options));
  }
  return tok;
}

}  // namespace retain
