// End-to-end tests of `retain import` and `retain registry …`: the executable (RETAIN_BIN) run as a
// child process on a workspace, checking exit codes (errors.h), JSON output, what lands in
// versions/, and that a refused import leaves neither a folder nor a row behind.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "retain/errors.h"
#include "retain/model.h"
#include "retain/registry.h"
#include "retain/replay.h"
#include "retain/workspace.h"
#include "test_util.h"

#ifdef RETAIN_BIN

namespace retain {
namespace {

namespace fs = std::filesystem;
using cli_test::CliResult;
using nlohmann::json;

const fs::path kSource = RETAIN_SOURCE_DIR;
const std::string kPreset = (kSource / "models" / "gpt-tiny").string();
const std::string kTrainFull = (kSource / "data" / "support" / "release1-train.jsonl").string();

class RegistryCli : public testing::Test {
 protected:
  void SetUp() override {
    // A trained-looking model directory: gpt-tiny's fresh weights saved, plus an EWC file that
    // import must carry along.
    LoadedModel m = load_model_dir(kPreset, 1);
    save_model_dir(path("model"), m.config, m.model, *m.tokenizer, false);
    cli_test::write_text(tmp_.path / "model" / "ewc.safetensors", "ewc bytes");
    cli_test::write_head(kTrainFull, tmp_.path / "replay.jsonl", 10);
    cli_test::write_text(tmp_.path / "bad.jsonl", R"({"messages":[{"role":"robot","content":"hi"}]})" "\n");
  }

  std::string path(const std::string& name) const { return tmp_ / name; }
  CliResult run(std::vector<std::string> args, const std::string& workspace = "ws") const {
    args.push_back("--workspace");
    args.push_back(path(workspace));
    return cli_test::run_cli(args, tmp_.path, args[0]);
  }
  json run_json(const std::vector<std::string>& args) const {
    const CliResult r = run(args);
    EXPECT_EQ(r.code, kExitOk) << r.describe();
    return r.code == kExitOk ? json::parse(r.out) : json();
  }
  // status by model_id, from `registry list --json`.
  std::map<std::string, std::string> statuses() const {
    std::map<std::string, std::string> out;
    for (const auto& v : run_json({"registry", "list", "--json"})) out[v.at("model_id")] = v.at("status");
    return out;
  }

