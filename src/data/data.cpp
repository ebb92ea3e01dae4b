// Chat JSONL reading and validation (see data.h).
//
// Every rule failure becomes a DataIssue that names file:line and says what was found and what was
// expected, so a person can fix the line without reading this code. Files are streamed line by
// line, so validating a large file does not need it in memory.
#include "retain/data.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "retain/config.h"
#include "retain/errors.h"
#include "retain/fileio.h"

namespace retain {
namespace {

bool is_blank(const std::string& line) {
  return line.find_first_not_of(" \t\r\n\f\v") == std::string::npos;
}

// A JSON type in words, for messages such as `content is a number`.
std::string describe_type(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::number_float: return "a number";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return "an integer";
    default: return "an unsupported value";
  }
}

// Short printable form of a value for messages; a huge value must not flood the report.
std::string preview(const nlohmann::json& value) {
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  constexpr size_t kMaxChars = 60;
  if (text.size() > kMaxChars) text = text.substr(0, kMaxChars) + "...";
  return text;
}

// nlohmann's parse errors start with "[json.exception.parse_error.101] "; the id means nothing to
// a person fixing a data file.
std::string parse_error_text(const std::string& what) {
  std::string text = what;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find("] ");
    if (close != std::string::npos) text = text.substr(close + 2);
  }
  // A JSONL line is always "line 1" to the parser; the caller names the file's line.
  const std::string kLineOne = "at line 1, column";
  const size_t at = text.find(kLineOne);
  if (at != std::string::npos) text.replace(at, kLineOne.size(), "at column");
  constexpr size_t kMaxChars = 200;
  if (text.size() > kMaxChars) text = text.substr(0, kMaxChars) + "...";
  // The text quotes raw input ("last read: '...'"), which may be invalid UTF-8 and would make
  // the issue itself unserialisable as JSON; escape everything outside printable ASCII.
  std::string printable;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f) {
      printable.push_back(c);
    } else {
      static const char* const kHex = "0123456789abcdef";
      printable += std::string("\\x") + kHex[byte >> 4] + kHex[byte & 0xf];
    }
  }
  return printable;
}

bool parse_role(const std::string& name, Role& role) {
  if (name == "system") role = Role::kSystem;
  else if (name == "user") role = Role::kUser;
  else if (name == "assistant") role = Role::kAssistant;
  else return false;
  return true;
}

// Validates message `index` (0-based) of a line; appends issues and returns false when invalid.
bool parse_message(const nlohmann::json& value, size_t index, const std::string& file,
                   int64_t line_number, ChatMessage& out, std::vector<DataIssue>& issues) {
  const std::string which = "message " + std::to_string(index + 1);
  auto fail = [&](const char* rule, const std::string& message) {
    issues.push_back({file, line_number, rule, which + " " + message});
  };
  if (!value.is_object()) {
    fail("message_not_object", "is " + describe_type(value) + "; expected an object such as "
                                   "{\"role\": \"user\", \"content\": \"...\"}");
    return false;
  }
  bool ok = true;
  bool role_known = false;
  const auto role_it = value.find("role");
  if (role_it == value.end()) {
    fail("missing_role", "has no \"role\"; expected system, user or assistant");
    ok = false;
  } else if (!role_it->is_string() || !parse_role(role_it->get<std::string>(), out.role)) {
    fail("unknown_role", "has role " + preview(*role_it) + "; expected system, user or assistant");
    ok = false;
  } else {
    role_known = true;
  }

  const auto content_it = value.find("content");
  if (content_it == value.end()) {
    fail("missing_content", "has no \"content\"; expected a string");
    ok = false;
  } else if (!content_it->is_string()) {
    fail("content_not_string", "has content that is " + describe_type(*content_it) +
                                   "; expected a string");
    ok = false;
  } else {
    out.content = content_it->get<std::string>();
  }

  out.weight = 1;
  const auto weight_it = value.find("weight");
  if (weight_it != value.end()) {
    if (role_known && out.role != Role::kAssistant) {
      fail("weight_not_allowed", "has role \"" + std::string(role_name(out.role)) +
                                     "\" and a \"weight\"; weight is allowed on assistant "
                                     "messages only");
      ok = false;
    } else if (!weight_it->is_number_integer() ||
               (weight_it->get<int64_t>() != 0 && weight_it->get<int64_t>() != 1)) {
      // is_number_integer() is false for true/false and 1.0, which OpenAI rejects too.
      fail("invalid_weight", "has weight " + preview(*weight_it) + "; expected 0 or 1");
      ok = false;
    } else {
      out.weight = weight_it->get<int>();
    }
  }

  for (const auto& item : value.items()) {
    const std::string& key = item.key();
    if (key != "role" && key != "content" && key != "weight" && key != "name") {
      fail("unknown_message_key", "has unknown key \"" + key +
                                      "\"; expected only role, content, weight or name");
      ok = false;
    }
  }
  return ok;
}

}  // namespace

