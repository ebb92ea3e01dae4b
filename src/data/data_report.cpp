// The data report behind `retain data check` (see data_report.h): one streaming pass over the
// files, counting issues and measuring rendered examples, then JSON and text views of the result.
#include "retain/data_report.h"

#include <algorithm>
#include <limits>
#include <sstream>

namespace retain {
namespace {

// Nearest-rank percentile of an ascending vector: the element at rank ceil(p/100 * n).
int32_t percentile(const std::vector<int32_t>& sorted, int64_t p) {
  if (sorted.empty()) return 0;
  const int64_t n = static_cast<int64_t>(sorted.size());
  const int64_t rank = std::max<int64_t>(1, (p * n + 99) / 100);
  return sorted[std::min(rank, n) - 1];
}

// Adds the issues one next() call produced. Issues of one line are contiguous, so counting line
// changes counts the invalid lines.
void take_issues(std::vector<DataIssue>& fresh, DataReport& report) {
  const DataIssue* previous = nullptr;
  for (const DataIssue& issue : fresh) {
    if (previous == nullptr || previous->line != issue.line || previous->file != issue.file) {
      ++report.lines;
    }
    previous = &issue;
    ++report.issue_count;
    ++report.issues_by_rule[issue.rule];
    if (report.issues.size() < kMaxReportIssues) report.issues.push_back(issue);
  }
  fresh.clear();
}

void take_example(const ChatExample& example, const Tokenizer& tok, DataReport& report) {
  ++report.lines;
  ++report.examples;
  ++report.examples_by_topic[example.topic];
  for (const ChatMessage& message : example.messages) {
    ++report.messages_by_role[role_name(message.role)];
    if (message.role == Role::kAssistant) {
      ++(message.weight == 1 ? report.assistant_trained : report.assistant_untrained);
    }
  }
  const RenderedChat rendered = tok.render(example);
  const int64_t length = static_cast<int64_t>(rendered.ids.size());
  report.token_lengths.push_back(static_cast<int32_t>(
      std::min<int64_t>(length, std::numeric_limits<int32_t>::max())));
  if (report.context_length > 0 && length > report.context_length) ++report.too_long;
  for (const uint8_t m : rendered.mask) report.trained_tokens += m;
}

int64_t count_of(const std::map<std::string, int64_t>& counts, const std::string& key) {
  const auto it = counts.find(key);
  return it == counts.end() ? 0 : it->second;
}

// "1 file", "2 files".
std::string count_noun(int64_t n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

std::string topic_label(const std::string& topic) {
  return topic.empty() ? "(no topic)" : topic;
}

}  // namespace

DataReport make_data_report(const std::vector<std::string>& paths, const Tokenizer& tok,
                            int64_t context_length) {
  DataReport report;
  report.files = paths;
  report.tokenizer = tok.type();
  report.context_length = context_length;
  for (const char* role : {"system", "user", "assistant"}) report.messages_by_role[role] = 0;

  // ChatReader rather than scan_chat_files: scan_chat_files keeps every issue, and a report over
  // a badly broken file must not grow with it.
  std::vector<DataIssue> fresh;
  ChatExample example;
  for (const std::string& path : paths) {
    ChatReader reader(path);
    for (;;) {
      const bool got = reader.next(example, fresh);
      take_issues(fresh, report);
      if (!got) break;
      take_example(example, tok, report);
    }
  }

  std::sort(report.token_lengths.begin(), report.token_lengths.end());
  if (!report.token_lengths.empty()) {
    report.length_min = report.token_lengths.front();
    report.length_median = percentile(report.token_lengths, 50);
    report.length_p95 = percentile(report.token_lengths, 95);
    report.length_max = report.token_lengths.back();
  }
  return report;
}

nlohmann::json to_json(const DataReport& report) {
  nlohmann::json issues = nlohmann::json::array();
  for (const DataIssue& issue : report.issues) {
    issues.push_back({{"file", issue.file},
                      {"line", issue.line},
                      {"rule", issue.rule},
                      {"message", issue.message}});
  }
  return {
      {"ok", report.ok()},
      {"files", report.files},
      {"tokenizer", report.tokenizer},
      {"context_length", report.context_length},
      {"lines", report.lines},
      {"examples", report.examples},
      {"issue_count", report.issue_count},
      {"issues_by_rule", report.issues_by_rule},
      {"issues", std::move(issues)},
      {"issues_truncated", report.issue_count > static_cast<int64_t>(report.issues.size())},
      {"messages_by_role", report.messages_by_role},
      {"examples_by_topic", report.examples_by_topic},
      {"assistant_trained", report.assistant_trained},
      {"assistant_untrained", report.assistant_untrained},
      {"length_min", report.length_min},
      {"length_median", report.length_median},
      {"length_p95", report.length_p95},
      {"length_max", report.length_max},
      {"too_long", report.too_long},
      {"trained_tokens", report.trained_tokens},
  };
}

std::string format_report(const DataReport& report) {
  std::ostringstream out;
  if (report.issue_count > 0) {
    out << "Errors (" << report.issue_count << "):\n";
    for (const DataIssue& issue : report.issues) out << "  " << issue.to_string() << "\n";
    const int64_t hidden = report.issue_count - static_cast<int64_t>(report.issues.size());
    if (hidden > 0) out << "  ... and " << hidden << " more not shown\n";
    out << "Errors by rule:";
    for (const auto& [rule, count] : report.issues_by_rule) out << " " << rule << " " << count << ";";
    out << "\n\n";
  }

  out << "Files: " << report.files.size() << " (";
  for (size_t i = 0; i < report.files.size(); ++i) out << (i ? ", " : "") << report.files[i];
  out << ")\n";
  out << "Lines: " << report.lines << " read, " << count_noun(report.examples, "valid example")
      << "\n";
  out << "Messages: system " << count_of(report.messages_by_role, "system") << ", user "
      << count_of(report.messages_by_role, "user") << ", assistant "
      << count_of(report.messages_by_role, "assistant") << " (trained " << report.assistant_trained
      << ", untrained " << report.assistant_untrained << ")\n";
  out << "Topics:";
  if (report.examples_by_topic.empty()) out << " none";
  for (const auto& [topic, count] : report.examples_by_topic) {
    out << " " << topic_label(topic) << " " << count << ";";
  }
  out << "\n";
  out << "Tokens per example (" << report.tokenizer << "): min " << report.length_min
      << ", median " << report.length_median << ", p95 " << report.length_p95 << ", max "
      << report.length_max << "; trained tokens " << report.trained_tokens << "\n";
  if (report.context_length > 0) {
    out << "Longer than the context length (" << report.context_length
        << " tokens): " << count_noun(report.too_long, "example");
    out << "\n";
  }
  if (report.ok()) {
    out << "Result: OK\n";
  } else {
    out << "Result: FAILED (" << count_noun(report.issue_count, "error") << " in "
        << count_noun(static_cast<int64_t>(report.files.size()), "file") << ")\n";
  }
  return out.str();
}

}  // namespace retain
