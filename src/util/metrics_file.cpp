// metrics.jsonl read back and converted to metrics.csv (see metrics_file.h).
#include "retain/metrics_file.h"

#include <algorithm>
#include <fstream>
#include <set>

#include "retain/errors.h"
#include "retain/fileio.h"

namespace retain {

namespace {

// The trainer's keys, train records then valid ones (src/train/trainer.cpp), so that the columns
// of every run read the same whatever its first record is.
const char* const kKnownColumns[] = {"type",      "step",         "loss",         "loss_task",
                                     "loss_ewc",  "lr",           "grad_norm",    "tokens_per_s",
                                     "skipped_updates", "elapsed_s", "perplexity", "token_accuracy"};

bool is_scalar(const nlohmann::json& v) { return v.is_number() || v.is_string() || v.is_boolean(); }

std::string csv_field(const nlohmann::json& v) {
  if (!is_scalar(v)) return "";
  const std::string text = v.is_string() ? v.get<std::string>() : v.dump();
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (const char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

}  // namespace

MetricsFile read_metrics_jsonl(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path);
  MetricsFile file;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      nlohmann::json record = nlohmann::json::parse(line);
      if (record.is_object()) {
        file.records.push_back(std::move(record));
        continue;
      }
    } catch (const nlohmann::json::exception&) {
    }
    ++file.skipped_lines;
  }
  if (in.bad()) throw Error("cannot read " + path);
  return file;
}

std::vector<std::string> metrics_columns(const std::vector<nlohmann::json>& records) {
  std::set<std::string> present;
  for (const auto& record : records)
    for (const auto& [key, value] : record.items())
      if (is_scalar(value)) present.insert(key);
  std::vector<std::string> columns;
  for (const char* key : kKnownColumns)
    if (present.erase(key) > 0) columns.push_back(key);
  columns.insert(columns.end(), present.begin(), present.end());  // std::set: alphabetical
  return columns;
}

std::string metrics_csv(const std::vector<nlohmann::json>& records) {
  const std::vector<std::string> columns = metrics_columns(records);
  std::string out;
  for (size_t c = 0; c < columns.size(); ++c) out += (c ? "," : "") + csv_field(columns[c]);
  out += "\n";
  for (const auto& record : records) {
    for (size_t c = 0; c < columns.size(); ++c) {
      if (c) out += ",";
      if (const auto it = record.find(columns[c]); it != record.end()) out += csv_field(*it);
    }
    out += "\n";
  }
  return out;
}

void write_metrics_csv(const std::string& jsonl_path, const std::string& csv_path) {
  write_file_atomic(csv_path, metrics_csv(read_metrics_jsonl(jsonl_path).records));
}

}  // namespace retain
