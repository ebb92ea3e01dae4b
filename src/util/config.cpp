// Loading JSON configs with errors that point at the file, line and key.
#include "retain/config.h"

#include <algorithm>
#include <filesystem>

#include "retain/errors.h"
#include "retain/fileio.h"

namespace retain {

nlohmann::json parse_json_text(const std::string& text) {
  // The callback sees every value's depth as it is read, so a document too deep stops there.
  const nlohmann::json::parser_callback_t depth_limit = [](int depth, nlohmann::json::parse_event_t,
                                                           nlohmann::json&) {
    if (depth > kMaxJsonDepth) throw JsonTooDeep();
    return true;
  };
  return nlohmann::json::parse(text, depth_limit);
}

namespace {

// 1-based line and column of the 0-based byte `offset` of `text`.
std::string position(const std::string& text, size_t offset) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') ++line, column = 1;
    else ++column;
  }
  return std::to_string(line) + ":" + std::to_string(column);
}

// nlohmann's messages start with "[json.exception.parse_error.101] ": the id means nothing to a
// person fixing a file.
std::string without_id(const std::string& what) {
  const size_t close = what.rfind("] ", 64);
  return !what.empty() && what[0] == '[' && close != std::string::npos ? what.substr(close + 2) : what;
}

}  // namespace

std::string json_error_message(const std::string& text, const std::string& where, const std::exception& e) {
  if (const auto* p = dynamic_cast<const nlohmann::json::parse_error*>(&e))
    return where + ":" + position(text, p->byte > 0 ? p->byte - 1 : 0) + ": invalid JSON: " + without_id(e.what());
  if (dynamic_cast<const JsonTooDeep*>(&e)) {
    int depth = 0;
    for (size_t i = 0; i < text.size(); ++i) {  // where the nesting first went past the limit
      if (text[i] == '[' || text[i] == '{') {
        if (++depth > kMaxJsonDepth)
          return where + ":" + position(text, i) + ": invalid JSON: " + e.what() + " (retain's limit)";
      } else if (text[i] == ']' || text[i] == '}') {
        --depth;
      }
    }
    return where + ": invalid JSON: " + e.what() + " (retain's limit)";
  }
  // A number too large for a double ("number overflow parsing '1e400'"): find it in the text.
  const std::string message = without_id(e.what());
  const size_t q = message.find('\'');
  const size_t q2 = q == std::string::npos ? q : message.find('\'', q + 1);
  if (q2 != std::string::npos) {
    const size_t at = text.find(message.substr(q + 1, q2 - q - 1));
    if (at != std::string::npos) return where + ":" + position(text, at) + ": invalid JSON: " + message;
  }
  return where + ": invalid JSON: " + message;
}

nlohmann::json load_json_file(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {  // missing, unreadable, a folder: the user's to fix
    throw ConfigError(std::string(e.what()) + " (a JSON config file was expected here)");
  }
  return parse_json<ConfigError>(text, path);
}

void resolve_config_paths(nlohmann::json& j, const std::string& config_path, const std::vector<std::string>& keys) {
  const std::filesystem::path folder = std::filesystem::path(config_path).parent_path();
  auto resolve = [&](nlohmann::json& value) {
    if (!value.is_string() || value.get<std::string>().empty()) return;
    const std::filesystem::path p = value.get<std::string>();
    if (p.is_relative()) value = (folder / p).lexically_normal().string();
  };
  for (const auto& key : keys) {
    nlohmann::json* node = &j;
    size_t start = 0;
    bool all = false;
    while (node != nullptr && start <= key.size()) {
      const size_t dot = std::min(key.find('.', start), key.size());
      const std::string part = key.substr(start, dot - start);
      start = dot + 1;
      if (part == "*") {
        all = true;
        break;
      }
      node = node->is_object() && node->contains(part) ? &(*node)[part] : nullptr;
    }
    if (node == nullptr) continue;
    if (all && node->is_object()) {
      for (auto& [name, value] : node->items()) resolve(value);
    } else if (!all) {
      resolve(*node);
    }
  }
}

void reject_unknown_keys(const nlohmann::json& j, const std::vector<std::string>& known,
                         const std::string& what) {
  for (const auto& item : j.items()) {
    if (std::find(known.begin(), known.end(), item.key()) != known.end()) continue;
    const auto hint = nearest_key(item.key(), known);
    throw ConfigError(what + ": unknown key \"" + item.key() + "\"" +
                      (hint.empty() ? "" : " (did you mean \"" + hint + "\"?)"));
  }
}

}  // namespace retain