const char* role_name(Role role) {
  switch (role) {
    case Role::kSystem: return "system";
    case Role::kUser: return "user";
    case Role::kAssistant: return "assistant";
  }
  return "unknown";
}

std::string DataIssue::to_string() const {
  return file + ":" + std::to_string(line) + ": " + rule + ": " + message;
}

bool parse_chat_line(const std::string& line, const std::string& file, int64_t line_number,
                     ChatExample& out, std::vector<DataIssue>& issues) {
  auto fail = [&](const char* rule, const std::string& message) {
    issues.push_back({file, line_number, rule, message});
    return false;
  };
  if (line.size() > kMaxLineBytes) return fail(kLineTooLongRule, line_too_long_message());
  nlohmann::json value;
  try {
    value = parse_json_text(line);
  } catch (const nlohmann::json::exception& e) {  // a syntax error, or a number out of range (1e400)
    return fail("invalid_json", "line is not valid JSON: " + parse_error_text(e.what()));
  } catch (const JsonTooDeep& e) {
    return fail("too_deep", std::string("line is not valid JSON: ") + e.what() + " (retain's limit)");
  }
  if (!value.is_object()) {
    return fail("not_object", "line is " + describe_type(value) +
                                  "; expected a JSON object with a \"messages\" array");
  }
  const auto messages_it = value.find("messages");
  if (messages_it == value.end()) {
    return fail("missing_messages", "object has no \"messages\" key; expected an array of "
                                    "{\"role\", \"content\"} objects");
  }
  if (!messages_it->is_array()) {
    return fail("missing_messages", "\"messages\" is " + describe_type(*messages_it) +
                                        "; expected an array of {\"role\", \"content\"} objects");
  }
  if (messages_it->empty()) {
    return fail("empty_messages", "\"messages\" is an empty array; expected at least one "
                                  "user and one assistant message");
  }

  ChatExample example;
  bool ok = true;
  bool has_trained_assistant = false;
  example.messages.resize(messages_it->size());
  for (size_t i = 0; i < messages_it->size(); ++i) {
    ChatMessage& message = example.messages[i];
    if (!parse_message((*messages_it)[i], i, file, line_number, message, issues)) {
      ok = false;
    } else if (message.role == Role::kAssistant && message.weight == 1) {
      has_trained_assistant = true;
    }
  }
  if (!ok) return false;
  // Checked only when every message is valid: a misspelt role would otherwise also report this.
  if (!has_trained_assistant) {
    return fail("no_trained_assistant", "no assistant message with weight 1; the example would "
                                        "train nothing (add an assistant reply or set its "
                                        "weight to 1)");
  }

  example.metadata = nlohmann::json::object();
  for (const auto& item : value.items()) {
    if (item.key() != "messages") example.metadata[item.key()] = item.value();
  }
  const auto topic_it = value.find("topic");
  if (topic_it != value.end()) {
    if (!topic_it->is_string()) {
      return fail("topic_not_string", "\"topic\" is " + describe_type(*topic_it) +
                                          "; expected a string such as \"billing\"");
    }
    example.topic = topic_it->get<std::string>();
  }
  example.source_file = file;
  example.source_line = line_number;
  out = std::move(example);
  return true;
}

