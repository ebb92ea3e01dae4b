// The replay buffer: topic and hash of an example, add (validate, insert, evict in one
// transaction), diversity-preserving eviction and removal. Row writes go through BufferWriter
// (replay_writer.cpp); staging, export and statistics are in replay_stage.cpp, sampling in
// replay_sample.cpp, the training mix in replay_mix.cpp.
#include "retain/replay.h"

#include <algorithm>
#include <chrono>
#include <sstream>

#include "replay_internal.h"
#include "retain/errors.h"
#include "retain/log.h"
#include "retain/tokenizer.h"

namespace retain {
namespace detail {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

PreparedRow prepare_row(const ChatExample& example) { return replay_row(example); }

}  // namespace detail

namespace detail {

StoredExample read_stored(const Statement& s) {
  StoredExample e;
  e.id = s.column_int(0);
  e.topic = s.column_text(1);
  e.source = s.column_text(2);
  e.added_at = s.column_int(3);
  e.tokens = s.column_int(4);
  e.json = s.column_text(5);
  return e;
}

std::function<bool(ChatExample&)> file_stream(const std::vector<std::string>& paths) {
  auto index = std::make_shared<size_t>(0);
  auto reader = std::make_shared<std::unique_ptr<ChatReader>>();
  return [=](ChatExample& out) {
    std::vector<DataIssue> issues;
    for (;;) {
      if (!*reader) {
        if (*index >= paths.size()) return false;
        *reader = std::make_unique<ChatReader>(paths[(*index)++]);
      }
      const bool got = (*reader)->next(out, issues);
      if (!issues.empty()) throw DataError(issues.front().to_string() + " (file changed while adding)");
      if (got) return true;
      reader->reset();
    }
  };
}

}  // namespace detail

namespace {

int64_t state_value(Database& db, const char* column) {
  return db.query_int(std::string("SELECT ") + column + " FROM replay_state");
}

}  // namespace

// ---- buffer --------------------------------------------------------------------------------

ReplayBuffer::ReplayBuffer(Database& db) : db_(db) {}

int64_t ReplayBuffer::size() { return state_value(db_, "size"); }
int64_t ReplayBuffer::max_size() { return state_value(db_, "max_size"); }

int64_t ReplayBuffer::set_max_size(int64_t max_size) {
  if (max_size <= 0) throw ConfigError("replay max_size must be > 0, got " + std::to_string(max_size));
  Transaction txn(db_);
  db_.prepare("UPDATE replay_state SET max_size = ?").bind(1, max_size).run();
  const int64_t evicted = evict_to(max_size);
  txn.commit();
  return evicted;
}

AddResult ReplayBuffer::add_files(const std::vector<std::string>& paths, const AddOptions& options) {
  validate_chat_files(paths);
  return add_stream(detail::file_stream(paths), options);
}

AddResult ReplayBuffer::add(const std::vector<ChatExample>& examples, const AddOptions& options) {
  return add_stream(detail::vector_stream(examples), options);
}

AddResult ReplayBuffer::add_stream(const std::function<bool(ChatExample&)>& next,
                                   const AddOptions& options) {
  ChatExample example;
  return add_prepared(
      [&](ReplayRow& row) {
        if (!next(example)) return false;
        row = detail::prepare_row(example);
        return true;
      },
      options);
}

AddResult ReplayBuffer::add_rows(const std::vector<ReplayRow>& rows, const AddOptions& options) {
  return add_prepared(detail::vector_stream(rows), options);
}

AddResult ReplayBuffer::add_prepared(const std::function<bool(ReplayRow&)>& next, const AddOptions& options) {
  AddResult result;
  Transaction txn(db_);
  detail::BufferWriter writer(db_);
  ReplayRow row;
  while (next(row)) {
    ++result.read;
    if (writer.insert(row, options.source)) ++result.added;
    if (options.on_row) options.on_row(result.read);
  }
  writer.flush();
  result.duplicates = result.read - result.added;
  result.evicted = evict_to(max_size());
  result.size = size();
  txn.commit();
  return result;
}

// Keeps the round-robin share: lower the largest topics to a common level L (some keep L + 1)
// so that exactly max_size rows remain; topics at or below L are not touched. Within a topic the
// oldest rows go first. Reads one histogram level per distinct count above L and one row per
// topic that loses rows: O(evicted · log size). Runs inside the caller's transaction.
int64_t ReplayBuffer::evict_to(int64_t max_size, const std::string& journal) {
  const int64_t excess = size() - max_size;
  if (excess <= 0) return 0;
  // Walk count levels downwards until lowering the K walked topics to the next level would free
  // at least `excess` rows. S = their total.
  int64_t walked = 0, total = 0, lowest = 0;
  {
    auto levels = db_.prepare("SELECT count, topics FROM replay_topic_sizes ORDER BY count DESC");
    while (levels.step()) {
      const int64_t count = levels.column_int(0), topics = levels.column_int(1);
      if (walked > 0 && total - walked * count >= excess) break;
      walked += topics;
      total += topics * count;
      lowest = count;
    }
  }
  const int64_t keep = total - excess;
  const int64_t level = keep / walked;        // every walked topic keeps level or level + 1
  int64_t extra = keep - level * walked;      // how many keep level + 1
  std::vector<std::pair<std::string, int64_t>> cuts;  // topic, how many of its oldest to delete
  if (lowest == level + 1) {
    // Topics already at level + 1 take the extra places first: they then lose nothing.
    auto count_stmt = db_.prepare("SELECT topics FROM replay_topic_sizes WHERE count = ?");
    count_stmt.bind(1, level + 1);
    const int64_t topics = count_stmt.step() ? count_stmt.column_int(0) : 0;
    const int64_t keeping = std::min(extra, topics);
    extra -= keeping;
    auto s = db_.prepare("SELECT topic FROM replay_topics WHERE count = ? ORDER BY topic LIMIT ?");
    s.bind(1, level + 1).bind(2, topics - keeping);
    while (s.step()) cuts.emplace_back(s.column_text(0), 1);
  }
  {
    auto s = db_.prepare(
        "SELECT topic, count FROM replay_topics WHERE count > ? ORDER BY count DESC, topic DESC");
    s.bind(1, level + 1);
    while (s.step()) {
      const int64_t target = level + (extra > 0 ? 1 : 0);
      if (extra > 0) --extra;
      cuts.emplace_back(s.column_text(0), s.column_int(1) - target);
    }
  }
  auto oldest = db_.prepare("SELECT id FROM replay_examples WHERE topic = ? ORDER BY id LIMIT ?");
  auto journal_row = db_.prepare(
      "INSERT INTO replay_evicted (stage, id, hash, topic, source, added_at, tokens, json) "
      "SELECT ?, id, hash, topic, source, added_at, tokens, json FROM replay_examples WHERE id = ?");
  detail::BufferWriter writer(db_);
  std::vector<int64_t> ids;
  int64_t evicted = 0;
  for (const auto& [topic, rows] : cuts) {
    ids.clear();
    oldest.bind(1, topic).bind(2, rows);
    while (oldest.step()) ids.push_back(oldest.column_int(0));
    oldest.reset();
    for (const int64_t id : ids) {
      if (!journal.empty()) journal_row.bind(1, journal).bind(2, id).run();
      evicted += writer.erase(id) ? 1 : 0;
    }
  }
  writer.flush();
  if (evicted != excess) {
    throw RegistryError("replay eviction removed " + std::to_string(evicted) + " rows, expected " +
                        std::to_string(excess) + " (inconsistent replay tables in " + db_.path() + ")");
  }
  log()->info("replay buffer over max_size {}: evicted {} examples from {} topics", max_size,
              evicted, cuts.size());
  return evicted;
}

int64_t ReplayBuffer::remove_source(const std::string& source) {
  Transaction txn(db_);
  detail::BufferWriter writer(db_);
  // In chunks, so that memory stays bounded whatever the source added.
  auto chunk = db_.prepare("SELECT id FROM replay_examples WHERE source = ? LIMIT 10000");
  chunk.bind(1, source);
  std::vector<int64_t> ids;
  int64_t removed = 0;
  do {
    ids.clear();
    while (chunk.step()) ids.push_back(chunk.column_int(0));
    chunk.reset();
    for (const int64_t id : ids) removed += writer.erase(id) ? 1 : 0;
  } while (!ids.empty());
  writer.flush();
  txn.commit();
  return removed;
}

}  // namespace retain
