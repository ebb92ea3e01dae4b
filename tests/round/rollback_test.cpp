// Tests of rollback_production (registry.h): the registry and the replay buffer go back together:
// the retired version's examples leave the buffer and what its promotion evicted comes back, with
// the same ids, in one transaction.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "replay_test_util.h"
#include "retain/errors.h"
#include "retain/registry.h"
#include "retain/replay.h"
#include "retain/workspace.h"
#include "test_util.h"

namespace retain {
namespace {

using replay_test::expect_consistent;
using replay_test::make_examples;

// Every stored example as "id source json", in id order.
std::vector<std::string> buffer_rows(Database& db) {
  std::vector<std::string> out;
  auto s = db.prepare("SELECT id, source, json FROM replay_examples ORDER BY id");
  while (s.step()) out.push_back(std::to_string(s.column_int(0)) + " " + s.column_text(1) + " " + s.column_text(2));
  return out;
}

// A version `id` registered as production with the round `run_id` committing its staged
// examples in the same transaction, as a promoted round does.
void promote_round(Workspace& ws, const std::string& id, const std::string& parent, const std::string& run_id) {
  Registry registry(ws.db());
  ReplayBuffer buffer(ws.db());
  VersionRecord r;
  r.model_id = id;
  r.parent_model_id = parent;
  r.version = registry.reserve_version();
  r.status = VersionStatus::kProduction;
  r.run_id = run_id;
  Transaction txn(ws.db());
  registry.add(r);
  buffer.commit_stage(run_id);
  txn.commit();
}

// An imported base "base" in production.
void add_base(Workspace& ws) {
  Registry registry(ws.db());
  VersionRecord base;
  base.model_id = "base";
  base.version = registry.reserve_version();
  base.status = VersionStatus::kProduction;
  registry.add(base);
}

TEST(RollbackProduction, RestoresTheBufferOfTheVersionRolledBackTo) {
  testing_util::TempDir tmp;
  Workspace ws = Workspace::init((tmp.path / "ws").string());
  ReplayBuffer buffer(ws.db());
  buffer.set_max_size(6);
  AddOptions base_source;
  base_source.source = "base";
  buffer.add(make_examples({{"billing", 3}, {"login", 3}}), base_source);
  add_base(ws);
  const std::vector<std::string> before = buffer_rows(ws.db());
  ASSERT_EQ(before.size(), 6u);

  // Round v1 adds two examples of a new topic; the buffer is full, so two old ones are evicted.
  AddOptions v1_source;
  v1_source.source = "v1";
  buffer.stage("run-1", make_examples({{"export", 2}}), v1_source);
  promote_round(ws, "v1", "base", "run-1");
  const std::vector<std::string> after_v1 = buffer_rows(ws.db());
  ASSERT_EQ(after_v1.size(), 6u);
  ASSERT_NE(after_v1, before);
  EXPECT_EQ(ws.db().query_int("SELECT count(*) FROM replay_evicted"), 2);

  const RollbackResult r = rollback_production(ws, "bad answers");
  EXPECT_EQ(r.model_id, "base");
  EXPECT_EQ(r.retired, "v1");
  EXPECT_EQ(r.replay_removed, 2);
  EXPECT_EQ(r.replay_restored, 2);
  EXPECT_EQ(buffer_rows(ws.db()), before);  // the same examples under the same ids
  EXPECT_EQ(ws.db().query_int("SELECT count(*) FROM replay_evicted"), 0);
  expect_consistent(ws.db());

  // Nothing left to roll back: an error, and the buffer as it was.
  EXPECT_THROW(rollback_production(ws), RegistryError);
  EXPECT_EQ(buffer_rows(ws.db()), before);
}

TEST(RollbackProduction, KeepsExamplesAddedByHandAndStaysWithinMaxSize) {
  testing_util::TempDir tmp;
  Workspace ws = Workspace::init((tmp.path / "ws").string());
  ReplayBuffer buffer(ws.db());
  buffer.set_max_size(4);
  add_base(ws);
  AddOptions manual;
  buffer.add(make_examples({{"billing", 4}}), manual);
  AddOptions v1_source;
  v1_source.source = "v1";
  buffer.stage("run-1", make_examples({{"export", 2}}), v1_source);
  promote_round(ws, "v1", "base", "run-1");  // evicts 2 billing
  buffer.add(make_examples({{"login", 1}}), manual);  // evicts one more (not journaled)
  const RollbackResult r = rollback_production(ws);
  EXPECT_EQ(r.replay_removed, 2);
  EXPECT_EQ(r.replay_restored, 2);
  EXPECT_EQ(buffer.size(), 4);  // the 2 billing back beside the 1 left, and login
  EXPECT_EQ(ws.db().query_int("SELECT count(*) FROM replay_examples WHERE topic = 'login'"), 1);
  expect_consistent(ws.db());
}

}  // namespace
}  // namespace retain
