// LoRA end to end through the `retain` executable: a LoRA fine-tune, LoRA rounds through the gate
// that register adapter-only versions over their base and continue the lineage's adapter, PEFT
// export and import (bit-identical), a merged Hugging Face export, a killed LoRA round that changes
// nothing, and its resume, bit-identical to the uninterrupted round.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "retain/checkpoint.h"
#include "retain/errors.h"
#include "retain/registry.h"
#include "retain/workspace.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using cli_test::CliResult;
using cli_test::read_text;
using cli_test::write_text;
using nlohmann::json;

const fs::path kSource = RETAIN_SOURCE_DIR;

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

class LoraCli : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = cli_test::fresh_test_dir("retain_lora_cli");
    cli_test::write_support_sample(kSource, dir_);
    // A trained gpt base with its Fisher, registered with its data in the replay buffer.
    const std::string preset = (kSource / "models" / "gpt-tiny").string();
    CliResult r = run({"finetune", "--model", preset, "--train", path("old.jsonl"), "--out", path("base"), "--max-steps",
                       "4", "--batch-size", "4", "--threads", "1", "--lr", "3e-3"},
                      "finetune-base");
    ASSERT_EQ(r.code, kExitOk) << r.describe();
    r = run({"fisher", "--model", path("base"), "--data", path("old.jsonl"), "--samples", "8"}, "fisher");
    ASSERT_EQ(r.code, kExitOk) << r.describe();
    ASSERT_EQ(run({"init", "--workspace", path("ws")}, "init").code, kExitOk);
    r = run({"import", path("base"), "--name", "support-v1", "--workspace", path("ws"), "--replay-data",
             path("old.jsonl")},
            "import");
    ASSERT_EQ(r.code, kExitOk) << r.describe();
    const json c = {{"replay", {{"ratio", 0.3}}},
                    {"ewc", {{"lambda", 10.0}, {"num_samples", 8}}},
                    {"training", {{"max_steps", 4}, {"batch_size", 4}, {"threads", 1}, {"lr", 1e-2},
                                  {"checkpoint_every", 2}}},
                    {"gate", {{"test_sets", {{"old", path("old-test.jsonl")}, {"new", path("new-test.jsonl")}}},
                              {"metrics", {{"old", "loss"}, {"new", "token_accuracy"}}},
                              {"regression_tolerance", 1e9}}}};
    write_text(dir_ / "round.json", c.dump(2));
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  CliResult run(const std::vector<std::string>& args, const std::string& tag) const {
    return cli_test::run_cli(args, dir_, tag);
  }
  CliResult lora_round(const std::string& ws, const std::string& tag, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args = {"train", "--config", path("round.json"), "--data", path("new.jsonl"),
                                     "--workspace", ws, "--lora-rank", "4", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args, tag);
  }
  TensorMap adapter(const std::string& version, const std::string& ws = "ws") const {
    return load_safetensors((dir_ / ws / "versions" / version / "adapter_model.safetensors").string()).tensors;
  }
  fs::path dir_;
};

