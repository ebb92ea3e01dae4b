// Tests of chat JSONL reading and validation (data.h) and the data report (data_report.h).
//
// Each validation rule gets a file whose bad line sits at a known line number after a valid line
// and a blank line, so the tests also check line numbering.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "retain/data.h"
#include "retain/data_report.h"
#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/tokenizer.h"

namespace retain {
namespace {

namespace fs = std::filesystem;

const std::string kValid =
    R"({"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]})";

// A fresh, empty folder per test.
fs::path fresh_dir() {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::temp_directory_path() /
                 ("retain_data_test_" + std::string(info->test_suite_name()) + "_" + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  return path.string();
}

// Reads a file whose line 1 is valid, line 2 blank and line 3 `bad`; expects one valid example
// and returns the issues.
std::vector<DataIssue> issues_for_bad_line(const std::string& bad) {
  const std::string path = write_file(fresh_dir() / "data.jsonl", kValid + "\n  \n" + bad + "\n");
  ChatReader reader(path);
  std::vector<DataIssue> issues;
  ChatExample example;
  int valid = 0;
  while (reader.next(example, issues)) ++valid;
  EXPECT_EQ(valid, 1);
  return issues;
}

// The bad line must produce exactly one issue, of `rule`, at line 3.
void expect_rule(const std::string& bad, const std::string& rule) {
  SCOPED_TRACE(bad);
  const std::vector<DataIssue> issues = issues_for_bad_line(bad);
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].rule, rule);
  EXPECT_EQ(issues[0].line, 3);
  EXPECT_NE(issues[0].file.find("data.jsonl"), std::string::npos);
  EXPECT_FALSE(issues[0].message.empty());
}

TEST(DataRules, InvalidJson) {
  expect_rule(R"({"messages": [)", "invalid_json");
  expect_rule("not json at all", "invalid_json");
}

TEST(DataRules, InvalidUtf8IsInvalidJsonAndTheIssueStaysSerialisable) {
  const std::vector<DataIssue> issues =
      issues_for_bad_line("{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}");
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].rule, "invalid_json");
  DataReport report;
  report.issues = issues;
  report.issue_count = 1;
  EXPECT_NO_THROW(to_json(report).dump()) << issues[0].message;
}

TEST(DataRules, NotObject) {
  expect_rule("[1, 2]", "not_object");
  expect_rule(R"("a string")", "not_object");
}

TEST(DataRules, MissingMessages) {
  expect_rule(R"({"topic":"x"})", "missing_messages");
  expect_rule(R"({"messages":"hello"})", "missing_messages");
}

TEST(DataRules, EmptyMessages) { expect_rule(R"({"messages":[]})", "empty_messages"); }

TEST(DataRules, MessageNotObject) {
  expect_rule(R"({"messages":["hi",{"role":"assistant","content":"a"}]})", "message_not_object");
}

TEST(DataRules, MissingRole) {
  expect_rule(R"({"messages":[{"content":"hi"},{"role":"assistant","content":"a"}]})",
              "missing_role");
}

TEST(DataRules, MissingContent) {
  expect_rule(R"({"messages":[{"role":"user"},{"role":"assistant","content":"a"}]})",
              "missing_content");
}

TEST(DataRules, UnknownRole) {
  const std::string bad =
      R"({"messages":[{"role":"user","content":"hi"},{"role":"bot","content":"a"}]})";
  expect_rule(bad, "unknown_role");
  const DataIssue issue = issues_for_bad_line(bad).at(0);
  EXPECT_NE(issue.message.find("message 2"), std::string::npos) << issue.message;
  EXPECT_NE(issue.message.find("\"bot\""), std::string::npos) << issue.message;
  EXPECT_NE(issue.to_string().find("data.jsonl:3: unknown_role: message 2"), std::string::npos)
      << issue.to_string();
  expect_rule(R"({"messages":[{"role":7,"content":"hi"},{"role":"assistant","content":"a"}]})",
              "unknown_role");
}

TEST(DataRules, ContentNotString) {
  expect_rule(R"({"messages":[{"role":"user","content":5},{"role":"assistant","content":"a"}]})",
              "content_not_string");
  expect_rule(R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":null}]})",
              "content_not_string");
}

