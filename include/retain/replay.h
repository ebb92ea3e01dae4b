// The replay buffer and the training mix (docs/workspace.md has the tables and the complexity).
//
// The buffer lives in the workspace database: one row per example, deduplicated by the SHA-256 of
// its canonical messages JSON, with its topic (the `topic` field, else the first five
// whitespace-separated words of the last user message), source (the version or run that added
// it), time added, token count (byte tokenizer) and JSON line. It is bounded by max_size, stored
// in the database (default 10,000) so every command and round sees the same bound. An add that
// takes it over max_size evicts in the same transaction, largest topic groups first (the kept
// counts are exactly a round-robin draw across topics, so small topics survive), and within a
// topic the oldest examples first. Every change is one transaction. add, sample and eviction cost
// O(rows involved · log size): they never scan the buffer or hold it in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "retain/data.h"
#include "retain/hash.h"
#include "retain/replay_row.h"
#include "retain/sqlite.h"

namespace retain {

inline constexpr int64_t kDefaultReplayMaxSize = 10000;

enum class SampleStrategy {
  kDiverse,       // round-robin across topics: every topic gets the same share where it can
  kUniform,       // every example equally likely
  kProportional,  // topics in proportion to their size (stratified)
};
// "diverse" | "uniform" | "proportional"; parse throws ConfigError on anything else.
const char* strategy_name(SampleStrategy strategy);
SampleStrategy parse_sample_strategy(const std::string& name);

struct StoredExample {
  int64_t id = 0;
  std::string topic, source;
  int64_t added_at = 0;  // Unix seconds
  int64_t tokens = 0;
  std::string json;  // one JSONL line (to_jsonl of the example as added)
};

struct AddOptions {
  std::string source = "manual";  // the version or run adding the examples
  // Called after each inserted (or staged) row with the count so far: progress, and tests that
  // inject a failure. An exception thrown from it rolls the whole add back.
  std::function<void(int64_t)> on_row;
};

struct AddResult {
  int64_t read = 0;        // valid examples read
  int64_t added = 0;       // new rows (read minus duplicates)
  int64_t duplicates = 0;  // already in the buffer (or repeated in the input)
  int64_t evicted = 0;     // removed to stay within max_size
  int64_t size = 0;        // buffer size afterwards
};

struct UndoResult {
  int64_t removed = 0;   // examples of the source deleted
  int64_t restored = 0;  // evicted examples put back
};

struct SampleOptions {
  int64_t n = 0;
  uint64_t seed = 1234;
  SampleStrategy strategy = SampleStrategy::kDiverse;
  int64_t per_topic_cap = 0;  // at most this many from one topic; 0 = no cap
};

struct BufferStats {
  int64_t size = 0, max_size = 0, topics = 0, tokens = 0;
  int64_t json_bytes = 0;  // bytes of the stored JSON lines
  int64_t db_bytes = 0;    // retain.db plus its WAL on disk (the whole workspace database)
  int64_t staged = 0;      // examples staged, not yet committed
  std::vector<std::pair<std::string, int64_t>> per_topic;   // largest first (see stats())
  std::vector<std::pair<std::string, int64_t>> per_source;  // by name
  nlohmann::json to_json() const;
};

class ReplayBuffer {
 public:
  // `db` is a workspace database (Workspace::db()); it must outlive the buffer.
  explicit ReplayBuffer(Database& db);

  int64_t size();
  int64_t max_size();
  // Sets the bound (> 0, else ConfigError) and evicts down to it; one transaction. Returns the
  // number evicted.
  int64_t set_max_size(int64_t max_size);

  // Validates every line of every file first (streamed); any invalid line throws DataError naming
  // file:line before a row is written. Then inserts all of them and evicts, in one transaction.
  AddResult add_files(const std::vector<std::string>& paths, const AddOptions& options);
  // Inserts what `next` yields (until it returns false) and evicts, in one transaction; memory does
  // not grow with the count. The bulk path.
  AddResult add_stream(const std::function<bool(ChatExample&)>& next, const AddOptions& options);
  AddResult add(const std::vector<ChatExample>& examples, const AddOptions& options);
  // Rows of any kind (feature_replay_rows), in one transaction, deduplicated and evicted likewise.
  AddResult add_rows(const std::vector<ReplayRow>& rows, const AddOptions& options);