TEST_F(LoraCli, RoundsRegisterAdaptersOverTheirBaseAndContinueThem) {
  CliResult r = lora_round(path("ws"), "round-1");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  json j = json::parse(r.out);
  EXPECT_EQ(j.at("status"), "production");
  EXPECT_EQ(j.at("model_id"), "support-v2");
  // The version folder holds the adapter alone, its Fisher and its card.
  EXPECT_EQ(files_in(dir_ / "ws" / "versions" / "support-v2"),
            (std::vector<std::string>{"adapter_config.json", "adapter_model.safetensors", "card.json",
                                      "ewc.safetensors", "retain_adapter.json"}));
  const auto ewc = load_safetensors(path("ws/versions/support-v2/ewc.safetensors"));
  for (const auto& [name, t] : ewc.tensors) EXPECT_NE(name.find(".lora_"), std::string::npos) << name;
  EXPECT_TRUE(ewc.tensors.count("fisher.h.0.attn.c_attn.lora_B.weight"));
  {
    Workspace ws = Workspace::open(path("ws"));
    Registry registry(ws.db());
    EXPECT_EQ(registry.get("support-v2").adapter_base_model_id, "support-v1");
    EXPECT_EQ(registry.get("support-v2").parent_model_id, "support-v1");
    EXPECT_EQ(registry.get("support-v2").settings.at("lora").at("rank"), 4);
  }
  // An adapter folder is a small fraction of the full version's.
  const auto full_bytes = fs::file_size(dir_ / "ws" / "versions" / "support-v1" / "model.safetensors");
  const auto adapter_bytes = fs::file_size(dir_ / "ws" / "versions" / "support-v2" / "adapter_model.safetensors");
  EXPECT_LT(adapter_bytes * 4, full_bytes);

  // The next LoRA round starts from v2's adapter on the same frozen base.
  r = lora_round(path("ws"), "round-2");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  j = json::parse(r.out);
  EXPECT_EQ(j.at("model_id"), "support-v3");
  {
    Workspace ws = Workspace::open(path("ws"));
    Registry registry(ws.db());
    EXPECT_EQ(registry.get("support-v3").adapter_base_model_id, "support-v1");
    EXPECT_EQ(registry.get("support-v3").parent_model_id, "support-v2");
  }
  const auto v2 = adapter("support-v2"), v3 = adapter("support-v3");
  ASSERT_EQ(v2.size(), v3.size());
  double moved = 0;
  for (const auto& [name, t] : v2) moved += (v3.at(name) - t).abs().sum().item<double>();
  EXPECT_GT(moved, 0);
  // A second round's Fisher is consolidated with the first's (online EWC).
  EXPECT_EQ(load_safetensors(path("ws/versions/support-v3/ewc.safetensors")).metadata.at("rounds"), "2");

  // Another rank than the lineage's adapter is refused before anything changes.
  r = lora_round(path("ws"), "round-rank-8", {"--set", "lora.rank=8"});
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find("lora.rank is 8"), std::string::npos) << r.err;

  // Evaluation and generation of a LoRA version load it merged.
  r = run({"eval", "--model", path("ws/versions/support-v3"), "--test", path("old-test.jsonl"), "--json",
           "--no-exact-match"},
          "eval");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_GT(json::parse(r.out).at("loss").get<double>(), 0);
  r = run({"generate", "--model", path("ws/versions/support-v3"), "--prompt", "hello", "--max-new-tokens", "3"},
          "generate");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
}

TEST_F(LoraCli, MergeMakesAFullVersionALineageCanGoOnFrom) {
  ASSERT_EQ(lora_round(path("ws"), "round").code, kExitOk);
  // A full round with EWC straight from the LoRA version has no full Fisher to use.
  CliResult r = run({"train", "--config", path("round.json"), "--data", path("new.jsonl"), "--workspace", path("ws")},
                    "full-from-lora");
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find("Fisher covers its adapter only"), std::string::npos) << r.err;

  r = run({"registry", "merge", "support-v2", "--workspace", path("ws")}, "merge");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_TRUE(fs::exists(dir_ / "ws" / "versions" / "support-v2-merged" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir_ / "ws" / "versions" / "support-v2-merged" / "adapter_config.json"));
  {
    Workspace ws = Workspace::open(path("ws"));
    const VersionRecord merged = Registry(ws.db()).get("support-v2-merged");
    EXPECT_EQ(merged.parent_model_id, "support-v2");
    EXPECT_EQ(merged.adapter_base_model_id, "");
    EXPECT_EQ(merged.status, VersionStatus::kCandidate);
  }
  r = run({"registry", "merge", "support-v1", "--workspace", path("ws")}, "merge-full");
  EXPECT_EQ(r.code, kExitRegistry) << r.describe();
  // A full round from the merged version (no Fisher yet: λ = 0).
  r = run({"train", "--config", path("round.json"), "--data", path("new.jsonl"), "--workspace", path("ws"), "--base",
           "support-v2-merged", "--ewc-lambda", "0", "--json", "--no-promote"},
          "full-from-merged");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_TRUE(fs::exists(dir_ / "ws" / "versions" / json::parse(r.out).at("model_id").get<std::string>() /
                         "model.safetensors"));
}

TEST_F(LoraCli, ASweepOnALoraProductionCarriesItsBase) {
  ASSERT_EQ(lora_round(path("ws"), "round").code, kExitOk);
  const CliResult r = run({"sweep", "--config", path("round.json"), "--data", path("new.jsonl"), "--workspace",
                           path("ws"), "--lambda", "0,10", "--replay-ratio", "0.3", "--set", "lora.rank=4", "--json",
                           "--out", path("sweep")},
                          "sweep");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("base_model_id"), "support-v2");
  EXPECT_EQ(j.at("points").size(), 2u);
  // The scratch workspace held the adapter's base; production is untouched.
  Workspace ws = Workspace::open(path("ws"));
  EXPECT_EQ(Registry(ws.db()).production()->model_id, "support-v2");
}

