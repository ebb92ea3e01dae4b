// The round in process (run_round / resume_round, without the executable): a passing round is
// registered and promoted with its Fisher; a round that fails is marked failed and leaves the
// registry and the buffer as they were; a LoRA round on a LoRA production keeps the lineage's
// base; λ lives in the EWC section alone.
#include <cmath>
#include <filesystem>
#include <stdexcept>

#include <gtest/gtest.h>

#include "retain/checkpoint.h"
#include "retain/errors.h"
#include "retain/family.h"
#include "retain/fisher_job.h"
#include "retain/pipeline.h"
#include "retain/registry.h"
#include "retain/replay.h"
#include "retain/workspace.h"
#include "cli_util.h"
#include "test_util.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using testing_util::TempDir;

const fs::path kSource = RETAIN_SOURCE_DIR;

class RoundInProcess : public testing::Test {
 protected:
  void SetUp() override {
    cli_test::write_support_sample(kSource, tmp.path);
    // A base with weights and its Fisher, imported as production with its data in the buffer.
    load_family_model((kSource / "models" / "gpt-tiny").string(), 3)->save(tmp / "base", false, nlohmann::json());
    FisherJob fj;
    fj.model_dir = tmp / "base";
    fj.data = tmp / "old.jsonl";
    fj.options.num_samples = 8;
    run_fisher_job(fj);
    Workspace ws = Workspace::init(tmp / "ws");
    ImportOptions io;
    io.source_dir = tmp / "base";
    io.model_id = "support-v1";
    io.replay_files = {tmp / "old.jsonl"};
    import_version(ws, io);
  }
  RoundConfig config(const nlohmann::json& extra = nlohmann::json::object()) const {
    nlohmann::json j = {{"ewc", {{"lambda", 5.0}, {"num_samples", 8}}},
                        {"training", {{"max_steps", 4}, {"batch_size", 4}, {"threads", 1}, {"lr", 1e-3},
                                      {"checkpoint_every", 2}, {"log_every", 100}}},
                        {"gate", {{"test_sets", {{"old", tmp / "old-test.jsonl"}, {"new", tmp / "new-test.jsonl"}}},
                                  {"regression_tolerance", 1e9}}}};
    j.merge_patch(extra);
    return RoundConfig::from_json(j, "round.json");
  }
  RoundOptions options() const {
    RoundOptions o;
    o.workspace = tmp / "ws";
    o.data = tmp / "new.jsonl";
    return o;
  }
  TempDir tmp;
};

TEST_F(RoundInProcess, APassingRoundIsRegisteredWithItsFisher) {
  const RoundResult r = run_round(config(), options());
  EXPECT_EQ(r.status, "production");
  EXPECT_EQ(r.model_id, "support-v2");
  EXPECT_EQ(r.training.steps, 4);
  EXPECT_GT(r.replay_examples, 0);
  EXPECT_TRUE(r.gate.passed);
  EXPECT_TRUE(fs::exists(fs::path(tmp / "ws") / "versions" / "support-v2" / "ewc.safetensors"));
  Workspace ws = Workspace::open(tmp / "ws");
  Registry registry(ws.db());
  EXPECT_EQ(registry.production()->model_id, "support-v2");
  EXPECT_EQ(registry.run(r.run_id)->at("status"), "promoted");
  // λ is the EWC section's, and the stored settings have no second copy of it.
  const auto settings = registry.get("support-v2").settings;
  EXPECT_EQ(settings.at("ewc").at("lambda"), 5.0);
  EXPECT_FALSE(settings.at("training").contains("ewc_lambda"));
}

