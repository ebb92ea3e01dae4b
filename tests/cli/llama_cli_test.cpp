// The llama family end to end through the `retain` executable: finetune a preset, eval, generate,
// fisher, import, a continual round through the gate and the registry (pass and reject), and
// the bad-input paths of a Hugging Face import (nothing written).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

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
using cli_test::write_text;
using nlohmann::json;

const fs::path kSource = RETAIN_SOURCE_DIR;

class LlamaCli : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = cli_test::fresh_test_dir("retain_llama_cli");
    cli_test::write_support_sample(kSource, dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  CliResult run(const std::vector<std::string>& args, const std::string& tag) const {
    return cli_test::run_cli(args, dir_, tag);
  }
  void round_config(const std::string& name, double old_max_loss) const {
    json c = {{"replay", {{"ratio", 0.3}}},
              {"ewc", {{"lambda", 10.0}, {"num_samples", 8}}},
              {"training", {{"max_steps", 3}, {"batch_size", 4}, {"threads", 1}, {"lr", 1e-3}}},
              {"gate", {{"test_sets", {{"old", path("old-test.jsonl")}, {"new", path("new-test.jsonl")}}},
                        {"metrics", {{"old", "loss"}, {"new", "token_accuracy"}}},
                        {"min_scores", {{"old", old_max_loss}}},
                        {"regression_tolerance", 1e9}}}};
    write_text(dir_ / name, c.dump(2));
  }
  fs::path dir_;
};

TEST_F(LlamaCli, FinetuneEvalFisherImportAndARound) {
  const std::string preset = (kSource / "models" / "qwen3-tiny").string();
  CliResult r = run({"finetune", "--model", preset, "--train", path("old.jsonl"), "--out", path("base"), "--max-steps",
                     "4", "--batch-size", "4", "--threads", "1"},
                    "finetune");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  // The version folder is a Hugging Face directory: config.json as given, Hugging Face's names.
  EXPECT_EQ(json::parse(cli_test::read_text(dir_ / "base" / "config.json")).at("head_dim"), 48);
  const auto weights = load_safetensors(path("base/model.safetensors"));
  EXPECT_TRUE(weights.tensors.count("model.layers.1.self_attn.q_norm.weight"));
  EXPECT_FALSE(weights.tensors.count("lm_head.weight"));  // tied

  r = run({"eval", "--model", path("base"), "--test", path("old-test.jsonl"), "--json", "--max-new-tokens", "4"}, "eval");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  const json e = json::parse(r.out);
  EXPECT_GT(e.at("trained_tokens").get<int64_t>(), 0);
  EXPECT_TRUE(e.contains("exact_match"));
  EXPECT_GT(e.at("loss").get<double>(), 0);

  r = run({"generate", "--model", path("base"), "--prompt", "hello", "--max-new-tokens", "3"}, "generate");
  ASSERT_EQ(r.code, kExitOk) << r.describe();

  r = run({"fisher", "--model", path("base"), "--data", path("old.jsonl"), "--samples", "8", "--path", "batched"},
          "fisher");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  ASSERT_TRUE(fs::exists(dir_ / "base" / "ewc.safetensors"));

  ASSERT_EQ(run({"init", "--workspace", path("ws")}, "init").code, kExitOk);
  r = run({"import", path("base"), "--name", "support-v1", "--workspace", path("ws"), "--replay-data", path("old.jsonl")},
          "import");
  ASSERT_EQ(r.code, kExitOk) << r.describe();

  round_config("pass.json", 1e9);
  round_config("fail.json", 0.0);
  r = run({"train", "--config", path("fail.json"), "--data", path("new.jsonl"), "--workspace", path("ws"), "--json"},
          "train-fail");
  ASSERT_EQ(r.code, kExitRejected) << r.describe();
  r = run({"train", "--config", path("pass.json"), "--data", path("new.jsonl"), "--workspace", path("ws"), "--json"},
          "train-pass");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("status"), "production");
  EXPECT_EQ(j.at("model_id"), "support-v3");  // v2 was the rejected attempt
  Workspace ws = Workspace::open(path("ws"));
  Registry registry(ws.db());
  EXPECT_EQ(registry.get("support-v2").status, VersionStatus::kRejected);
  EXPECT_EQ(registry.production()->model_id, "support-v3");
  // θ* is the version's own weights, which ewc.safetensors does not store a second time.
  const auto ewc = load_safetensors((dir_ / "ws" / "versions" / "support-v3" / "ewc.safetensors").string());
  EXPECT_TRUE(ewc.tensors.count("fisher.model.norm.weight"));
  for (const auto& [name, t] : ewc.tensors) EXPECT_NE(name.rfind("anchor.", 0), 0u) << name;
  EXPECT_EQ(ewc.metadata.at("anchor_weights_sha256").size(), 64u);
  std::vector<std::string> stored;
  for (const auto& score : registry.get("support-v3").scores) stored.push_back(score.test_set + "/" + score.metric);
  for (const char* want : {"new/token_accuracy", "new/loss", "old/loss", "old/perplexity"})
    EXPECT_NE(std::find(stored.begin(), stored.end(), want), stored.end()) << want;
  // The counts beside the metrics are not scores.
  EXPECT_EQ(std::find(stored.begin(), stored.end(), "new/trained_tokens"), stored.end());
}