TEST_F(LoraCli, PeftExportImportIsBitIdenticalAndHfExportMerges) {
  ASSERT_EQ(lora_round(path("ws"), "round").code, kExitOk);
  CliResult r = run({"export", "support-v2", "--peft", path("peft"), "--workspace", path("ws")}, "export-peft");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_EQ(files_in(dir_ / "peft"), (std::vector<std::string>{"adapter_config.json", "adapter_model.safetensors"}));
  const json config = json::parse(read_text(dir_ / "peft" / "adapter_config.json"));
  EXPECT_EQ(config.at("peft_type"), "LORA");
  EXPECT_EQ(config.at("r"), 4);
  EXPECT_EQ(config.at("base_model_name_or_path"), "support-v1");
  EXPECT_EQ(config.at("fan_in_fan_out"), true);
  EXPECT_EQ(config.at("target_modules"), json({"c_attn", "c_fc", "c_proj"}));

  r = run({"import", "--peft", path("peft"), "--base", "support-v1", "--name", "imported", "--workspace", path("ws")},
          "import-peft");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_EQ(read_text(dir_ / "ws" / "versions" / "imported" / "adapter_model.safetensors"),
            read_text(dir_ / "ws" / "versions" / "support-v2" / "adapter_model.safetensors"));
  {
    Workspace ws = Workspace::open(path("ws"));
    EXPECT_EQ(Registry(ws.db()).get("imported").adapter_base_model_id, "support-v1");
  }
  // An adapter cannot sit on another adapter, nor on a base of other shapes.
  r = run({"import", "--peft", path("peft"), "--base", "support-v2", "--name", "x", "--workspace", path("ws")}, "on-lora");
  EXPECT_EQ(r.code, kExitRegistry) << r.describe();
  EXPECT_NE(r.err.find("itself a LoRA version"), std::string::npos) << r.err;
  r = run({"import", "--peft", path("peft"), "--name", "x", "--workspace", path("ws")}, "no-base");
  EXPECT_EQ(r.code, kExitUsage) << r.describe();

}

TEST_F(LoraCli, HfExportOfALoraModelWritesItMerged) {
  // The llama family (gpt-tiny's byte tokenizer has no Hugging Face form).
  const std::string preset = (kSource / "models" / "qwen3-tiny").string();
  CliResult r = run({"finetune", "--model", preset, "--train", path("old.jsonl"), "--out", path("qwen"), "--max-steps",
                     "2", "--batch-size", "4", "--threads", "1"},
                    "finetune-qwen");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  r = run({"finetune", "--model", path("qwen"), "--train", path("new.jsonl"), "--out", path("qwen-lora"), "--max-steps",
           "3", "--batch-size", "4", "--threads", "1", "--lora-rank", "4", "--lr", "3e-2"},
          "finetune-lora");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  r = run({"export", "--model", path("qwen-lora"), "--hf", path("hf")}, "export-hf");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_TRUE(fs::exists(dir_ / "hf" / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir_ / "hf" / "config.json"));
  for (const auto& e : fs::directory_iterator(dir_)) EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos);
  write_text(dir_ / "ids.txt", "[1, 5, 9, 33, 70]\n");
  auto logits = [&](const std::string& model, const std::string& tag) {
    const CliResult l = cli_test::run_cli({"logits", "--model", model, "--out", path(tag + ".safetensors")}, dir_, tag,
                                          dir_ / "ids.txt");
    EXPECT_EQ(l.code, kExitOk) << l.describe();
    return load_safetensors(path(tag + ".safetensors")).tensors.at("logits.0");
  };
  const auto adapter_logits = logits(path("qwen-lora"), "adapter");
  const auto merged_logits = logits(path("hf"), "merged");
  const auto base_logits = logits(path("qwen"), "base");
  EXPECT_LT((adapter_logits - merged_logits).abs().max().item<double>(), 1e-4);
  EXPECT_GT((adapter_logits - base_logits).abs().max().item<double>(), 1e-4);
}

