// Private helpers shared by the replay sources: a lazily built random permutation (over
// random.h's Rng), and the
// buffer writer that keeps slot numbers dense and the counters current.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "retain/random.h"
#include "retain/replay.h"
#include "retain/sqlite.h"

namespace retain::detail {

using retain::derive_seed;
using retain::Rng;
using retain::shuffle;

// A random permutation of [0, size), produced one element at a time (sparse Fisher–Yates):
// memory and time O(elements drawn), whatever `size` is.
class LazyPermutation {
 public:
  LazyPermutation(uint64_t size, Rng& rng) : size_(size), rng_(rng) {}
  bool done() const { return next_ >= size_; }
  // The next element; precondition !done().
  uint64_t draw() {
    const uint64_t j = next_ + rng_.below(size_ - next_);
    const uint64_t picked = at(j);
    swapped_[j] = at(next_);
    swapped_.erase(next_);
    ++next_;
    return picked;
  }

 private:
  uint64_t at(uint64_t i) const {
    const auto it = swapped_.find(i);
    return it == swapped_.end() ? i : it->second;
  }
  uint64_t size_;
  uint64_t next_ = 0;
  Rng& rng_;
  std::unordered_map<uint64_t, uint64_t> swapped_;
};

// An example ready to store: what the buffer derives from it once.
using PreparedRow = ReplayRow;

// The elements of `items` one by one, as the buffer's streaming writers take them (false at the
// end). `items` must outlive the returned function.
template <typename T>
std::function<bool(T&)> vector_stream(const std::vector<T>& items) {
  return [&items, i = size_t{0}](T& out) mutable {
    if (i >= items.size()) return false;
    out = items[i++];
    return true;
  };
}
PreparedRow prepare_row(const ChatExample& example);

// The only writer of the buffer's tables: rows in replay_examples with their dense slot and
// topic_slot numbers, and the counters in replay_state, replay_topics and replay_topic_sizes. Rows
// are written at once, one statement each; counters are kept in memory for the topics touched and
// written by flush(), which must run before anything reads them (eviction, commit). Use inside one
// write transaction; a rollback discards everything together.
class BufferWriter {
 public:
  explicit BufferWriter(Database& db);
  // Inserts a row unless one with the same hash is stored. True when the row is new. `id` and
  // `added_at` (restoring a row as it was) default to a new id and now; `id` must be free.
  bool insert(const std::string& hash, const std::string& topic, const std::string& source,
              int64_t tokens, const std::string& json, std::optional<int64_t> id = std::nullopt,
              std::optional<int64_t> added_at = std::nullopt);
  bool insert(const PreparedRow& row, const std::string& source) {
    return insert(std::string(row.hash.begin(), row.hash.end()), row.topic, source, row.tokens,
                  row.json);
  }
  // Deletes row `id`; the rows holding the last slot and the topic's last topic_slot move into
  // the freed numbers. False when there is no such row.
  bool erase(int64_t id);
  void flush();
  int64_t size() const { return size_; }

 private:
  struct TouchedTopic {
    int64_t stored = 0;  // count in replay_topics (0: no row)
    int64_t count = 0;   // count now
  };
  TouchedTopic& topic(const std::string& name);
  Database& db_;
  Statement insert_, erase_, move_slot_, move_topic_slot_, topic_count_;
  int64_t size_ = 0, topics_ = 0, tokens_ = 0, json_bytes_ = 0, now_ = 0;
  std::map<std::string, TouchedTopic> touched_;  // ordered: topic_no assignment is deterministic
};

// Column list matching read_stored().
inline constexpr const char* kStoredColumns = "id, topic, source, added_at, tokens, json";
StoredExample read_stored(const Statement& s);

int64_t unix_now();

// Yields the examples of `paths` one at a time; a line that became invalid since validation
// throws DataError (rolling the caller's transaction back).
std::function<bool(ChatExample&)> file_stream(const std::vector<std::string>& paths);

}  // namespace retain::detail
