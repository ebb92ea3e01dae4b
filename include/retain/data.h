// Chat data: OpenAI fine-tuning JSONL, streamed and validated.
//
// One JSON object a line: {"messages":[{"role":"system"|"user"|"assistant","content":"…",
// "weight":0|1}], "topic":"…", …}. `weight` is allowed on assistant messages only (default 1);
// `topic` and every other top-level key are kept as metadata. Blank lines are skipped.
#pragma once

#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace retain {

enum class Role { kSystem, kUser, kAssistant };

// "system" | "user" | "assistant".
const char* role_name(Role role);

struct ChatMessage {
  Role role = Role::kUser;
  std::string content;
  int weight = 1;  // 0 or 1; only meaningful on assistant messages
};

struct ChatExample {
  std::vector<ChatMessage> messages;
  std::string topic;         // "" when the line has none
  nlohmann::json metadata;   // every top-level key but "messages" (topic included); an object
  std::string source_file;   // where it was read from, for messages
  int64_t source_line = 0;   // 1-based
};

// One validation failure: file:line, the rule that failed (a stable identifier such as
// "invalid_json", "missing_messages", "unknown_role"), and a human-readable message.
struct DataIssue {
  std::string file;
  int64_t line = 0;
  std::string rule;
  std::string message;
  // "file:line: rule: message"
  std::string to_string() const;
};

// Parses and validates one line. On success fills `out` and returns true; on failure appends one
// or more issues to `issues` and returns false. Rules, after OpenAI's data-format guide:
// invalid_json (not JSON), not_object (not a JSON object), missing_messages (no "messages" or not
// an array), empty_messages, message_not_object, missing_role, missing_content, unknown_role,
// content_not_string, unknown_message_key (a key other than role/content/weight, or "name"),
// weight_not_allowed (weight on a non-assistant message), invalid_weight (not 0 or 1),
// no_trained_assistant (no assistant message with weight 1), topic_not_string ("topic" present
// but not a string).
bool parse_chat_line(const std::string& line, const std::string& file, int64_t line_number,
                     ChatExample& out, std::vector<DataIssue>& issues);

// Streams a chat JSONL file one example at a time; memory does not grow with the file.
// Throws DataError when the file cannot be opened.
class ChatReader {
 public:
  explicit ChatReader(const std::string& path);
  // Reads the next valid example into `out`. Invalid lines are appended to `issues` and skipped.
  // Returns false at the end of the file.
  bool next(ChatExample& out, std::vector<DataIssue>& issues);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ifstream in_;
  int64_t line_number_ = 0;
};

// Reads a whole file. Throws DataError naming file:line and rule of the first error (and how many
// more there are) when any line is invalid. For training sets, which must fit in memory anyway.
std::vector<ChatExample> read_chat_file(const std::string& path);

// Streams every file, calls `visit` for each valid example, and returns every issue found.
std::vector<DataIssue> scan_chat_files(const std::vector<std::string>& paths,
                                       const std::function<void(const ChatExample&)>& visit);

// Serialises an example back to one JSONL line (messages, then metadata keys).
std::string to_jsonl(const ChatExample& example);

// Streams every file and throws DataError for the first invalid line (file:line: rule: message;
// nothing was added), with how many more there are, so that a caller can check before it writes.
void validate_chat_files(const std::vector<std::string>& paths);

}  // namespace retain