TEST_F(LoraCli, AKilledLoraRoundChangesNothingAndItsResumeIsBitIdentical) {
  fs::copy(dir_ / "ws", dir_ / "ws-twin", fs::copy_options::recursive);
  CliResult r = lora_round(path("ws-twin"), "uninterrupted");
  ASSERT_EQ(r.code, kExitOk) << r.describe();

  const auto versions_before = files_in(dir_ / "ws" / "versions");
  ::setenv("RETAIN_FAULT_AT", "training", 1);
  r = lora_round(path("ws"), "killed");
  ::unsetenv("RETAIN_FAULT_AT");
  ASSERT_EQ(r.code, 128 + SIGKILL) << r.describe();
  EXPECT_EQ(files_in(dir_ / "ws" / "versions"), versions_before);
  std::string run_id;
  for (const auto& e : fs::directory_iterator(dir_ / "ws" / "runs")) run_id = e.path().filename().string();
  {
    Workspace ws = Workspace::open(path("ws"));
    Registry registry(ws.db());
    EXPECT_EQ(registry.production()->model_id, "support-v1");
    EXPECT_EQ(registry.list().size(), 1u);
  }
  // The checkpoint holds the adapter, not the frozen base.
  const auto ckpt = load_safetensors(path("ws/runs/" + run_id + "/checkpoints/step-2/model.safetensors"));
  for (const auto& [name, t] : ckpt.tensors) EXPECT_NE(name.find(".lora_"), std::string::npos) << name;

  // Its data gone: a data error that says so; put back, the run resumes.
  fs::rename(dir_ / "new.jsonl", dir_ / "moved.jsonl");
  r = run({"train", "--resume", run_id, "--workspace", path("ws"), "--json"}, "no-data");
  EXPECT_EQ(r.code, kExitData) << r.describe();
  EXPECT_NE(r.err.find("new.jsonl: the new data of run"), std::string::npos) << r.err;
  fs::rename(dir_ / "moved.jsonl", dir_ / "new.jsonl");
  r = run({"train", "--resume", run_id, "--workspace", path("ws"), "--json"}, "resumed");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_EQ(json::parse(r.out).at("training").at("resumed_from_step"), 2);
  const auto resumed = adapter("support-v2"), twin = adapter("support-v2", "ws-twin");
  ASSERT_EQ(resumed.size(), twin.size());
  for (const auto& [name, t] : twin) EXPECT_TRUE(torch::equal(resumed.at(name), t)) << name;
}

TEST_F(LoraCli, AResumedRoundWhoseProductionWasReplacedStaysACandidate) {
  ::setenv("RETAIN_FAULT_AT", "training", 1);
  CliResult r = lora_round(path("ws"), "killed");
  ::unsetenv("RETAIN_FAULT_AT");
  ASSERT_EQ(r.code, 128 + SIGKILL) << r.describe();
  std::string run_id;
  for (const auto& e : fs::directory_iterator(dir_ / "ws" / "runs")) run_id = e.path().filename().string();
  // Meanwhile another round is promoted.
  r = lora_round(path("ws"), "meanwhile");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  const std::string newer = json::parse(r.out).at("model_id");
  r = run({"train", "--resume", run_id, "--workspace", path("ws"), "--json"}, "stale");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  const json stale = json::parse(r.out);
  EXPECT_EQ(stale.at("status"), "candidate");
  const std::string note = stale.at("note");
  EXPECT_NE(note.find("production changed while the round ran"), std::string::npos) << note;
  EXPECT_NE(note.find("now " + newer), std::string::npos) << note;
  EXPECT_NE(note.find("--promote-stale"), std::string::npos) << note;
  EXPECT_NE(r.err.find("production changed while the round ran"), std::string::npos) << r.err;
  {
    Workspace ws = Workspace::open(path("ws"));
    EXPECT_EQ(Registry(ws.db()).production()->model_id, newer);
  }

  // --promote-stale: the same story, and the resumed round replaces the newer production.
  std::set<std::string> before;
  for (const auto& e : fs::directory_iterator(dir_ / "ws" / "runs")) before.insert(e.path().filename().string());
  ::setenv("RETAIN_FAULT_AT", "training", 1);
  r = lora_round(path("ws"), "killed-again");
  ::unsetenv("RETAIN_FAULT_AT");
  ASSERT_EQ(r.code, 128 + SIGKILL) << r.describe();
  std::string second;
  for (const auto& e : fs::directory_iterator(dir_ / "ws" / "runs"))
    if (!before.count(e.path().filename().string())) second = e.path().filename().string();
  ASSERT_FALSE(second.empty());
  ASSERT_EQ(lora_round(path("ws"), "meanwhile-again").code, kExitOk);
  r = run({"train", "--resume", second, "--promote-stale", "--workspace", path("ws"), "--json"}, "forced");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  const json forced = json::parse(r.out);
  EXPECT_EQ(forced.at("status"), "production");
  EXPECT_NE(forced.at("note").get<std::string>().find("promoted over it"), std::string::npos) << forced;
  Workspace ws = Workspace::open(path("ws"));
  EXPECT_EQ(Registry(ws.db()).production()->model_id, forced.at("model_id"));
  EXPECT_EQ(run({"train", "--resume", second, "--promote-stale", "--no-promote", "--workspace", path("ws")}, "both").code,
            kExitUsage);
}

