// Tests of the model registry (registry.h): version numbers that are never reused, one production
// version enforced by the database itself, promotion under concurrency, rollback as a stack,
// lineage, scores keyed by data hash, runs, and composition inside a caller's transaction.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "retain/errors.h"
#include "retain/registry.h"
#include "retain/workspace.h"
#include "test_util.h"

namespace retain {
namespace {

using testing_util::registry_error;

using testing_util::TempDir;

// A record for `id` (parent `parent`, "" for a base) under a freshly reserved number.
VersionRecord new_record(Registry& registry, const std::string& id, const std::string& parent,
                         VersionStatus status = VersionStatus::kCandidate) {
  VersionRecord r;
  r.model_id = id;
  r.parent_model_id = parent;
  r.version = registry.reserve_version();
  r.status = status;
  return r;
}

VersionRecord add_version(Registry& registry, const std::string& id, const std::string& parent,
                          VersionStatus status = VersionStatus::kCandidate) {
  VersionRecord r = new_record(registry, id, parent, status);
  registry.add(r);
  return r;
}

std::vector<std::string> ids(const std::vector<VersionRecord>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.model_id);
  return out;
}

// The history as "action model_id [after previous_model_id]" lines.
std::vector<std::string> history_lines(Registry& registry) {
  std::vector<std::string> out;
  for (const HistoryEntry& e : registry.history()) {
    out.push_back(e.action + " " + e.model_id +
                  (e.previous_model_id.empty() ? "" : " after " + e.previous_model_id));
  }
  return out;
}

VersionStatus status_of(Registry& registry, const std::string& id) { return registry.get(id).status; }

// A fresh workspace and its registry.
class RegistryTest : public testing::Test {
 protected:
  int64_t production_count() {
    return ws.db().query_int("SELECT count(*) FROM versions WHERE status = 'production'");
  }
  TempDir tmp;
  Workspace ws = Workspace::init(tmp / "ws");
  Registry registry{ws.db()};
};

// v1 imported as production, v2 and v3 promoted after it, each the child of the one before.
void promote_chain(Registry& registry) {
  add_version(registry, "v1", "", VersionStatus::kProduction);
  add_version(registry, "v2", "v1");
  registry.promote("v2");
  add_version(registry, "v3", "v2");
  registry.promote("v3");
}

TEST_F(RegistryTest, SchemaHasTheRegistryTablesAndTheAdapterBase) {
  EXPECT_EQ(ws.schema_version(), 6);
  EXPECT_EQ(ws.db().query_int("SELECT count(*) FROM pragma_table_info('versions') WHERE name = 'data_files'"), 1);
  EXPECT_EQ(ws.db().query_int("SELECT count(*) FROM sqlite_master WHERE name = 'replay_evicted'"), 1);
  EXPECT_EQ(ws.db().query_int("SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'error'"), 1);
  EXPECT_EQ(ws.db().query_int("SELECT count(*) FROM pragma_table_info('versions') WHERE name = 'adapter_base_model_id'"), 1);
  for (const char* table : {"registry_state", "versions", "version_scores", "registry_history", "runs"}) {
    EXPECT_EQ(ws.db().query_int(std::string("SELECT count(*) FROM sqlite_master WHERE name = '") +
                                table + "'"), 1) << table;
  }
}

TEST(Registry, NumbersGrowAndAreNeverReused) {
  TempDir tmp;
  {
    Workspace ws = Workspace::init(tmp / "ws");
    Registry registry(ws.db());
    EXPECT_EQ(add_version(registry, "a", "").version, 1);
    EXPECT_EQ(registry.reserve_version(), 2);  // a round that crashed before registering
    EXPECT_EQ(add_version(registry, "b", "a").version, 3);

    VersionRecord r;
    r.model_id = "c";
    r.version = 99;  // never reserved
    EXPECT_NE(registry_error([&] { registry.add(r); }).find("was not reserved"), std::string::npos);
    r.version = 1;  // reserved, but used by a
    EXPECT_NE(registry_error([&] { registry.add(r); }).find("already used by a"), std::string::npos);
    r.version = 2;  // the crashed round's number may still be registered, once
    registry.add(r);
  }
  Workspace ws = Workspace::open(tmp / "ws");  // the counter is in the database
  Registry registry(ws.db());
  EXPECT_EQ(registry.reserve_version(), 4);
  std::vector<int64_t> numbers;
  for (const auto& r : registry.list()) numbers.push_back(r.version);
  EXPECT_EQ(numbers, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(ids(registry.list()), (std::vector<std::string>{"a", "c", "b"}));
}

TEST_F(RegistryTest, ImportAndPromoteRetireThePreviousProduction) {
  EXPECT_FALSE(registry.production());
  add_version(registry, "base", "", VersionStatus::kProduction);
  add_version(registry, "c1", "base");
  EXPECT_EQ(registry.production()->model_id, "base");
  EXPECT_EQ(status_of(registry, "c1"), VersionStatus::kCandidate);

  registry.promote("c1", "better on support");
  EXPECT_EQ(registry.production()->model_id, "c1");
  EXPECT_EQ(status_of(registry, "base"), VersionStatus::kRetired);
  EXPECT_NE(registry_error([&] { registry.promote("c1"); }).find("already the production"), std::string::npos);

  // Registering straight into production retires too, and is recorded as a promotion.
  add_version(registry, "c2", "c1", VersionStatus::kProduction);
  EXPECT_EQ(status_of(registry, "c1"), VersionStatus::kRetired);
  EXPECT_EQ(history_lines(registry), (std::vector<std::string>{
                                         "import base", "promote c1 after base", "promote c2 after c1"}));
  EXPECT_EQ(registry.history().at(1).note, "better on support");
  EXPECT_EQ(production_count(), 1);
}

TEST_F(RegistryTest, DatabaseItselfRefusesASecondProduction) {
  add_version(registry, "a", "", VersionStatus::kProduction);
  add_version(registry, "b", "a");
  EXPECT_THROW(ws.db().exec("UPDATE versions SET status = 'production' WHERE model_id = 'b'"), RegistryError);
  EXPECT_THROW(ws.db().exec("UPDATE versions SET status = 'live' WHERE model_id = 'b'"), RegistryError);
  EXPECT_THROW(ws.db().exec("UPDATE versions SET model_id = 'x/y' WHERE model_id = 'b'"), RegistryError);
  EXPECT_THROW(ws.db().exec("UPDATE versions SET parent_model_id = 'ghost' WHERE model_id = 'b'"),
               RegistryError);
  EXPECT_EQ(registry.production()->model_id, "a");
  EXPECT_EQ(status_of(registry, "b"), VersionStatus::kCandidate);
}

TEST(Registry, ConcurrentPromotesEndWithOneProductionAndAConsistentHistory) {
  TempDir tmp;
  const std::string dir = tmp / "ws";
  constexpr int kThreads = 6, kPromotesEach = 5;
  {
    Workspace ws = Workspace::init(dir);
    Registry registry(ws.db());
    add_version(registry, "base", "", VersionStatus::kProduction);
    for (int i = 0; i < kThreads; ++i) add_version(registry, "c" + std::to_string(i), "base");
  }
  std::vector<int> promoted(kThreads, 0), refused(kThreads, 0);
  std::vector<std::string> unexpected(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        Workspace ws = Workspace::open(dir);  // each its own connection, as separate processes
        Registry registry(ws.db());
        for (int k = 0; k < kPromotesEach; ++k) {
          try {
            registry.promote("c" + std::to_string((t + k) % kThreads));
            ++promoted[t];
          } catch (const RegistryError& e) {
            // Another thread made it production first; anything else is a failure.
            if (std::string(e.what()).find("already the production") == std::string::npos) throw;
            ++refused[t];
          }
        }
      } catch (const std::exception& e) {
        unexpected[t] = e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(unexpected[t], "") << "thread " << t;

  Workspace ws = Workspace::open(dir);
  Registry registry(ws.db());
  EXPECT_EQ(ws.db().query_int("SELECT count(*) FROM versions WHERE status = 'production'"), 1);
  int total = 0;
  for (int t = 0; t < kThreads; ++t) total += promoted[t];
  const auto history = registry.history();
  ASSERT_EQ(static_cast<int>(history.size()), 1 + total);
  for (size_t i = 1; i < history.size(); ++i) {
    EXPECT_EQ(history[i].previous_model_id, history[i - 1].model_id) << "entry " << i;
    EXPECT_NE(history[i].model_id, history[i - 1].model_id) << "entry " << i;
  }
  EXPECT_EQ(registry.production()->model_id, history.back().model_id);
  EXPECT_EQ(ws.db().query_int("SELECT count(*) FROM versions WHERE status = 'retired'"), kThreads);
}

TEST_F(RegistryTest, RollbackWalksBackToTheBaseThenRefuses) {
  promote_chain(registry);
  EXPECT_EQ(registry.rollback("v3 broke billing"), "v2");
  EXPECT_EQ(status_of(registry, "v3"), VersionStatus::kRetired);
  EXPECT_EQ(registry.rollback(), "v1");
  EXPECT_EQ(registry.production()->model_id, "v1");
  EXPECT_EQ(status_of(registry, "v2"), VersionStatus::kRetired);
  const std::string message = registry_error([&] { registry.rollback(); });
  EXPECT_NE(message.find("nothing to roll back to: v1"), std::string::npos) << message;
  EXPECT_EQ(registry.production()->model_id, "v1");

  EXPECT_EQ(history_lines(registry),
            (std::vector<std::string>{"import v1", "promote v2 after v1", "promote v3 after v2",
                                      "rollback v2 after v3", "rollback v1 after v2"}));
  EXPECT_EQ(registry.history().at(3).note, "v3 broke billing");
}

TEST_F(RegistryTest, RollbackAfterPromoteAfterRollback) {
  promote_chain(registry);
  EXPECT_EQ(registry.rollback(), "v2");
  add_version(registry, "v4", "v2");
  registry.promote("v4");           // stack: v1 v2 v4
  EXPECT_EQ(registry.rollback(), "v2");
  registry.promote("v3");           // a retired version may come back: v1 v2 v3
  EXPECT_EQ(registry.rollback(), "v2");
  EXPECT_EQ(registry.rollback(), "v1");
  EXPECT_THROW(registry.rollback(), RegistryError);
  EXPECT_EQ(production_count(), 1);
}

TEST_F(RegistryTest, RollbackWithoutProductionIsRefused) {
  EXPECT_NE(registry_error([&] { registry.rollback(); }).find("no version is in production"), std::string::npos);
  add_version(registry, "only", "", VersionStatus::kProduction);
  EXPECT_NE(registry_error([&] { registry.rollback(); }).find("nothing to roll back to: only"), std::string::npos);
}

TEST_F(RegistryTest, LineageRunsFromTheVersionToItsBaseWithScores) {
  add_version(registry, "base", "", VersionStatus::kProduction);
  add_version(registry, "side", "base");
  add_version(registry, "r1", "base");
  add_version(registry, "r2", "r1");
  registry.set_scores("r1", {{"support", "exact_match", 0.75, "sha256:aa"}});
  const auto chain = registry.lineage("r2");
  EXPECT_EQ(ids(chain), (std::vector<std::string>{"r2", "r1", "base"}));
  ASSERT_EQ(chain[1].scores.size(), 1u);
  EXPECT_DOUBLE_EQ(chain[1].scores[0].value, 0.75);
  EXPECT_EQ(ids(registry.lineage("base")), (std::vector<std::string>{"base"}));
  EXPECT_EQ(registry_error([&] { registry.lineage("nope"); }), "no version nope in the registry");
}

TEST_F(RegistryTest, BadModelIdsAreConfigErrors) {
  for (const std::string& bad : std::vector<std::string>{"", ".", "..", "a/b", "a b", "v1\n", "caf\xc3\xa9", "../x",
                                std::string(129, 'a')}) {
    EXPECT_THROW(check_model_id(bad), ConfigError) << "\"" << bad << "\"";
  }
  for (const std::string& good : std::vector<std::string>{"a", "support-v3.1_final", "...", std::string(128, 'z')})
    EXPECT_NO_THROW(check_model_id(good)) << good;
  EXPECT_THROW(add_version(registry, "bad/id", ""), ConfigError);
  EXPECT_TRUE(registry.list().empty());
}

TEST_F(RegistryTest, DuplicateIdsAndUnknownParentsAreRefused) {
  add_version(registry, "a", "");
  EXPECT_NE(registry_error([&] { add_version(registry, "a", ""); }).find("already in the registry"),
            std::string::npos);
  EXPECT_NE(registry_error([&] { add_version(registry, "b", "ghost"); }).find("parent ghost"),
            std::string::npos);
  EXPECT_EQ(ids(registry.list()), (std::vector<std::string>{"a"}));
  EXPECT_EQ(registry_error([&] { registry.get("ghost"); }), "no version ghost in the registry");
  EXPECT_EQ(registry_error([&] { registry.promote("ghost"); }), "no version ghost in the registry");
  EXPECT_FALSE(registry.find("ghost"));
}

TEST_F(RegistryTest, RejectedVersionsNeedAllowRejected) {
  add_version(registry, "base", "", VersionStatus::kProduction);
  VersionRecord r = new_record(registry, "bad-round", "base", VersionStatus::kRejected);
  r.gate = {{"passed", false}, {"failures", {{{"message", "support exact_match 0.50 < min 0.70"}}}}};
  registry.add(r);
  EXPECT_NE(registry_error([&] { registry.promote("bad-round"); }).find("rejected"), std::string::npos);
  EXPECT_EQ(registry.production()->model_id, "base");
  registry.promote("bad-round", "accepted by hand", /*allow_rejected=*/true);
  EXPECT_EQ(registry.production()->model_id, "bad-round");
  EXPECT_EQ(registry.get("bad-round").gate.at("failures").size(), 1u);

  registry.set_gate("base", {{"passed", true}, {"failures", nlohmann::json::array()}});
  EXPECT_TRUE(registry.get("base").gate.at("passed").get<bool>());
  registry.set_gate("base", nlohmann::json());
  EXPECT_TRUE(registry.get("base").gate.is_null());
  EXPECT_THROW(registry.set_gate("ghost", nlohmann::json()), RegistryError);
}

TEST_F(RegistryTest, ScoresAreOnlyComparedOnTheSameData) {
  add_version(registry, "a", "");
  registry.set_scores("a", {{"support", "exact_match", 0.8, "sha256:11"},
                            {"support", "loss", 1.25, "sha256:11"},
                            {"billing", "token_accuracy", 0.5, "sha256:22"}});
  EXPECT_EQ(registry.score("a", "support", "exact_match", "sha256:11"), 0.8);
  EXPECT_EQ(registry.score("a", "support", "loss", "sha256:11"), 1.25);
  EXPECT_FALSE(registry.score("a", "support", "exact_match", "sha256:other"));
  EXPECT_FALSE(registry.score("a", "support", "perplexity", "sha256:11"));
  EXPECT_FALSE(registry.score("b", "support", "exact_match", "sha256:11"));

  registry.set_scores("a", {{"support", "exact_match", 0.9, "sha256:33"}});  // replaces
  EXPECT_EQ(registry.score("a", "support", "exact_match", "sha256:33"), 0.9);
  EXPECT_FALSE(registry.score("a", "support", "exact_match", "sha256:11"));
  EXPECT_EQ(registry.get("a").scores.size(), 3u);
  EXPECT_THROW(registry.set_scores("ghost", {{"s", "loss", 1.0, "h"}}), RegistryError);
  EXPECT_THROW(registry.set_scores("a", {{"s", "loss", std::nan(""), "h"}}), RegistryError);
}

TEST_F(RegistryTest, RunsStartFinishAndGetMarkedInterrupted) {
  add_version(registry, "base", "", VersionStatus::kProduction);
  registry.start_run("run-1", "base", {{"replay_ratio", 0.3}});
  registry.start_run("run-2", "base", {});
  registry.start_run("run-3", "", nlohmann::json::object());
  EXPECT_THROW(registry.start_run("run-1", "base", {}), RegistryError);

  auto r1 = registry.run("run-1");
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->at("status"), "running");
  EXPECT_TRUE(r1->at("finished_at").is_null());
  EXPECT_EQ(r1->at("base_model_id"), "base");
  EXPECT_TRUE(r1->at("model_id").is_null());
  EXPECT_DOUBLE_EQ(r1->at("settings").at("replay_ratio").get<double>(), 0.3);
  EXPECT_GT(r1->at("started_at").get<int64_t>(), 1600000000);

  registry.finish_run("run-1", "rejected", "base");
  r1 = registry.run("run-1");
  EXPECT_EQ(r1->at("status"), "rejected");
  EXPECT_GE(r1->at("finished_at").get<int64_t>(), r1->at("started_at").get<int64_t>());
  EXPECT_EQ(r1->at("model_id"), "base");
  EXPECT_THROW(registry.finish_run("run-9", "failed", ""), RegistryError);
  EXPECT_THROW(registry.finish_run("run-2", "done", ""), RegistryError);

  EXPECT_EQ(registry.mark_interrupted_runs("run-3"), 1);  // run-2 only: run-1 finished
  EXPECT_EQ(registry.run("run-2")->at("status"), "interrupted");
  EXPECT_EQ(registry.run("run-3")->at("status"), "running");
  EXPECT_TRUE(registry.run("run-3")->at("base_model_id").is_null());
  EXPECT_EQ(registry.mark_interrupted_runs(""), 1);
  EXPECT_FALSE(registry.run("nope"));
}

TEST_F(RegistryTest, ToJsonShape) {
  add_version(registry, "base", "", VersionStatus::kProduction);
  VersionRecord r = new_record(registry, "r1", "base");
  r.created_at = 1700000000;
  r.run_id = "run-1";
  r.settings = {{"ewc_lambda", 100}};
  r.data_hashes = {{"train", "sha256:ab"}};
  r.data_files = {{"train", "data/new.jsonl"}};
  r.scores = {{"support", "exact_match", 0.5, "sha256:cd"}, {"support", "loss", 2.0, "sha256:cd"}};
  registry.add(r);

  const nlohmann::json j = registry.get("r1").to_json();
  EXPECT_EQ(j.at("model_id"), "r1");
  EXPECT_EQ(j.at("parent_model_id"), "base");
  EXPECT_EQ(j.at("version"), 2);
  EXPECT_EQ(j.at("created_at"), 1700000000);
  EXPECT_EQ(j.at("status"), "candidate");
  EXPECT_EQ(j.at("run_id"), "run-1");
  EXPECT_EQ(j.at("model_dir"), "versions/r1");
  EXPECT_EQ(j.at("settings").at("ewc_lambda"), 100);
  EXPECT_EQ(j.at("data_hashes").at("train"), "sha256:ab");
  EXPECT_EQ(j.at("data_files").at("train"), "data/new.jsonl");
  EXPECT_TRUE(j.at("gate").is_null());
  EXPECT_EQ(j.at("eval_scores"), nlohmann::json({{"support", {{"exact_match", 0.5}, {"loss", 2.0}}}}));
  EXPECT_EQ(j.at("scores").at(0).at("data_hash"), "sha256:cd");

  const nlohmann::json b = registry.get("base").to_json();
  EXPECT_TRUE(b.at("parent_model_id").is_null());
  EXPECT_EQ(b.at("status"), "production");
  EXPECT_EQ(b.at("eval_scores"), nlohmann::json::object());
  EXPECT_GT(b.at("created_at").get<int64_t>(), 1600000000);  // now, when not given
  const nlohmann::json h = registry.history().at(0).to_json();
  EXPECT_EQ(h.at("action"), "import");
  EXPECT_TRUE(h.at("previous_model_id").is_null());
  EXPECT_EQ(parse_status("retired"), VersionStatus::kRetired);
  EXPECT_THROW(parse_status("live"), RegistryError);
}

TEST_F(RegistryTest, CallsComposeInsideTheCallersTransaction) {
  add_version(registry, "base", "", VersionStatus::kProduction);
  {
    Transaction txn(ws.db(), Transaction::Mode::kWrite);
    add_version(registry, "r1", "base");
    registry.set_scores("r1", {{"support", "loss", 1.0, "h"}});
    registry.promote("r1");
    EXPECT_EQ(registry.production()->model_id, "r1");
    // No commit: a round that fails after registering leaves the registry as it was.
  }
  EXPECT_FALSE(registry.find("r1"));
  EXPECT_EQ(registry.production()->model_id, "base");
  EXPECT_EQ(registry.history().size(), 1u);
  EXPECT_EQ(registry.reserve_version(), 2);  // the rolled-back reservation was never taken
  {
    Transaction txn(ws.db(), Transaction::Mode::kWrite);
    add_version(registry, "r2", "base");
    registry.promote("r2");
    txn.commit();
  }
  EXPECT_EQ(registry.production()->model_id, "r2");
  EXPECT_EQ(registry.get("r2").version, 3);
  EXPECT_EQ(registry.rollback(), "base");
}

}  // namespace
}  // namespace retain
