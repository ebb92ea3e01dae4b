// Lines of a chat JSONL file, as every reader takes them (validate, buffer add, mix, train), each
// through the replay buffer's row, and rendered by every built-in chat template. An example that
// parses must survive to_jsonl and parse back to the same messages.
#include <sstream>

#include "fuzz_util.h"
#include "retain/chat_template.h"
#include "retain/data.h"
#include "retain/replay_row.h"

namespace {

void check_example(const retain::ChatExample& example) {
  const retain::ReplayRow row = retain::replay_row(example);
  retain::ChatExample again;
  std::vector<retain::DataIssue> issues;
  if (!retain::parse_chat_line(row.json, "row", 1, again, issues)) std::abort();
  if (retain::replay_hash(again) != row.hash) std::abort();
  for (const char* name : {"retain", "chatml", "qwen2.5", "qwen3", "llama3"}) {
    const auto chat_template = retain::make_chat_template(name);
    retain::fuzz::refuse_or_accept([&] { (void)chat_template->render(example.messages, true); });
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = retain::fuzz::bytes_of(data, size);
  const std::string path = retain::fuzz::scratch_file("data.jsonl", text);
  retain::fuzz::refuse_or_accept([&] {
    retain::ChatReader reader(path);
    retain::ChatExample example;
    std::vector<retain::DataIssue> issues;
    while (reader.next(example, issues)) check_example(example);
    for (const auto& issue : issues)
      if (issue.rule.empty() || issue.line < 1) std::abort();
  });
  return 0;
}