TEST_F(LlamaCli, BadHuggingFaceDirectoriesWriteNothing) {
  ASSERT_EQ(run({"init", "--workspace", path("ws")}, "init").code, kExitOk);
  const fs::path hf = dir_ / "hf";
  fs::create_directories(hf);
  json config = json::parse(cli_test::read_text(kSource / "models" / "llama-tiny" / "config.json"));
  auto import = [&](const std::string& tag) {
    write_text(hf / "config.json", config.dump());
    return run({"import", "--from-hf", hf.string(), "--name", "x", "--workspace", path("ws")}, tag);
  };
  // A mixture-of-experts config: refused by key before anything is read.
  config["num_local_experts"] = 8;
  CliResult r = import("moe");
  EXPECT_EQ(r.code, kExitCheckpoint) << r.describe();
  EXPECT_NE(r.err.find("num_local_experts"), std::string::npos) << r.err;
  config.erase("num_local_experts");
  // A shard index that names a missing file.
  write_text(hf / "model.safetensors.index.json", json({{"weight_map", {{"model.norm.weight", "shard-1.safetensors"}}}}).dump());
  r = import("shard");
  EXPECT_EQ(r.code, kExitCheckpoint) << r.describe();
  EXPECT_NE(r.err.find("shard-1.safetensors"), std::string::npos) << r.err;
  // A model of another family.
  config["model_type"] = "gemma2";
  r = import("gemma");
  EXPECT_EQ(r.code, kExitCheckpoint) << r.describe();
  EXPECT_NE(r.err.find("\"gemma2\""), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_empty(dir_ / "ws" / "versions") || !fs::exists(dir_ / "ws" / "versions"));
  Workspace ws = Workspace::open(path("ws"));
  EXPECT_TRUE(Registry(ws.db()).list().empty());
}

TEST_F(LlamaCli, TokenizeRendersChatsWithTheirMask) {
  const std::string preset = (kSource / "models" / "llama-tiny").string();
  const std::string chat =
      R"({"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"ok"}]})";
  const fs::path in = dir_ / "chat.jsonl";
  write_text(in, chat + "\n");
  CliResult r = cli_test::run_cli({"tokenize", "--tokenizer", preset, "--chat", "--mask"}, dir_, "tokenize", in);
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  const json j = json::parse(r.out);
  ASSERT_EQ(j.at("ids").size(), j.at("mask").size());
  // retain's template over bytes: <|user|> h i <|end|> <|assistant|> o k <|end|>; trained: o k <|end|>.
  EXPECT_EQ(j.at("ids").size(), 8u) << r.out;
  EXPECT_EQ(j.at("mask"), json({0, 0, 0, 0, 0, 1, 1, 1})) << r.out;
  r = cli_test::run_cli({"tokenize", "--tokenizer", preset, "--mask"}, dir_, "mask-alone", in);
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  r = cli_test::run_cli({"tokenize", "--tokenizer", preset, "--chat", "--chat-template", "nope"}, dir_, "bad-template", in);
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find("chatml"), std::string::npos) << r.err;  // the message lists the built-in templates
}

}  // namespace
}  // namespace retain