TEST(DataRules, UnknownMessageKey) {
  expect_rule(
      R"({"messages":[{"role":"user","content":"q","mood":"ok"},{"role":"assistant","content":"a"}]})",
      "unknown_message_key");
}

TEST(DataRules, WeightNotAllowed) {
  expect_rule(
      R"({"messages":[{"role":"user","content":"q","weight":1},{"role":"assistant","content":"a"}]})",
      "weight_not_allowed");
}

TEST(DataRules, InvalidWeight) {
  for (const std::string weight : {"2", "true", "false", "1.0", "\"1\"", "-1"}) {
    expect_rule(R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a","weight":)" +
                    weight + "}]}",
                "invalid_weight");
  }
}

TEST(DataRules, NoTrainedAssistant) {
  expect_rule(R"({"messages":[{"role":"user","content":"q"}]})", "no_trained_assistant");
  expect_rule(
      R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a","weight":0}]})",
      "no_trained_assistant");
}

TEST(DataRules, TopicNotString) {
  expect_rule(R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"topic":3})",
              "topic_not_string");
}

TEST(DataRules, SeveralProblemsInOneLineAreAllReported) {
  std::vector<DataIssue> issues;
  ChatExample example;
  EXPECT_FALSE(parse_chat_line(R"({"messages":[{"role":"bot"},{"content":1}]})", "f.jsonl", 9,
                               example, issues));
  ASSERT_EQ(issues.size(), 4u);
  EXPECT_EQ(issues[0].rule, "unknown_role");
  EXPECT_EQ(issues[1].rule, "missing_content");
  EXPECT_EQ(issues[2].rule, "missing_role");
  EXPECT_EQ(issues[3].rule, "content_not_string");
  for (const DataIssue& issue : issues) EXPECT_EQ(issue.line, 9);
}

TEST(DataParse, ValidLineWithNameWeightsAndMetadata) {
  const std::string line =
      R"({"messages":[{"role":"system","content":"be brief"},)"
      R"({"role":"user","content":"q","name":"ann"},)"
      R"({"role":"assistant","content":"draft","weight":0},)"
      R"({"role":"assistant","content":"final \u00e9"}],)"
      R"("topic":"billing","source":{"ticket":42}})";
  std::vector<DataIssue> issues;
  ChatExample example;
  ASSERT_TRUE(parse_chat_line(line, "d.jsonl", 4, example, issues));
  EXPECT_TRUE(issues.empty());
  ASSERT_EQ(example.messages.size(), 4u);
  EXPECT_EQ(example.messages[0].role, Role::kSystem);
  EXPECT_EQ(example.messages[1].role, Role::kUser);
  EXPECT_EQ(example.messages[1].content, "q");
  EXPECT_EQ(example.messages[2].weight, 0);
  EXPECT_EQ(example.messages[3].weight, 1);
  EXPECT_EQ(example.messages[3].content, "final \xc3\xa9");
  EXPECT_EQ(example.topic, "billing");
  EXPECT_EQ(example.metadata.size(), 2u);
  EXPECT_EQ(example.metadata.at("topic"), "billing");
  EXPECT_EQ(example.metadata.at("source").at("ticket"), 42);
  EXPECT_FALSE(example.metadata.contains("messages"));
  EXPECT_EQ(example.source_file, "d.jsonl");
  EXPECT_EQ(example.source_line, 4);
}

TEST(DataParse, NoTopicMeansEmptyTopicAndObjectMetadata) {
  std::vector<DataIssue> issues;
  ChatExample example;
  ASSERT_TRUE(parse_chat_line(kValid, "d.jsonl", 1, example, issues));
  EXPECT_EQ(example.topic, "");
  EXPECT_TRUE(example.metadata.is_object());
  EXPECT_TRUE(example.metadata.empty());
}

TEST(DataParse, RoleNames) {
  EXPECT_STREQ(role_name(Role::kSystem), "system");
  EXPECT_STREQ(role_name(Role::kUser), "user");
  EXPECT_STREQ(role_name(Role::kAssistant), "assistant");
}

