// The replay buffer's staging (deferred commit), export and statistics (see replay.h).
#include "retain/replay.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "replay_internal.h"
#include "retain/errors.h"
#include "retain/fileio.h"

namespace retain {
namespace {

// Stores the rows `next` yields under `stage`, in one transaction.
int64_t stage_prepared(Database& db, const std::string& stage, const std::function<bool(ReplayRow&)>& next,
                       const AddOptions& options) {
  Transaction txn(db);
  auto ins = db.prepare(
      "INSERT INTO replay_staged (stage, hash, topic, source, tokens, staged_at, json) "
      "VALUES (?, ?, ?, ?, ?, ?, ?)");
  const int64_t now = detail::unix_now();
  int64_t count = 0;
  ReplayRow row;
  while (next(row)) {
    ins.bind(1, stage).bind_blob(2, row.hash.data(), row.hash.size()).bind(3, row.topic)
        .bind(4, options.source).bind(5, row.tokens).bind(6, now).bind(7, row.json).run();
    ++count;
    if (options.on_row) options.on_row(count);
  }
  txn.commit();
  return count;
}

// Stores the chats `next` yields under `stage`.
int64_t stage_stream(Database& db, const std::string& stage,
                     const std::function<bool(ChatExample&)>& next, const AddOptions& options) {
  ChatExample example;
  return stage_prepared(
      db, stage,
      [&](ReplayRow& row) {
        if (!next(example)) return false;
        row = detail::prepare_row(example);
        return true;
      },
      options);
}

}  // namespace

int64_t ReplayBuffer::stage_rows(const std::string& stage, const std::vector<ReplayRow>& rows,
                                 const AddOptions& options) {
  return stage_prepared(db_, stage, detail::vector_stream(rows), options);
}

int64_t ReplayBuffer::export_jsonl(const std::string& path) {
  int64_t count = 0;
  write_file_atomic_streamed(path, [&](const std::function<void(const std::string&)>& write) {
    Transaction txn(db_, Transaction::Mode::kRead);
    auto s = db_.prepare("SELECT json FROM replay_examples ORDER BY id");
    while (s.step()) {
      write(s.column_text(0) + "\n");
      ++count;
    }
    txn.commit();
  });
  return count;
}

BufferStats ReplayBuffer::stats(int64_t top_topics) {
  namespace fs = std::filesystem;
  BufferStats st;
  Transaction txn(db_, Transaction::Mode::kRead);
  {
    auto s = db_.prepare("SELECT size, max_size, topics, tokens, json_bytes FROM replay_state");
    if (s.step()) {
      st.size = s.column_int(0);
      st.max_size = s.column_int(1);
      st.topics = s.column_int(2);
      st.tokens = s.column_int(3);
      st.json_bytes = s.column_int(4);
    }
  }
  auto topics = db_.prepare(
      "SELECT topic, count FROM replay_topics ORDER BY count DESC, topic LIMIT ?");
  topics.bind(1, top_topics > 0 ? top_topics : int64_t{-1});
  while (topics.step()) st.per_topic.emplace_back(topics.column_text(0), topics.column_int(1));
  auto sources = db_.prepare(
      "SELECT source, count(*) FROM replay_examples GROUP BY source ORDER BY source");
  while (sources.step()) st.per_source.emplace_back(sources.column_text(0), sources.column_int(1));
  st.staged = db_.query_int("SELECT count(*) FROM replay_staged");
  txn.commit();
  std::error_code ec;
  for (const std::string& file : {db_.path(), db_.path() + "-wal"}) {
    const auto bytes = fs::file_size(file, ec);
    if (!ec) st.db_bytes += static_cast<int64_t>(bytes);
  }
  return st;
}

nlohmann::json BufferStats::to_json() const {
  nlohmann::json topics = nlohmann::json::array(), sources = nlohmann::json::array();
  for (const auto& [topic, count] : per_topic) topics.push_back({{"topic", topic}, {"count", count}});
  for (const auto& [source, count] : per_source) sources.push_back({{"source", source}, {"count", count}});
  return {{"size", size},       {"max_size", max_size},     {"topics", this->topics},
          {"tokens", tokens},   {"json_bytes", json_bytes}, {"db_bytes", db_bytes},
          {"staged", staged},   {"per_topic", topics},      {"per_source", sources}};
}

// ---- staging -------------------------------------------------------------------------------

int64_t ReplayBuffer::stage_files(const std::string& stage, const std::vector<std::string>& paths,
                                  const AddOptions& options) {
  validate_chat_files(paths);
  return stage_stream(db_, stage, detail::file_stream(paths), options);
}

int64_t ReplayBuffer::stage(const std::string& stage, const std::vector<ChatExample>& examples,
                            const AddOptions& options) {
  return stage_stream(db_, stage, detail::vector_stream(examples), options);
}

AddResult ReplayBuffer::commit_stage(const std::string& stage) {
  AddResult result;
  Transaction txn(db_);
  detail::BufferWriter writer(db_);
  auto s = db_.prepare(
      "SELECT hash, topic, source, tokens, json FROM replay_staged WHERE stage = ? ORDER BY seq");
  s.bind(1, stage);
  while (s.step()) {
    ++result.read;
    if (writer.insert(s.column_blob(0), s.column_text(1), s.column_text(2), s.column_int(3),
                        s.column_text(4))) {
      ++result.added;
    }
  }
  writer.flush();
  db_.prepare("DELETE FROM replay_staged WHERE stage = ?").bind(1, stage).run();
  result.duplicates = result.read - result.added;
  result.evicted = evict_to(max_size(), stage);
  result.size = size();
  txn.commit();
  return result;
}

UndoResult ReplayBuffer::undo_commit(const std::string& stage, const std::string& source) {
  UndoResult result;
  Transaction txn(db_);
  result.removed = remove_source(source);
  detail::BufferWriter writer(db_);
  auto evicted = db_.prepare(
      "SELECT id, hash, topic, source, added_at, tokens, json FROM replay_evicted WHERE stage = ? ORDER BY seq");
  auto taken = db_.prepare("SELECT 1 FROM replay_examples WHERE id = ?");
  evicted.bind(1, stage);
  while (evicted.step()) {
    const int64_t id = evicted.column_int(0);
    const bool free = !taken.bind(1, id).step();
    taken.reset();
    if (writer.insert(evicted.column_blob(1), evicted.column_text(2), evicted.column_text(3), evicted.column_int(5),
                      evicted.column_text(6), free ? std::optional<int64_t>(id) : std::nullopt,
                      evicted.column_int(4)))
      ++result.restored;
  }
  writer.flush();
  db_.prepare("DELETE FROM replay_evicted WHERE stage = ?").bind(1, stage).run();
  evict_to(max_size());  // examples added by hand since the commit may leave too many
  txn.commit();
  return result;
}

int64_t ReplayBuffer::discard_stage(const std::string& stage) {
  Transaction txn(db_);
  db_.prepare("DELETE FROM replay_staged WHERE stage = ?").bind(1, stage).run();
  const int64_t removed = db_.changes();
  txn.commit();
  return removed;
}

int64_t ReplayBuffer::staged_count(const std::string& stage) {
  auto s = db_.prepare("SELECT count(*) FROM replay_staged WHERE stage = ?");
  s.bind(1, stage);
  return s.step() ? s.column_int(0) : 0;
}

std::vector<std::string> ReplayBuffer::stages() {
  std::vector<std::string> out;
  auto s = db_.prepare("SELECT DISTINCT stage FROM replay_staged ORDER BY stage");
  while (s.step()) out.push_back(s.column_text(0));
  return out;
}

}  // namespace retain