ChatReader::ChatReader(const std::string& path) : path_(path) {
  std::error_code ec;
  // An ifstream opens a directory without complaint on Linux and then reads nothing.
  if (std::filesystem::is_directory(path, ec)) {
    throw DataError("cannot open data file " + path + ": " + std::strerror(EISDIR));
  }
  in_.open(path, std::ios::in | std::ios::binary);
  if (!in_) throw DataError("cannot open data file " + path + ": " + std::strerror(errno));
}

bool ChatReader::next(ChatExample& out, std::vector<DataIssue>& issues) {
  std::string line;
  for (LineRead read; (read = read_line_bounded(in_, line)) != LineRead::kEnd;) {
    ++line_number_;
    if (read == LineRead::kTooLong) {
      issues.push_back({path_, line_number_, kLineTooLongRule, line_too_long_message()});
      continue;
    }
    if (is_blank(line)) continue;
    if (parse_chat_line(line, path_, line_number_, out, issues)) return true;
  }
  if (in_.bad()) {
    throw DataError("error reading data file " + path_ + " after line " +
                    std::to_string(line_number_) + ": " + std::strerror(errno));
  }
  return false;
}

std::vector<ChatExample> read_chat_file(const std::string& path) {
  ChatReader reader(path);
  std::vector<ChatExample> examples;
  std::vector<DataIssue> issues;
  // Only the first issue is reported; the rest are counted so a huge bad file stays cheap.
  DataIssue first;
  int64_t issue_count = 0;
  ChatExample example;
  for (;;) {
    const bool got = reader.next(example, issues);
    if (!issues.empty()) {
      if (issue_count == 0) first = issues.front();
      issue_count += static_cast<int64_t>(issues.size());
      issues.clear();
    }
    if (!got) break;
    if (issue_count == 0) examples.push_back(std::move(example));
  }
  if (issue_count > 0) {
    std::string message = first.to_string();
    if (issue_count > 1) {
      const int64_t more = issue_count - 1;
      message += " (and " + std::to_string(more) + (more == 1 ? " more error)" : " more errors)");
    }
    throw DataError(message);
  }
  return examples;
}

std::vector<DataIssue> scan_chat_files(const std::vector<std::string>& paths,
                                       const std::function<void(const ChatExample&)>& visit) {
  std::vector<DataIssue> issues;
  ChatExample example;
  for (const std::string& path : paths) {
    ChatReader reader(path);
    while (reader.next(example, issues)) visit(example);
  }
  return issues;
}

std::string to_jsonl(const ChatExample& example) {
  // ordered_json keeps "messages" first and role before content, as people write them.
  nlohmann::ordered_json line;
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  for (const ChatMessage& message : example.messages) {
    nlohmann::ordered_json m;
    m["role"] = role_name(message.role);
    m["content"] = message.content;
    if (message.role == Role::kAssistant && message.weight != 1) m["weight"] = message.weight;
    messages.push_back(std::move(m));
  }
  line["messages"] = std::move(messages);
  if (example.metadata.is_object()) {
    for (const auto& item : example.metadata.items()) {
      if (item.key() != "messages") line[item.key()] = item.value();
    }
  }
  // `topic` is authoritative when set; metadata may lack it for examples built in code.
  if (!example.topic.empty()) line["topic"] = example.topic;
  try {
    return line.dump();
  } catch (const nlohmann::json::type_error& e) {
    throw DataError("cannot write example from " + example.source_file + ":" +
                    std::to_string(example.source_line) + " as JSONL: " + e.what());
  }
}

void validate_chat_files(const std::vector<std::string>& paths) {
  DataIssue first;
  int64_t count = 0;
  std::vector<DataIssue> issues;
  ChatExample example;
  for (const std::string& path : paths) {
    ChatReader reader(path);
    for (;;) {
      const bool got = reader.next(example, issues);
      if (!issues.empty()) {
        if (count == 0) first = issues.front();
        count += static_cast<int64_t>(issues.size());
        issues.clear();
      }
      if (!got) break;
    }
  }
  if (count == 0) return;
  std::string message = first.to_string() + "; nothing was added";
  if (count > 1) message += " (" + std::to_string(count - 1) + " more invalid lines)";
  throw DataError(message);
}

}  // namespace retain
