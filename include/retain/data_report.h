// A validation and statistics report over chat JSONL files, for `retain data check`.
//
// Streams the files once: every issue is counted (the first kMaxReportIssues are kept), and valid
// examples are rendered with the model's tokenizer to measure their length in tokens.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "retain/data.h"
#include "retain/tokenizer.h"

namespace retain {

// Issues kept in memory by make_data_report; the rest are only counted.
inline constexpr size_t kMaxReportIssues = 1000;

struct DataReport {
  std::vector<std::string> files;
  std::string tokenizer;          // Tokenizer::type() used for the token lengths
  int64_t context_length = 0;     // as passed to make_data_report
  int64_t lines = 0;              // non-blank lines read
  int64_t examples = 0;           // valid examples
  std::vector<DataIssue> issues;  // the first kMaxReportIssues, in file and line order
  int64_t issue_count = 0;        // all issues, kept or not
  std::map<std::string, int64_t> issues_by_rule;  // all issues, by rule id
  std::map<std::string, int64_t> messages_by_role;  // "system", "user", "assistant" (always present)
  std::map<std::string, int64_t> examples_by_topic;  // key "" for examples without a topic
  int64_t assistant_trained = 0;    // assistant messages with weight 1
  int64_t assistant_untrained = 0;  // assistant messages with weight 0
  // Rendered length in tokens of each valid example, sorted ascending.
  std::vector<int32_t> token_lengths;
  // Nearest-rank percentiles of token_lengths (the smallest length that at least p% of examples
  // do not exceed); all 0 when there are no valid examples.
  int32_t length_min = 0, length_median = 0, length_p95 = 0, length_max = 0;
  int64_t too_long = 0;        // examples longer than context_length tokens (0 when it is <= 0)
  int64_t trained_tokens = 0;  // tokens with mask 1, over all valid examples

  // No issues at all.
  bool ok() const { return issue_count == 0; }
};

// Reads every file in `paths` (in order) and gathers the report. context_length <= 0 disables the
// too-long count. Throws DataError when a file cannot be opened or read.
DataReport make_data_report(const std::vector<std::string>& paths, const Tokenizer& tok,
                            int64_t context_length);

// The report as JSON: the fields above, issues as {file, line, rule, message}, plus "ok" and
// "issues_truncated". token_lengths itself is left out (it has one entry per example).
nlohmann::json to_json(const DataReport& report);

// A readable multi-line report: errors first (file:line: rule: message), then the statistics,
// then a final OK / FAILED line.
std::string format_report(const DataReport& report);

}  // namespace retain