TEST(ChatReader, StreamsPastABadLineInTheMiddle) {
  const std::string bad = R"({"messages":[{"role":"bot","content":"x"}]})";
  // Line 1 ends in CRLF, line 4 is blank, line 6 has no newline.
  const std::string path = write_file(fresh_dir() / "mid.jsonl",
                                      kValid + "\r\n" + kValid + "\n" + bad + "\n\n" + kValid +
                                          "\n" + kValid);
  ChatReader reader(path);
  EXPECT_EQ(reader.path(), path);
  std::vector<DataIssue> issues;
  ChatExample example;
  std::vector<int64_t> lines;
  while (reader.next(example, issues)) {
    lines.push_back(example.source_line);
    EXPECT_EQ(example.messages.at(1).content, "hello");
  }
  EXPECT_EQ(lines, (std::vector<int64_t>{1, 2, 5, 6}));
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].line, 3);
  EXPECT_EQ(issues[0].rule, "unknown_role");
  EXPECT_FALSE(reader.next(example, issues));  // stays at the end
}

TEST(ChatReader, MissingFileAndDirectoryThrowDataError) {
  const fs::path dir = fresh_dir();
  const std::string missing = (dir / "nope.jsonl").string();
  try {
    ChatReader reader(missing);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open data file " + missing), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ChatReader reader(dir.string()), DataError);
}

TEST(ReadChatFile, ReadsAValidFile) {
  const std::string path = write_file(fresh_dir() / "ok.jsonl", kValid + "\n\n" + kValid + "\n");
  const std::vector<ChatExample> examples = read_chat_file(path);
  ASSERT_EQ(examples.size(), 2u);
  EXPECT_EQ(examples[1].source_line, 3);
}

TEST(ReadChatFile, ErrorNamesFileLineRuleAndCount) {
  const std::string path = write_file(
      fresh_dir() / "bad.jsonl", kValid + "\n{oops\n" + kValid + "\n[]\n" + R"({"messages":[]})");
  try {
    read_chat_file(path);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind(path + ":2: invalid_json: ", 0), 0u) << what;
    EXPECT_NE(what.find("(and 2 more errors)"), std::string::npos) << what;
  }
  const std::string one = write_file(fresh_dir() / "one.jsonl", "{}\n");
  try {
    read_chat_file(one);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), one + ":1: missing_messages: object has no \"messages\" key; "
                                           "expected an array of {\"role\", \"content\"} objects");
  }
}

TEST(ScanChatFiles, VisitsEveryFileAndCollectsIssues) {
  const fs::path dir = fresh_dir();
  const std::string a = write_file(dir / "a.jsonl", kValid + "\n" + kValid + "\n");
  const std::string b = write_file(dir / "b.jsonl", "nope\n" + kValid + "\n");
  std::vector<std::string> seen;
  const std::vector<DataIssue> issues = scan_chat_files(
      {a, b}, [&](const ChatExample& e) { seen.push_back(e.source_file + ":" +
                                                         std::to_string(e.source_line)); });
  EXPECT_EQ(seen, (std::vector<std::string>{a + ":1", a + ":2", b + ":2"}));
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].file, b);
  EXPECT_EQ(issues[0].line, 1);
}

TEST(ToJsonl, RoundTripsMessagesTopicAndMetadata) {
  const std::string line =
      R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":"line1\nline2\t\"q\""},)"
      R"({"role":"assistant","content":"no","weight":0},{"role":"assistant","content":"yes \u2713"}],)"
      R"("topic":"t1","extra":[1,2,{"k":null}]})";
  std::vector<DataIssue> issues;
  ChatExample first, second;
  ASSERT_TRUE(parse_chat_line(line, "a", 1, first, issues));
  const std::string written = to_jsonl(first);
  EXPECT_EQ(written.rfind(R"({"messages":[{"role":"system","content":"s"})", 0), 0u) << written;
  EXPECT_EQ(written.find('\n'), std::string::npos);
  ASSERT_TRUE(parse_chat_line(written, "b", 1, second, issues)) << written;
  ASSERT_EQ(second.messages.size(), first.messages.size());
  for (size_t i = 0; i < first.messages.size(); ++i) {
    EXPECT_EQ(second.messages[i].role, first.messages[i].role);
    EXPECT_EQ(second.messages[i].content, first.messages[i].content);
    EXPECT_EQ(second.messages[i].weight, first.messages[i].weight);
  }
  EXPECT_EQ(second.topic, "t1");
  EXPECT_EQ(second.metadata, first.metadata);
  EXPECT_EQ(to_jsonl(second), written);
}

