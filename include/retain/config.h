// Job configs: JSON files in configs/, validated once on load. Helpers shared by every config
// section (training now; replay, EWC and gate sections join later).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace retain {

// Parses a JSON file. Throws ConfigError naming the file, and the line and column of a syntax
// error; Error when the file cannot be read.
nlohmann::json load_json_file(const std::string& path);

// The known key closest to `key` (edit distance ≤ 3), or "" — the hint in unknown-key errors.
std::string nearest_key(const std::string& key, const std::vector<std::string>& known);

// Throws ConfigError("<what>: unknown key \"k\" (did you mean …?)") for the first key of the
// object `j` that is not in `known`.
void reject_unknown_keys(const nlohmann::json& j, const std::vector<std::string>& known,
                         const std::string& what);

}  // namespace retain
