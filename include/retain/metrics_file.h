// A run's metrics.jsonl (one JSON object a line, written by the trainer; docs/formats.md) read
// back, and its scalars as metrics.csv for spreadsheets and pandas (docs/report.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace retain {

struct MetricsFile {
  std::vector<nlohmann::json> records;  // the objects, in file order
  int64_t skipped_lines = 0;            // lines that were not a JSON object (a torn last line)
};

// Reads `path`. Throws Error naming the path when it cannot be read; a line that does not parse
// is counted in skipped_lines, not fatal (a killed run can leave half a line).
MetricsFile read_metrics_jsonl(const std::string& path);

// The columns of metrics.csv for `records`: the trainer's keys in a fixed order (type, step,
// loss, loss_task, loss_ewc, lr, grad_norm, tokens_per_s, skipped_updates, elapsed_s, perplexity,
// token_accuracy), those that occur, then any other scalar key (number, string, boolean) in
// alphabetical order. Objects and arrays are not scalars and get no column.
std::vector<std::string> metrics_columns(const std::vector<nlohmann::json>& records);

// A header row of metrics_columns, then one row per record (RFC 4180: fields with a comma, quote
// or line break quoted; a key a record lacks is an empty field; numbers as JSON writes them).
std::string metrics_csv(const std::vector<nlohmann::json>& records);

// metrics_csv of `jsonl_path` written to `csv_path` atomically (write_file_atomic), so a crash
// leaves the previous file or none, never a torn header. Throws Error when either file fails.
void write_metrics_csv(const std::string& jsonl_path, const std::string& csv_path);

}  // namespace retain
