// The replay buffer's writer (see replay_internal.h): one statement per inserted or deleted row,
// and one statement per touched topic and per changed histogram level at flush. Keeping the
// counters here instead of in SQL triggers avoids a statement journal and several extra writes per
// row, which made adds several times slower.
#include "replay_internal.h"

#include "retain/errors.h"

namespace retain::detail {

BufferWriter::BufferWriter(Database& db)
    : db_(db),
      insert_(db,
              "INSERT INTO replay_examples (hash, topic, source, added_at, tokens, json, slot, "
              "topic_slot, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING"),
      erase_(db,
             "DELETE FROM replay_examples WHERE id = ? "
             "RETURNING slot, topic, topic_slot, tokens, length(CAST(json AS BLOB))"),
      move_slot_(db, "UPDATE replay_examples SET slot = ? WHERE slot = ?"),
      move_topic_slot_(db, "UPDATE replay_examples SET topic_slot = ? WHERE topic = ? AND topic_slot = ?"),
      topic_count_(db, "SELECT count FROM replay_topics WHERE topic = ?"),
      now_(unix_now()) {
  auto s = db.prepare("SELECT size, topics, tokens, json_bytes FROM replay_state");
  if (!s.step()) throw RegistryError(db.path() + ": replay_state is empty");
  size_ = s.column_int(0);
  topics_ = s.column_int(1);
  tokens_ = s.column_int(2);
  json_bytes_ = s.column_int(3);
}

BufferWriter::TouchedTopic& BufferWriter::topic(const std::string& name) {
  auto it = touched_.find(name);
  if (it != touched_.end()) return it->second;
  TouchedTopic t;
  if (topic_count_.bind(1, name).step()) t.stored = t.count = topic_count_.column_int(0);
  topic_count_.reset();
  return touched_.emplace(name, t).first->second;
}

bool BufferWriter::insert(const std::string& hash, const std::string& topic_name,
                          const std::string& source, int64_t tokens, const std::string& json,
                          std::optional<int64_t> id, std::optional<int64_t> added_at) {
  TouchedTopic& t = topic(topic_name);
  insert_.bind_blob(1, hash.data(), hash.size())
      .bind(2, topic_name)
      .bind(3, source)
      .bind(4, added_at.value_or(now_))
      .bind(5, tokens)
      .bind(6, json)
      .bind(7, size_)
      .bind(8, t.count);
  if (id) insert_.bind(9, *id);
  else insert_.bind_null(9);  // the next rowid
  insert_.run();
  if (db_.changes() != 1) return false;  // the hash is already stored
  ++size_;
  ++t.count;
  tokens_ += tokens;
  json_bytes_ += static_cast<int64_t>(json.size());
  return true;
}

bool BufferWriter::erase(int64_t id) {
  if (!erase_.bind(1, id).step()) {
    erase_.reset();
    return false;
  }
  const int64_t slot = erase_.column_int(0);
  const std::string topic_name = erase_.column_text(1);
  const int64_t topic_slot = erase_.column_int(2);
  tokens_ -= erase_.column_int(3);
  json_bytes_ -= erase_.column_int(4);
  while (erase_.step()) {
  }
  erase_.reset();
  // Swap-remove: the row numbered last takes the freed number, so numbers stay dense.
  --size_;
  if (slot != size_) move_slot_.bind(1, slot).bind(2, size_).run();
  TouchedTopic& t = topic(topic_name);
  --t.count;
  if (topic_slot != t.count) {
    move_topic_slot_.bind(1, topic_slot).bind(2, topic_name).bind(3, t.count).run();
  }
  return true;
}

void BufferWriter::flush() {
  std::map<int64_t, int64_t> levels;  // histogram change: count → topics
  auto remove = db_.prepare("DELETE FROM replay_topics WHERE topic = ? RETURNING topic_no");
  auto renumber = db_.prepare("UPDATE replay_topics SET topic_no = ? WHERE topic_no = ?");
  auto add = db_.prepare("INSERT INTO replay_topics (topic, count, topic_no) VALUES (?, ?, ?)");
  auto update = db_.prepare("UPDATE replay_topics SET count = ? WHERE topic = ?");
  // Vanished topics first, so that topic numbers stay dense: the last number fills the hole.
  for (const auto& [name, t] : touched_) {
    if (t.stored == 0 || t.count != 0) continue;
    if (!remove.bind(1, name).step()) throw RegistryError(db_.path() + ": replay topic vanished");
    const int64_t freed = remove.column_int(0);
    while (remove.step()) {
    }
    remove.reset();
    --topics_;
    if (freed != topics_) renumber.bind(1, freed).bind(2, topics_).run();
    --levels[t.stored];
  }
  for (const auto& [name, t] : touched_) {
    if (t.count == t.stored || t.count == 0) continue;
    if (t.stored == 0) {
      add.bind(1, name).bind(2, t.count).bind(3, topics_++).run();
    } else {
      update.bind(1, t.count).bind(2, name).run();
      --levels[t.stored];
    }
    ++levels[t.count];
  }
  auto level_add = db_.prepare(
      "INSERT INTO replay_topic_sizes (count, topics) VALUES (?1, ?2) "
      "ON CONFLICT (count) DO UPDATE SET topics = topics + ?2");
  auto level_drop = db_.prepare("DELETE FROM replay_topic_sizes WHERE count = ? AND topics = 0");
  for (const auto& [count, delta] : levels) {
    if (delta == 0) continue;
    level_add.bind(1, count).bind(2, delta).run();
    if (delta < 0) level_drop.bind(1, count).run();
  }
  db_.prepare("UPDATE replay_state SET size = ?, topics = ?, tokens = ?, json_bytes = ?")
      .bind(1, size_).bind(2, topics_).bind(3, tokens_).bind(4, json_bytes_)
      .run();
  touched_.clear();
}

}  // namespace retain::detail