  testing_util::TempDir tmp_;
};

TEST_F(RegistryCli, ImportListPromoteRollbackHistory) {
  ASSERT_EQ(run({"init"}).code, kExitOk);
  CliResult r = run({"import", path("model"), "--name", "base"});
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_NE(r.out.find("version 1, production"), std::string::npos) << r.out;
  for (const char* file : {"config.json", "model.safetensors", "retain_tokenizer.json", "ewc.safetensors"})
    EXPECT_TRUE(fs::is_regular_file(tmp_.path / "ws" / "versions" / "base" / file)) << file;
  EXPECT_EQ(cli_test::read_text(tmp_.path / "ws" / "versions" / "base" / "model.safetensors"),
            cli_test::read_text(tmp_.path / "model" / "model.safetensors"));

  ASSERT_EQ(run({"import", path("model"), "--name", "v2"}).code, kExitOk);  // a candidate
  ASSERT_EQ(run({"import", path("model"), "--name", "v3", "--promote"}).code, kExitOk);
  EXPECT_EQ(statuses(), (std::map<std::string, std::string>{
                            {"base", "retired"}, {"v2", "candidate"}, {"v3", "production"}}));

  const json list = run_json({"registry", "list", "--json"});
  ASSERT_EQ(list.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const json& v = list.at(i);
    EXPECT_EQ(v.at("version"), i + 1);
    for (const char* key : {"model_id", "parent_model_id", "created_at", "eval_scores", "status"})
      EXPECT_TRUE(v.contains(key)) << key;
    EXPECT_TRUE(v.at("parent_model_id").is_null());
    EXPECT_TRUE(v.at("eval_scores").is_object());
    EXPECT_GT(v.at("created_at").get<int64_t>(), 1600000000);
    EXPECT_EQ(v.at("data_hashes").at("model.safetensors").get<std::string>().rfind("sha256:", 0), 0u);
  }
  EXPECT_EQ(list.at(0).at("model_dir"), "versions/base");
  EXPECT_EQ(list.at(0).at("settings").at("imported_from"), path("model"));

  r = run({"registry", "list"});
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_NE(r.out.find("MODEL_ID"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("production"), std::string::npos) << r.out;

  r = run({"registry", "promote", "v2", "--note", "by hand"});
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_NE(r.out.find("v2 is production (v3 retired)"), std::string::npos) << r.out;
  EXPECT_EQ(run({"registry", "promote", "v2"}).code, kExitRegistry);     // already production
  EXPECT_EQ(run({"registry", "promote", "ghost"}).code, kExitRegistry);  // unknown
  // History as a stack: base, v3, v2 → v3 → base → nothing left.
  r = run({"registry", "rollback"});
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_NE(r.out.find("v3 is production again (v2 retired)"), std::string::npos) << r.out;
  ASSERT_EQ(run({"registry", "rollback"}).code, kExitOk);
  r = run({"registry", "rollback"});
  EXPECT_EQ(r.code, kExitRegistry);
  EXPECT_NE(r.err.find("nothing to roll back to: base"), std::string::npos) << r.err;
  EXPECT_EQ(statuses().at("base"), "production");

  const json history = run_json({"registry", "history", "--json"});
  ASSERT_EQ(history.size(), 5u);
  const std::vector<std::string> actions = {"import", "import", "promote", "rollback", "rollback"};
  const std::vector<std::string> models = {"base", "v3", "v2", "v3", "base"};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(history.at(i).at("action"), actions[i]) << i;
    EXPECT_EQ(history.at(i).at("model_id"), models[i]) << i;
  }
  EXPECT_EQ(history.at(2).at("note"), "by hand");
  r = run({"registry", "history"});
  EXPECT_NE(r.out.find("rollback"), std::string::npos) << r.out;
}

// A workspace nobody may write (an archive, a read-only mount): the commands that only read work;
// one that writes fails as a registry error naming the database. Root ignores file modes, so as
// root the commands run as the user nobody (setpriv, util-linux).
TEST_F(RegistryCli, AReadOnlyWorkspaceStillListsShowsAndSamples) {
  ASSERT_EQ(run({"init"}).code, kExitOk);
  ASSERT_EQ(run({"import", path("model"), "--name", "base", "--promote", "--replay-data", path("replay.jsonl")}).code,
            kExitOk);
  auto set_writable = [&](bool writable) {
    for (const auto& e : fs::recursive_directory_iterator(tmp_.path / "ws"))
      fs::permissions(e.path(), fs::perms::owner_write, writable ? fs::perm_options::add : fs::perm_options::remove);
    fs::permissions(tmp_.path / "ws", fs::perms::owner_write, writable ? fs::perm_options::add : fs::perm_options::remove);
  };
  fs::permissions(tmp_.path, fs::perms::others_read | fs::perms::others_exec, fs::perm_options::add);
  for (const auto& e : fs::recursive_directory_iterator(tmp_.path / "ws"))
    fs::permissions(e.path(), fs::perms::others_read | (e.is_directory() ? fs::perms::others_exec : fs::perms::none),
                    fs::perm_options::add);
  fs::permissions(tmp_.path / "ws", fs::perms::others_read | fs::perms::others_exec, fs::perm_options::add);
  set_writable(false);
  // nobody may not be able to reach the build folder (a checkout under /root): a copy of the binary
  // beside the workspace, which it can (the binary links LibTorch from the system, not the build).
  const fs::path bin = tmp_.path / "retain";
  fs::copy_file(RETAIN_BIN, bin);
  fs::permissions(bin, fs::perms::others_read | fs::perms::others_exec, fs::perm_options::add);
  auto reader = [&](const std::string& args, const std::string& tag) {
    const std::string as = ::geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
    const std::string out = "/tmp/retain_ro_" + std::to_string(::getpid()) + "_" + tag;
    const int status = std::system((as + bin.string() + " " + args + " --workspace " + path("ws") + " >" + out +
                                    ".out 2>" + out + ".err").c_str());
    CliResult r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = cli_test::read_text(out + ".out");
    r.err = cli_test::read_text(out + ".err");
    fs::remove(out + ".out");
    fs::remove(out + ".err");
    return r;
  };
  CliResult r = reader("registry list --json", "list");
  EXPECT_EQ(r.code, kExitOk) << r.describe();
  if (r.code == kExitOk) {
    EXPECT_EQ(json::parse(r.out).at(0).at("model_id"), "base");
  }
  r = reader("registry show base --json", "show");
  EXPECT_EQ(r.code, kExitOk) << r.describe();
  r = reader("buffer stats --json", "stats");
  EXPECT_EQ(r.code, kExitOk) << r.describe();
  if (r.code == kExitOk) {
    EXPECT_EQ(json::parse(r.out).at("size"), 10);
  }
  r = reader("buffer sample 3", "sample");
  EXPECT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3);
  r = reader("registry rollback", "write");
  EXPECT_EQ(r.code, kExitRegistry) << r.describe();
  EXPECT_NE(r.err.find("retain.db"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
  set_writable(true);
  EXPECT_EQ(statuses().at("base"), "production");  // nothing changed
  // A file the system will not let us write is exit 8 with the path and the reason, not a bug.
  r = run({"buffer", "sample", "3", "--out", path("no/such/folder/sample.jsonl")});
  EXPECT_EQ(r.code, kExitIo) << r.describe();
  EXPECT_NE(r.err.find("error: " + path("no/such/folder/sample.jsonl")), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No such file or directory"), std::string::npos) << r.err;
}

TEST_F(RegistryCli, ShowAndLineage) {
  ASSERT_EQ(run({"init"}).code, kExitOk);
  ASSERT_EQ(run({"import", path("model"), "--name", "base"}).code, kExitOk);
  {
    // A round's results, as the pipeline registers them.
    Workspace ws = Workspace::open(path("ws"));
    Registry registry(ws.db());
    VersionRecord r;
    r.model_id = "round-1";
    r.parent_model_id = "base";
    r.version = registry.reserve_version();
    r.status = VersionStatus::kRejected;
    r.settings = {{"ewc_lambda", 50}};
    r.scores = {{"support", "exact_match", 0.25, "sha256:aa"}};
    r.gate = {{"passed", false},
              {"failures", {{{"message", "support exact_match 0.25 is below the minimum 0.5"}}}}};
    registry.add(r);
  }
  CliResult r = run({"registry", "show", "round-1"});
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  for (const char* text : {"rejected", "support exact_match = 0.25", "below the minimum 0.5",
                           "\"ewc_lambda\": 50", "parent      base"})
    EXPECT_NE(r.out.find(text), std::string::npos) << text << "\n" << r.out;
  EXPECT_EQ(run_json({"registry", "show", "round-1", "--json"}).at("eval_scores").at("support").at("exact_match"), 0.25);
  EXPECT_EQ(run({"registry", "show", "ghost"}).code, kExitRegistry);

  const json chain = run_json({"registry", "lineage", "round-1", "--json"});
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain.at(0).at("model_id"), "round-1");
  EXPECT_EQ(chain.at(1).at("model_id"), "base");
  r = run({"registry", "lineage", "round-1"});
  EXPECT_NE(r.out.find("support exact_match=0.25"), std::string::npos) << r.out;

  EXPECT_EQ(run({"registry", "promote", "round-1"}).code, kExitRegistry);  // rejected
  ASSERT_EQ(run({"registry", "promote", "round-1", "--force"}).code, kExitOk);
  EXPECT_EQ(statuses().at("round-1"), "production");
}

TEST_F(RegistryCli, ImportWithBadReplayDataWritesNothing) {
  ASSERT_EQ(run({"init"}).code, kExitOk);
  CliResult r = run({"import", path("model"), "--name", "base", "--replay-data", path("replay.jsonl"),
                     path("bad.jsonl")});
  EXPECT_EQ(r.code, kExitData) << r.describe();
  EXPECT_NE(r.err.find("bad.jsonl:1"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_empty(tmp_.path / "ws" / "versions"));  // no folder, no temp leftovers
  EXPECT_TRUE(run_json({"registry", "list", "--json"}).empty());

  r = run({"import", path("model"), "--name", "base", "--replay-data", path("replay.jsonl")});
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_NE(r.out.find("added 10 examples"), std::string::npos) << r.out;
  const json stats = run_json({"buffer", "stats", "--json"});
  EXPECT_EQ(stats.at("size"), 10);
  EXPECT_EQ(stats.at("per_source").at(0).at("source"), "base");
  const json base = run_json({"registry", "show", "base", "--json"});
  EXPECT_TRUE(base.at("data_hashes").contains(path("replay.jsonl"))) << base.dump();
}

TEST_F(RegistryCli, ImportRefusals) {
  CliResult r = run({"import", path("model"), "--name", "base"});
  EXPECT_EQ(r.code, kExitRegistry) << r.describe();  // no workspace yet
  EXPECT_NE(r.err.find("retain init"), std::string::npos) << r.err;
  ASSERT_EQ(run({"init"}).code, kExitOk);

  r = run({"import", kPreset, "--name", "preset"});
  EXPECT_EQ(r.code, kExitCheckpoint) << r.describe();  // a preset has no weights
  EXPECT_NE(r.err.find("model.safetensors"), std::string::npos) << r.err;
  EXPECT_EQ(run({"import", path("nowhere"), "--name", "x"}).code, kExitCheckpoint);
  EXPECT_EQ(run({"import", path("model"), "--name", "a/b"}).code, kExitUsage);
  EXPECT_EQ(run({"import", path("model"), "--name", "x", "--promote", "--no-promote"}).code, kExitUsage);
  fs::create_directories(tmp_.path / "ws" / "versions" / "leftover");
  r = run({"import", path("model"), "--name", "leftover"});
  EXPECT_EQ(r.code, kExitRegistry) << r.describe();
  EXPECT_NE(r.err.find("not in the registry"), std::string::npos) << r.err;
  EXPECT_TRUE(run_json({"registry", "list", "--json"}).empty());

  r = run({"import", path("model"), "--name", "base", "--no-promote"});
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_EQ(statuses().at("base"), "candidate");
  r = run({"import", path("model"), "--name", "base"});
  EXPECT_EQ(r.code, kExitRegistry) << r.describe();
  EXPECT_NE(r.err.find("already in the registry"), std::string::npos) << r.err;
  EXPECT_EQ(run({"registry", "rollback"}).code, kExitRegistry);  // nothing in production
  EXPECT_EQ(run({"registry", "list"}, "missing").code, kExitRegistry);
}

TEST_F(RegistryCli, ConcurrentPromotesFromSeveralProcesses) {
  ASSERT_EQ(run({"init"}).code, kExitOk);
  constexpr int kProcesses = 4;
  {
    Workspace ws = Workspace::open(path("ws"));
    Registry registry(ws.db());
    for (int i = 0; i <= kProcesses; ++i) {
      VersionRecord r;
      r.model_id = "v" + std::to_string(i);
      r.version = registry.reserve_version();
      r.status = i == 0 ? VersionStatus::kProduction : VersionStatus::kCandidate;
      registry.add(r);
    }
  }
  std::vector<cli_test::CliProcess> processes;
  for (int i = 1; i <= kProcesses; ++i) {
    processes.push_back(cli_test::spawn_cli(
        {"registry", "promote", "v" + std::to_string(i), "--workspace", path("ws")}, tmp_.path,
        "promote-" + std::to_string(i)));
  }
  for (const auto& p : processes) {
    const CliResult r = cli_test::wait_cli(p);
    EXPECT_EQ(r.code, kExitOk) << r.describe();
  }
  const auto st = statuses();
  int production = 0;
  for (const auto& [id, status] : st) production += status == "production";
  EXPECT_EQ(production, 1);
  const json history = run_json({"registry", "history", "--json"});
  ASSERT_EQ(history.size(), 1u + kProcesses);
  std::set<std::string> promoted;
  for (size_t i = 1; i < history.size(); ++i) {
    EXPECT_EQ(history.at(i).at("previous_model_id"), history.at(i - 1).at("model_id")) << i;
    promoted.insert(history.at(i).at("model_id").get<std::string>());
  }
  EXPECT_EQ(promoted.size(), static_cast<size_t>(kProcesses));
  EXPECT_EQ(st.at(history.back().at("model_id").get<std::string>()), "production");
}

}  // namespace
}  // namespace retain

#endif  // RETAIN_BIN