TEST_F(LoraCli, ModelCommandsTakeAVersionIdOrProduction) {
  ASSERT_EQ(lora_round(path("ws"), "round").code, kExitOk);  // production: support-v2, an adapter
  const std::vector<std::string> ws = {"--workspace", path("ws")};
  auto with_ws = [&](std::vector<std::string> args) {
    args.insert(args.end(), ws.begin(), ws.end());
    return args;
  };
  CliResult r = run(with_ws({"eval", "--model", "production", "--test", path("old-test.jsonl"), "--no-exact-match"}),
                    "eval-production");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_NE(r.out.find("versions/support-v2"), std::string::npos) << r.out;
  r = run(with_ws({"generate", "--model", "support-v1", "--prompt", "hi", "--max-new-tokens", "2"}), "generate-id");
  EXPECT_EQ(r.code, kExitOk) << r.describe();
  r = run(with_ws({"data", "validate", path("old.jsonl"), "--model", "production"}), "validate-production");
  EXPECT_EQ(r.code, kExitOk) << r.describe();
  write_text(dir_ / "ids.txt", "[1, 2, 3]\n");
  r = cli_test::run_cli(with_ws({"logits", "--model", "support-v1", "--out", path("l.safetensors")}), dir_, "logits",
                        dir_ / "ids.txt");
  EXPECT_EQ(r.code, kExitOk) << r.describe();
  r = run(with_ws({"eval", "--model", "support-v9", "--test", path("old-test.jsonl")}), "eval-unknown");
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find("nor a version in the workspace"), std::string::npos) << r.err;
}

TEST_F(LoraCli, PathsInAConfigAreRelativeToItsFolder) {
  fs::create_directories(dir_ / "cfg");
  json round = json::parse(read_text(dir_ / "round.json"));
  round["gate"]["test_sets"] = {{"old", "../old-test.jsonl"}, {"new", "../new-test.jsonl"}};
  write_text(dir_ / "cfg" / "round.json", round.dump());
  // The commands run in dir_, where "../old-test.jsonl" would be outside it.
  CliResult r = run({"train", "--config", "cfg/round.json", "--data", "new.jsonl", "--workspace", "ws", "--json"},
                    "relative-round");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  const json job = {{"model", "../base"}, {"train", "../new.jsonl"}, {"out", "../tuned"}, {"max_steps", 1},
                    {"batch_size", 4}, {"threads", 1}};
  write_text(dir_ / "cfg" / "job.json", job.dump());
  r = run({"finetune", "--config", "cfg/job.json", "--run-dir", "run-relative"}, "relative-job");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_TRUE(fs::exists(dir_ / "tuned" / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir_ / "run-relative" / "job.json"));  // a flag stays relative to the working directory
}

TEST_F(LoraCli, FinetuneWritesAnAdapterOverItsModel) {
  CliResult r = run({"finetune", "--model", path("base"), "--train", path("new.jsonl"), "--out", path("tuned"),
                     "--max-steps", "2", "--batch-size", "4", "--threads", "1", "--lora-rank", "2", "--lora-alpha", "4",
                     "--lora-targets", "c_attn"},
                    "finetune-lora");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_FALSE(fs::exists(dir_ / "tuned" / "model.safetensors"));
  const json base = json::parse(read_text(dir_ / "tuned" / "retain_adapter.json"));
  EXPECT_EQ(base.at("base"), "../base");
  const auto tensors = load_safetensors(path("tuned/adapter_model.safetensors")).tensors;
  EXPECT_EQ(tensors.size(), 2u * 2);  // gpt-tiny's two blocks, c_attn only, A and B
  r = run({"eval", "--model", path("tuned"), "--test", path("new-test.jsonl"), "--no-exact-match"}, "eval");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  // A target that matches no layer, and LoRA on a family without it, are refused.
  r = run({"finetune", "--model", path("base"), "--train", path("new.jsonl"), "--out", path("bad"), "--lora-rank", "2",
           "--lora-targets", "q_proj"},
          "bad-target");
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find("\"q_proj\" matches no linear layer"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "bad"));
}

}  // namespace
}  // namespace retain
