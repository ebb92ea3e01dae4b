// Loading JSON configs with errors that point at the file, line and key.
#include "retain/config.h"

#include <algorithm>

#include "retain/errors.h"
#include "retain/fileio.h"

namespace retain {

nlohmann::json load_json_file(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {  // missing, unreadable, a folder: the user's to fix
    throw ConfigError(std::string(e.what()) + " (a JSON config file was expected here)");
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is the 1-based offset of the error; turn it into line:column.
    size_t line = 1, column = 1;
    for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') ++line, column = 1;
      else ++column;
    }
    throw ConfigError(path + ":" + std::to_string(line) + ":" + std::to_string(column) +
                      ": invalid JSON: " + e.what());
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