TEST_F(RoundInProcess, AFailedRoundIsMarkedFailedAndChangesNothing) {
  RoundOptions o = options();
  o.hooks.on_progress = [](int64_t step, int64_t) {
    if (step == 3) throw TrainingError("a failure for the test");
  };
  EXPECT_THROW(run_round(config(), o), TrainingError);
  Workspace ws = Workspace::open(tmp / "ws");
  Registry registry(ws.db());
  EXPECT_EQ(registry.list().size(), 1u);
  EXPECT_EQ(registry.production()->model_id, "support-v1");
  ReplayBuffer buffer(ws.db());
  EXPECT_EQ(buffer.stats(0).size, 24);
  std::string run_id;
  for (const auto& e : fs::directory_iterator(fs::path(tmp / "ws") / "runs")) run_id = e.path().filename().string();
  const auto run = registry.run(run_id);
  EXPECT_EQ(run->at("status"), "failed");  // not left "running", to be called interrupted later
  EXPECT_EQ(run->at("error"), "a failure for the test");
  EXPECT_EQ(ws.db().query_int("SELECT count(*) FROM replay_staged"), 0);
  EXPECT_FALSE(fs::exists(fs::path(tmp / "ws") / "runs" / run_id / "checkpoints"));
  EXPECT_TRUE(fs::exists(fs::path(tmp / "ws") / "runs" / run_id / "round.json"));  // kept for the audit
  try {
    resume_round(run_id, options());
    ADD_FAILURE() << "a failed run was resumed";
  } catch (const RegistryError& e) {
    EXPECT_NE(std::string(e.what()).find("already finished (failed)"), std::string::npos) << e.what();
  }
  // The next round runs as if the failed one had not been.
  EXPECT_EQ(run_round(config(), options()).status, "production");
}

TEST_F(RoundInProcess, LoraRoundsKeepTheLineagesBase) {
  const nlohmann::json lora = {{"lora", {{"rank", 2}}}};
  const RoundResult first = run_round(config(lora), options());
  ASSERT_EQ(first.status, "production");
  const RoundResult second = run_round(config(lora), options());
  ASSERT_EQ(second.status, "production");
  Workspace ws = Workspace::open(tmp / "ws");
  Registry registry(ws.db());
  EXPECT_EQ(registry.get(first.model_id).adapter_base_model_id, "support-v1");
  EXPECT_EQ(registry.get(second.model_id).adapter_base_model_id, "support-v1");
  EXPECT_EQ(registry.get(second.model_id).parent_model_id, first.model_id);
  EXPECT_FALSE(fs::exists(fs::path(tmp / "ws") / "versions" / second.model_id / "model.safetensors"));
  // lora.merge: the round's result is a full version again.
  const RoundResult merged = run_round(config({{"lora", {{"rank", 2}, {"merge", true}}}}), options());
  EXPECT_TRUE(fs::exists(fs::path(tmp / "ws") / "versions" / merged.model_id / "model.safetensors"));
  EXPECT_EQ(registry.get(merged.model_id).adapter_base_model_id, "");
}

TEST_F(RoundInProcess, AMissingProductionFolderIsNamedAsSuch) {
  fs::rename(fs::path(tmp / "ws") / "versions" / "support-v1", tmp / "elsewhere");
  try {
    run_round(config(), options());
    ADD_FAILURE() << "a round ran without its base's folder";
  } catch (const RegistryError& e) {
    EXPECT_NE(std::string(e.what()).find("support-v1 is registered but its folder"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(fs::path(tmp / "ws") / "runs") && !fs::is_empty(fs::path(tmp / "ws") / "runs"));
}

TEST_F(RoundInProcess, TrainingEwcLambdaIsRefusedInARound) {
  try {
    config({{"training", {{"ewc_lambda", 3.0}}}});
    ADD_FAILURE() << "training.ewc_lambda was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ewc.lambda"), std::string::npos) << e.what();
  }
}

TEST(ImportVersion, RefusesNonFiniteWeightsAndWritesNothing) {
  TempDir tmp;
  load_family_model((kSource / "models" / "gpt-tiny").string(), 3)->save(tmp / "base", false, nlohmann::json());
  auto weights = load_safetensors(tmp / "base/model.safetensors");
  weights.tensors.at("h.0.attn.c_attn.weight")[0][0] = std::nan("");
  save_safetensors(tmp / "base/model.safetensors", weights.tensors, weights.metadata);
  Workspace ws = Workspace::init(tmp / "ws");
  ImportOptions io;
  io.source_dir = tmp / "base";
  io.model_id = "nan-v1";
  try {
    import_version(ws, io);
    ADD_FAILURE() << "a NaN base was imported";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("h.0.attn.c_attn.weight holds non-finite values"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(Registry(ws.db()).list().empty());
  EXPECT_FALSE(fs::exists(fs::path(tmp / "ws") / "versions" / "nan-v1"));
}

}  // namespace
}  // namespace retain