TEST(ToJsonl, WritesTopicOfAnExampleBuiltInCode) {
  ChatExample example;
  example.messages = {{Role::kUser, "q", 1}, {Role::kAssistant, "a", 1}};
  example.topic = "shipping";
  EXPECT_EQ(to_jsonl(example),
            R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"topic":"shipping"})");
}

// A line whose byte-tokenizer rendering is exactly `length` tokens: <|user|> x*k <|end|>
// <|assistant|> y <|end|> is k + 5 tokens.
std::string line_of_length(int length, const std::string& topic) {
  std::string line = R"({"messages":[{"role":"user","content":")" + std::string(length - 5, 'x') +
                     R"("},{"role":"assistant","content":"y"}])";
  if (!topic.empty()) line += R"(,"topic":")" + topic + "\"";
  return line + "}\n";
}

TEST(DataReport, LengthStatsTopicsAndTooLong) {
  const fs::path dir = fresh_dir();
  std::string text;
  // Lengths 200, 190, ..., 10 (out of order on purpose), one bad line in the middle.
  for (int i = 20; i >= 1; --i) {
    text += line_of_length(10 * i, i % 2 ? "odd" : (i % 4 ? "two" : ""));
    if (i == 10) text += "\n{\"messages\":[]}\n";
  }
  const std::string a = write_file(dir / "a.jsonl", text);
  const std::string b = write_file(
      dir / "b.jsonl",
      R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":"q"},)"
      R"({"role":"assistant","content":"aa","weight":0},{"role":"assistant","content":"b"}]})"
      "\n");
  ByteTokenizer tok;
  const DataReport report = make_data_report({a, b}, tok, 150);

  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.lines, 22);
  EXPECT_EQ(report.examples, 21);
  EXPECT_EQ(report.issue_count, 1);
  ASSERT_EQ(report.issues.size(), 1u);
  EXPECT_EQ(report.issues[0].file, a);
  EXPECT_EQ(report.issues[0].line, 13);
  EXPECT_EQ(report.issues[0].rule, "empty_messages");
  EXPECT_EQ(report.issues_by_rule.at("empty_messages"), 1);

  // b's example: 3+3+4+3 = 13 tokens, so lengths are 10, 13, 20, ..., 200 (21 values).
  ASSERT_EQ(report.token_lengths.size(), 21u);
  EXPECT_EQ(report.length_min, 10);
  EXPECT_EQ(report.length_median, 100);  // rank ceil(10.5) = 11
  EXPECT_EQ(report.length_p95, 190);     // rank ceil(19.95) = 20
  EXPECT_EQ(report.length_max, 200);
  EXPECT_TRUE(std::is_sorted(report.token_lengths.begin(), report.token_lengths.end()));
  EXPECT_EQ(report.too_long, 5);  // 160..200

  EXPECT_EQ(report.messages_by_role.at("system"), 1);
  EXPECT_EQ(report.messages_by_role.at("user"), 21);
  EXPECT_EQ(report.messages_by_role.at("assistant"), 22);
  EXPECT_EQ(report.assistant_trained, 21);
  EXPECT_EQ(report.assistant_untrained, 1);
  EXPECT_EQ(report.trained_tokens, 20 * 2 + 2);  // "y"+<|end|> each, "b"+<|end|>
  EXPECT_EQ(report.examples_by_topic.at("odd"), 10);
  EXPECT_EQ(report.examples_by_topic.at("two"), 5);  // i = 2, 6, 10, 14, 18
  EXPECT_EQ(report.examples_by_topic.at(""), 6);     // i = 4, 8, 12, 16, 20, and b

  const nlohmann::json json = to_json(report);
  EXPECT_EQ(json.at("ok"), false);
  EXPECT_EQ(json.at("length_p95"), 190);
  EXPECT_EQ(json.at("too_long"), 5);
  EXPECT_EQ(json.at("issues").at(0).at("line"), 13);
  EXPECT_EQ(json.at("issues_truncated"), false);

  const std::string text_report = format_report(report);
  const size_t error_at = text_report.find(a + ":13: empty_messages: ");
  ASSERT_NE(error_at, std::string::npos) << text_report;
  EXPECT_LT(error_at, text_report.find("Tokens per example")) << "errors must come first";
  EXPECT_NE(text_report.find("median 100, p95 190, max 200"), std::string::npos) << text_report;
  EXPECT_NE(text_report.find("Result: FAILED"), std::string::npos) << text_report;
}

