// Job configs: JSON files in configs/, validated once on load. Helpers shared by every config
// section (training now; replay, EWC and gate sections join later).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace retain {

// The deepest nesting accepted in any JSON retain reads (configs, data lines, model files). A
// deeper document is refused while it is parsed, before a value that deep exists (copying or
// destroying one recurses once a level: 100,000 levels overflow the stack).
inline constexpr int kMaxJsonDepth = 256;

// Parses `text`; throws nlohmann::json::exception on a syntax error or a number out of range
// (1e400), and JsonTooDeep past kMaxJsonDepth.
struct JsonTooDeep : std::runtime_error {
  JsonTooDeep() : std::runtime_error("nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels") {}
};
nlohmann::json parse_json_text(const std::string& text);
// The message for an exception of parse_json_text on `text` from `where`: "where:line:column:
// invalid JSON: …" for a syntax error, with the line of an out-of-range number or of the nesting
// that went too deep.
std::string json_error_message(const std::string& text, const std::string& where, const std::exception& e);
// parse_json_text, throwing ErrorT(json_error_message(…)) instead: one JSON reader for every file.
template <typename ErrorT>
nlohmann::json parse_json(const std::string& text, const std::string& where) {
  try {
    return parse_json_text(text);
  } catch (const nlohmann::json::exception& e) {
    throw ErrorT(json_error_message(text, where, e));
  } catch (const JsonTooDeep& e) {
    throw ErrorT(json_error_message(text, where, e));
  }
}

// Parses a JSON file. Throws ConfigError naming the file, and the line and column of a syntax
// error; Error when the file cannot be read.
nlohmann::json load_json_file(const std::string& path);

// Paths inside a config file are relative to the file's folder: each string at `keys` (dotted;
// "gate.test_sets.*" is every value of that object) that is a relative path becomes one under the
// folder of `config_path`. Flags given beside the file stay relative to the working directory.
void resolve_config_paths(nlohmann::json& j, const std::string& config_path, const std::vector<std::string>& keys);

// The known key closest to `key` (edit distance ≤ 3), or "" — the hint in unknown-key errors.
std::string nearest_key(const std::string& key, const std::vector<std::string>& known);

// Throws ConfigError("<what>: unknown key \"k\" (did you mean …?)") for the first key of the
// object `j` that is not in `known`.
void reject_unknown_keys(const nlohmann::json& j, const std::vector<std::string>& known,
                         const std::string& what);

}  // namespace retain