  // min(n, what the cap allows) distinct examples, in random order. The same seed on the same
  // buffer gives the same examples. Cost O(n log size) (uniform with a cap may look at more rows:
  // it skips rows of topics already at the cap). n < 0 throws ConfigError.
  std::vector<StoredExample> sample(const SampleOptions& options);

  // Deletes every example whose source is `source`; one transaction. Returns how many.
  int64_t remove_source(const std::string& source);
  // Writes every example as JSONL (oldest first) to `path` atomically, streaming. Returns the count.
  int64_t export_jsonl(const std::string& path);
  // Size, totals, per-source counts, and the `top_topics` largest topics (0 = every topic). The
  // per-source counts read the source index: O(size); everything else O(topics listed).
  BufferStats stats(int64_t top_topics);

  // Deferred commit (a round's new data enters the buffer only when its version is promoted).
  // stage_* validate like add and store the examples under `stage` (one transaction) without
  // touching the buffer; commit_stage moves them into the buffer (dedup + eviction) and
  // discard_stage drops them, each one transaction — or part of the caller's open transaction.
  int64_t stage_files(const std::string& stage, const std::vector<std::string>& paths,
                      const AddOptions& options);
  int64_t stage(const std::string& stage, const std::vector<ChatExample>& examples,
                const AddOptions& options);
  int64_t stage_rows(const std::string& stage, const std::vector<ReplayRow>& rows, const AddOptions& options);
  // commit_stage also keeps the rows its eviction removed (replay_evicted), for undo_commit.
  AddResult commit_stage(const std::string& stage);
  // Undoes commit_stage(stage) whose rows came from `source` (a round's version): deletes every
  // example of `source` and puts back the rows that commit evicted, with their ids and times, then
  // evicts down to max_size if the buffer changed since; one transaction, or part of the caller's.
  UndoResult undo_commit(const std::string& stage, const std::string& source);
  int64_t discard_stage(const std::string& stage);
  int64_t staged_count(const std::string& stage);
  // The ids of every stage holding examples, sorted.
  std::vector<std::string> stages();

 private:
  // Evicts down to max_size; with a `journal` stage, keeps the evicted rows under it.
  int64_t evict_to(int64_t max_size, const std::string& journal = "");
  AddResult add_prepared(const std::function<bool(ReplayRow&)>& next, const AddOptions& options);
  Database& db_;
};

// The training mix (design.md, "One round"): for n_new new examples and replay ratio r in [0, 1),
// replay_count = floor(n_new · r / (1 − r)) (with a 1e-9 relative tolerance, so that decimal
// ratios such as 0.6 give the exact integer). Throws ConfigError when r < 0, r ≥ 1 or not finite.
int64_t replay_count(int64_t n_new, double replay_ratio);

struct MixOptions {
  double replay_ratio = 0.3;
  uint64_t seed = 1234;
  SampleStrategy strategy = SampleStrategy::kDiverse;
  int64_t per_topic_cap = 0;
  bool commit = true;            // add the new examples to the buffer afterwards
  std::string source = "mix";    // their source when committed
};

struct MixReport {
  int64_t new_examples = 0, replay_examples = 0, total = 0;
  int64_t replay_requested = 0;     // replay_count(new_examples, r)
  double actual_replay_ratio = 0;   // replay_examples / total (0 when empty)
  AddResult committed;              // what adding the new examples did (zeros with commit=false)
  nlohmann::json to_json() const;
};

// Reads the new examples (read_chat_file: DataError on any bad line), samples replay_count from
// the buffer (before adding, so no new example replays itself), shuffles everything with the
// seed, writes JSONL to `out_path` atomically, then adds the new examples unless commit is false.
// Too few in the buffer: all of them, with a warning.
MixReport make_training_mix(ReplayBuffer& buffer, const std::vector<std::string>& new_files,
                            const std::string& out_path, const MixOptions& options);

}  // namespace retain