TEST(DataReport, CleanFileIsOk) {
  const std::string path = write_file(fresh_dir() / "ok.jsonl", kValid + "\n");
  const DataReport report = make_data_report({path}, ByteTokenizer(), 0);
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.too_long, 0);
  EXPECT_EQ(report.length_median, (1 + 2 + 1) + (1 + 5 + 1));  // user "hi", assistant "hello"
  EXPECT_NE(format_report(report).find("Result: OK"), std::string::npos);
}

TEST(DataReport, KeepsAtMostTheCapButCountsEveryIssue) {
  std::string text;
  for (size_t i = 0; i < kMaxReportIssues + 5; ++i) text += "[]\n";
  const std::string path = write_file(fresh_dir() / "bad.jsonl", text);
  const DataReport report = make_data_report({path}, ByteTokenizer(), 64);
  EXPECT_EQ(report.issue_count, static_cast<int64_t>(kMaxReportIssues) + 5);
  EXPECT_EQ(report.issues.size(), kMaxReportIssues);
  EXPECT_EQ(report.lines, static_cast<int64_t>(kMaxReportIssues) + 5);
  EXPECT_EQ(report.examples, 0);
  EXPECT_EQ(report.length_max, 0);
  EXPECT_EQ(to_json(report).at("issues_truncated"), true);
  EXPECT_NE(format_report(report).find("and 5 more not shown"), std::string::npos);
}

TEST(DataLines, ReadLineBoundedSkipsTheRestOfALongLineAndGoesOn) {
  std::istringstream in("short\r\n" + std::string(10, 'x') + "\nafter\nlast");
  std::string line;
  EXPECT_EQ(read_line_bounded(in, line, 8), LineRead::kLine);
  EXPECT_EQ(line, "short");
  EXPECT_EQ(read_line_bounded(in, line, 8), LineRead::kTooLong);
  EXPECT_EQ(line, "");
  EXPECT_EQ(read_line_bounded(in, line, 8), LineRead::kLine);
  EXPECT_EQ(line, "after");
  EXPECT_EQ(read_line_bounded(in, line, 8), LineRead::kLine);  // no final newline
  EXPECT_EQ(line, "last");
  EXPECT_EQ(read_line_bounded(in, line, 8), LineRead::kEnd);
  std::istringstream exact(std::string(8, 'y') + "\n");
  EXPECT_EQ(read_line_bounded(exact, line, 8), LineRead::kLine);  // the limit itself is allowed
}

TEST(DataLines, AChatLineOverTheLimitIsAnIssueAndTheNextLineStillReads) {
  const fs::path dir = fresh_dir();
  {
    std::ofstream out(dir / "long.jsonl", std::ios::binary);
    out << R"({"messages":[{"role":"user","content":")" << std::string(kMaxLineBytes, 'a') << "\"}]}\n" << kValid << "\n";
  }
  ChatReader reader((dir / "long.jsonl").string());
  std::vector<DataIssue> issues;
  ChatExample example;
  ASSERT_TRUE(reader.next(example, issues));
  EXPECT_EQ(example.source_line, 2);
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].rule, "line_too_long");
  EXPECT_EQ(issues[0].line, 1);
  // The same rule where a caller hands a line over directly (stdin readers).
  std::vector<DataIssue> direct;
  EXPECT_FALSE(parse_chat_line(std::string(kMaxLineBytes + 1, ' '), "stdin", 7, example, direct));
  ASSERT_EQ(direct.size(), 1u);
  EXPECT_EQ(direct[0].to_string().rfind("stdin:7: line_too_long:", 0), 0u) << direct[0].to_string();
}

}  // namespace
}  // namespace retain
