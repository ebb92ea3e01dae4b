// The workspace database schema, as an append-only list of migrations (see workspace.h and
// docs/workspace.md, which documents every table). Migration i takes schema_version i to i + 1.
//
// Replay buffer (migration 1). Every count the buffer needs is stored and kept up to date by the
// buffer's writer (src/replay_writer.cpp; the only code that writes these tables), so no operation
// has to count or scan the examples table:
//   replay_state        one row: size, topic count, token and JSON byte totals, max_size
//   replay_examples     one row per example; `slot` numbers all rows densely 0..size-1 and
//                       `topic_slot` numbers a topic's rows densely 0..count-1, so a uniform random
//                       row (of the buffer, or of a topic) is one index lookup. A delete moves the
//                       row holding the last number into the freed one (swap-remove).
//   replay_topics       per topic: count, and `topic_no` numbering topics densely 0..topics-1
//   replay_topic_sizes  histogram: how many topics have each count (for eviction and sampling
//                       levels without reading every topic)
//   replay_staged       examples waiting for their round to be promoted, keyed by stage id
//   replay_evicted      (migration 5) rows a committed stage evicted, as they were stored, keyed by
//                       the stage: what a rollback of that stage's version puts back
//
// Registry (migration 2). Written only by src/registry*.cpp:
//   registry_state      one row: next_version, a counter that only grows (numbers never reused)
//   versions            one row per version; a partial unique index on status lets at most one
//                       row be 'production', so the database itself refuses a second one
//   version_scores      per version, test set and metric: value and the test data's hash
//   registry_history    import / promote / rollback, in order (rollback reads it as a stack)
//   runs                one row per round, including crashed and rejected ones
#include "retain/workspace.h"

namespace retain {

const std::vector<std::string>& schema_migrations() {
  static const std::vector<std::string> kMigrations = {
      // 0 -> 1: the replay buffer.
      R"sql(
CREATE TABLE replay_state (
  id INTEGER PRIMARY KEY CHECK (id = 0),
  size INTEGER NOT NULL, topics INTEGER NOT NULL, tokens INTEGER NOT NULL,
  json_bytes INTEGER NOT NULL, max_size INTEGER NOT NULL CHECK (max_size > 0));
INSERT INTO replay_state VALUES (0, 0, 0, 0, 0, 10000);

CREATE TABLE replay_examples (
  id INTEGER PRIMARY KEY,
  hash BLOB NOT NULL UNIQUE,
  topic TEXT NOT NULL,
  source TEXT NOT NULL,
  added_at INTEGER NOT NULL,
  tokens INTEGER NOT NULL,
  slot INTEGER NOT NULL UNIQUE,
  topic_slot INTEGER NOT NULL,
  json TEXT NOT NULL);
CREATE UNIQUE INDEX replay_examples_topic_slot ON replay_examples (topic, topic_slot);
CREATE INDEX replay_examples_topic_age ON replay_examples (topic, id);
CREATE INDEX replay_examples_source ON replay_examples (source);

CREATE TABLE replay_topics (
  topic TEXT PRIMARY KEY,
  count INTEGER NOT NULL,
  topic_no INTEGER NOT NULL UNIQUE) WITHOUT ROWID;
CREATE INDEX replay_topics_count ON replay_topics (count, topic);

CREATE TABLE replay_topic_sizes (count INTEGER PRIMARY KEY, topics INTEGER NOT NULL);

CREATE TABLE replay_staged (
  seq INTEGER PRIMARY KEY,
  stage TEXT NOT NULL,
  hash BLOB NOT NULL,
  topic TEXT NOT NULL,
  source TEXT NOT NULL,
  tokens INTEGER NOT NULL,
  staged_at INTEGER NOT NULL,
  json TEXT NOT NULL);
CREATE INDEX replay_staged_stage ON replay_staged (stage, seq);

)sql",
      // 1 -> 2: the model registry.
      R"sql(
CREATE TABLE registry_state (
  id INTEGER PRIMARY KEY CHECK (id = 0),
  next_version INTEGER NOT NULL CHECK (next_version >= 1));
INSERT INTO registry_state VALUES (0, 1);

CREATE TABLE versions (
  version INTEGER PRIMARY KEY CHECK (version >= 1),
  model_id TEXT NOT NULL UNIQUE
    CHECK (length(model_id) BETWEEN 1 AND 128 AND model_id NOT GLOB '*[^A-Za-z0-9._-]*'
           AND model_id NOT IN ('.', '..')),
  parent_model_id TEXT REFERENCES versions (model_id),
  created_at INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('candidate', 'production', 'retired', 'rejected')),
  run_id TEXT NOT NULL DEFAULT '',
  model_dir TEXT NOT NULL,
  settings TEXT NOT NULL DEFAULT '{}',
  data_hashes TEXT NOT NULL DEFAULT '{}',
  gate TEXT);
CREATE UNIQUE INDEX versions_one_production ON versions (status) WHERE status = 'production';
CREATE INDEX versions_parent ON versions (parent_model_id);

CREATE TABLE version_scores (
  model_id TEXT NOT NULL REFERENCES versions (model_id),
  test_set TEXT NOT NULL,
  metric TEXT NOT NULL,
  value REAL NOT NULL,
  data_hash TEXT NOT NULL,
  PRIMARY KEY (model_id, test_set, metric)) WITHOUT ROWID;

CREATE TABLE registry_history (
  seq INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  action TEXT NOT NULL CHECK (action IN ('import', 'promote', 'rollback')),
  model_id TEXT NOT NULL REFERENCES versions (model_id),
  previous_model_id TEXT REFERENCES versions (model_id),
  note TEXT NOT NULL DEFAULT '');

CREATE TABLE runs (
  run_id TEXT PRIMARY KEY,
  started_at INTEGER NOT NULL,
  finished_at INTEGER,
  status TEXT NOT NULL CHECK (status IN ('running', 'promoted', 'candidate', 'rejected', 'failed',
                                         'interrupted')),
  base_model_id TEXT,
  model_id TEXT,
  settings TEXT NOT NULL DEFAULT '{}') WITHOUT ROWID;
CREATE INDEX runs_status ON runs (status);

)sql",
      // 2 -> 3: LoRA versions record the full version their adapter applies to.
      R"sql(
ALTER TABLE versions ADD COLUMN adapter_base_model_id TEXT REFERENCES versions (model_id);
CREATE INDEX versions_adapter_base ON versions (adapter_base_model_id);
)sql",
      // 3 -> 4: a failed run records its error.
      R"sql(
ALTER TABLE runs ADD COLUMN error TEXT;
)sql",
      // 4 -> 5: what committing a round's examples evicted, so that a rollback can put it back.
      R"sql(
CREATE TABLE replay_evicted (
  seq INTEGER PRIMARY KEY,
  stage TEXT NOT NULL,
  id INTEGER NOT NULL,
  hash BLOB NOT NULL,
  topic TEXT NOT NULL,
  source TEXT NOT NULL,
  added_at INTEGER NOT NULL,
  tokens INTEGER NOT NULL,
  json TEXT NOT NULL);
CREATE INDEX replay_evicted_stage ON replay_evicted (stage, seq);
)sql",
      // 5 -> 6: the data files of a version by name, beside data_hashes (same keys).
      R"sql(
ALTER TABLE versions ADD COLUMN data_files TEXT NOT NULL DEFAULT '{}';
)sql",
  };
  return kMigrations;
}

int64_t current_schema_version() { return static_cast<int64_t>(schema_migrations().size()); }

}  // namespace retain
