// Flags, library calls and printing of the registry subcommands (see registry_commands.h).
#include "registry_commands.h"
#include "flags.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>

#include "retain/errors.h"
#include "retain/registry.h"
#include "retain/text_table.h"
#include "retain/workspace.h"

namespace retain::cli {

namespace {

std::string utc_time(int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4g", value);
  return text;
}

std::string or_dash(const std::string& text) { return text.empty() ? "-" : text; }

// "test_set metric=value metric=value; test_set …" (scores arrive sorted by test set).
std::string compact_scores(const VersionRecord& r) {
  std::string out, test_set;
  for (const Score& s : r.scores) {
    if (s.test_set != test_set) {
      if (!out.empty()) out += "; ";
      out += s.test_set;
      test_set = s.test_set;
    }
    out += " " + s.metric + "=" + number(s.value);
  }
  return or_dash(out);
}

void print_versions(const std::vector<VersionRecord>& records) {
  std::vector<std::vector<std::string>> rows = {
      {"MODEL_ID", "VERSION", "STATUS", "PARENT", "CREATED", "SCORES"}};
  for (const VersionRecord& r : records) {
    rows.push_back({r.model_id, std::to_string(r.version), status_name(r.status),
                    or_dash(r.parent_model_id), utc_time(r.created_at), compact_scores(r)});
  }
  std::fputs(format_table(rows).c_str(), stdout);
}

nlohmann::json versions_json(const std::vector<VersionRecord>& records) {
  nlohmann::json out = nlohmann::json::array();
  for (const VersionRecord& r : records) out.push_back(r.to_json());
  return out;
}

void print_gate(const nlohmann::json& gate) {
  if (gate.is_null()) {
    std::printf("gate        not run\n");
    return;
  }
  const bool passed = gate.value("passed", false);
  const nlohmann::json failures = gate.value("failures", nlohmann::json::array());
  std::printf("gate        %s (%zu failure%s)\n", passed ? "passed" : "rejected", failures.size(),
              failures.size() == 1 ? "" : "s");
  for (const auto& f : failures) {
    const bool has_message = f.is_object() && f.contains("message") && f["message"].is_string();
    std::printf("  - %s\n", has_message ? f["message"].get<std::string>().c_str() : f.dump().c_str());
  }
}

// `text` with every line after the first indented by `indent` spaces.
std::string indent_lines(const std::string& text, size_t indent) {
  std::string out;
  for (const char c : text) {
    out += c;
    if (c == '\n') out += std::string(indent, ' ');
  }
  return out;
}

// The production id in the last history entry, and the one it replaced.
std::pair<std::string, std::string> last_change(Registry& registry) {
  const auto history = registry.history();
  if (history.empty()) return {};
  return {history.back().model_id, history.back().previous_model_id};
}

}  // namespace

RegistryCommands::RegistryCommands(CLI::App& app) {
  import_ = app.add_subcommand("import", "register a model directory as a version (copied into the workspace)");
  auto* dir = import_->add_option("dir", source_dir_,
                                  "retain model directory: config.json + model.safetensors (+ tokenizer, ewc)");
  auto* from_hf = import_->add_option("--from-hf", hf_dir_,
                                      "a Hugging Face GPT-2 directory (config.json, model.safetensors, "
                                      "tokenizer files), converted to retain's layout");
  dir->excludes(from_hf);
  auto* peft = import_->add_option("--peft", peft_dir_,
                                   "a PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors) "
                                   "over the registered full version --base");
  peft->excludes(dir);
  peft->excludes(from_hf);
  import_->add_option("--base", base_id_, "--peft: the registered full version the adapter applies to");
  import_->add_option("--name", model_id_, "the version's id: 1–128 of A–Z a–z 0–9 . _ -")->required();
  import_->add_option("--replay-data", replay_files_,
                      "chat JSONL files added to the replay buffer with the version as source");
  auto* promote = import_->add_flag("--promote", promote_flag_,
                                    "make it production even when another version is");
  auto* no_promote = import_->add_flag("--no-promote", no_promote_flag_,
                                       "keep it a candidate even when there is no production version");
  promote->excludes(no_promote);
  import_->add_option("--wait-lock", wait_lock_s_, "wait up to SECONDS for another job's workspace lock")
      ->capture_default_str();
  import_->add_option("--workspace", workspace_, kWorkspaceHelp);
  add_registry(app);
}

void RegistryCommands::add_registry(CLI::App& app) {
  auto* registry = app.add_subcommand("registry", "model versions: list, show, promote, roll back");
  registry->require_subcommand(1);

  list_ = registry->add_subcommand("list", "every version, oldest first");
  show_ = registry->add_subcommand("show", "everything about one version");
  show_->add_option("id", model_id_, "model id")->required();
  promote_ = registry->add_subcommand("promote", "make a version production (the current one is retired)");
  promote_->add_option("id", model_id_, "model id")->required();
  promote_->add_flag("--force", force_, "promote even a version the gate rejected");
  promote_->add_option("--note", note_, "recorded in the history");
  rollback_ = registry->add_subcommand("rollback", "make the previous production version production again");
  rollback_->add_option("--note", note_, "recorded in the history");
  lineage_ = registry->add_subcommand("lineage", "a version, its parent, its parent's parent, …");
  lineage_->add_option("id", model_id_, "model id")->required();
  history_ = registry->add_subcommand("history", "every import, promotion and rollback, in order");
  merge_ = registry->add_subcommand("merge", "a LoRA version merged into its base, registered as a full version");
  merge_->add_option("id", model_id_, "the LoRA version's id")->required();
  merge_->add_option("--name", merged_id_, "the merged version's id (default: ID-merged)");
  merge_->add_option("--workspace", workspace_, kWorkspaceHelp);

  for (auto* sub : {list_, show_, lineage_, history_}) sub->add_flag("--json", json_, "print JSON");
  for (auto* sub : {list_, show_, promote_, rollback_, lineage_, history_})
    sub->add_option("--workspace", workspace_, kWorkspaceHelp);
}

bool RegistryCommands::run(int& exit_code) {
  if (import_->parsed()) exit_code = import_model();
  else if (list_->parsed()) exit_code = list();
  else if (show_->parsed()) exit_code = show();
  else if (promote_->parsed()) exit_code = promote();
  else if (rollback_->parsed()) exit_code = rollback();
  else if (lineage_->parsed()) exit_code = lineage();
  else if (history_->parsed()) exit_code = history();
  else if (merge_->parsed()) exit_code = merge();
  else return false;
  return true;
}

int RegistryCommands::import_model() {
  if (int(!source_dir_.empty()) + int(!hf_dir_.empty()) + int(!peft_dir_.empty()) != 1)
    throw ConfigError("import: give a model directory, --from-hf DIR for a Hugging Face directory, or --peft DIR "
                      "--base ID for a LoRA adapter");
  if (peft_dir_.empty() != base_id_.empty())
    throw ConfigError(peft_dir_.empty() ? "import: --base is for --peft DIR" : "import --peft needs --base ID");
  Workspace ws = Workspace::open(Workspace::resolve(workspace_));
  ImportOptions options;
  options.from_hf = !hf_dir_.empty();
  options.source_dir = options.from_hf ? hf_dir_ : !peft_dir_.empty() ? peft_dir_ : source_dir_;
  options.adapter_base = base_id_;
  options.model_id = model_id_;
  options.replay_files = replay_files_;
  if (promote_flag_) options.promote = true;
  if (no_promote_flag_) options.promote = false;
  options.lock_wait_s = wait_lock_s_;
  const ImportResult r = import_version(ws, options);
  std::printf("imported %s as %s (version %ld, %s)%s\n", options.source_dir.c_str(), model_id_.c_str(),
              long(r.version.version), status_name(r.version.status),
              r.previous_production.empty() ? "" : ("; retired " + r.previous_production).c_str());
  if (options.from_hf && r.version.settings.value("added_embedding_rows", 0) > 0) {
    std::printf("wte grew by %d rows (mean embedding) for the chat tokens\n",
                r.version.settings.value("added_embedding_rows", 0));
  }
  if (!replay_files_.empty()) {
    std::printf("replay buffer: added %ld examples (%ld duplicates)\n", long(r.replay_added),
                long(r.replay_duplicates));
  }
  return kExitOk;
}

int RegistryCommands::merge() {
  Workspace ws = Workspace::open(Workspace::resolve(workspace_));
  const VersionRecord r = merge_lora_version(ws, model_id_, merged_id_.empty() ? model_id_ + "-merged" : merged_id_);
  std::printf("merged %s into %s (version %ld, candidate, a full model over %s); promote it with `retain registry "
              "promote %s`, and compute its Fisher with `retain fisher --model %s/%s --data FILE` before rounds with EWC\n",
              model_id_.c_str(), r.model_id.c_str(), long(r.version),
              r.settings.value("adapter_base_model_id", "").c_str(), r.model_id.c_str(), ws.dir().c_str(),
              r.model_dir.c_str());
  return kExitOk;
}

int RegistryCommands::list() {
  Workspace ws = Workspace::open(Workspace::resolve(workspace_), Workspace::reading());
  const auto records = Registry(ws.db()).list();
  if (json_) std::cout << versions_json(records).dump(2) << "\n";
  else if (records.empty()) std::printf("no versions yet; register one with `retain import DIR --name ID`\n");
  else print_versions(records);
  return kExitOk;
}

int RegistryCommands::show() {
  Workspace ws = Workspace::open(Workspace::resolve(workspace_), Workspace::reading());
  const VersionRecord r = Registry(ws.db()).get(model_id_);
  if (json_) {
    std::cout << r.to_json().dump(2) << "\n";
    return kExitOk;
  }
  std::printf("model_id    %s\nversion     %ld\nstatus      %s\nparent      %s\ncreated     %s\n",
              r.model_id.c_str(), long(r.version), status_name(r.status),
              or_dash(r.parent_model_id).c_str(), utc_time(r.created_at).c_str());
  std::printf("run         %s\nmodel_dir   %s\n", or_dash(r.run_id).c_str(), r.model_dir.c_str());
  std::printf("scores%s\n", r.scores.empty() ? "      -" : "");
  for (const Score& s : r.scores) {
    std::printf("  %s %s = %s  (data %s)\n", s.test_set.c_str(), s.metric.c_str(),
                number(s.value).c_str(), or_dash(s.data_hash).c_str());
  }
  print_gate(r.gate);
  std::printf("settings    %s\n", indent_lines(r.settings.dump(2), 12).c_str());
  // Each data file: its role, its name as the round was given it (the key itself for an import,
  // whose keys are file names), and its hash.
  std::printf("data%s\n", r.data_hashes.empty() ? "        -" : "");
  for (const auto& [role, hash] : r.data_hashes.items()) {
    const std::string file = r.data_files.is_object() && r.data_files.contains(role)
                                 ? r.data_files.at(role).get<std::string>() : "";
    std::printf("  %-20s %s  %s\n", role.c_str(), file.empty() ? "-" : file.c_str(),
                hash.is_string() ? hash.get<std::string>().c_str() : hash.dump().c_str());
  }
  return kExitOk;
}

int RegistryCommands::promote() {
  Workspace ws = Workspace::open(Workspace::resolve(workspace_));
  Registry registry(ws.db());
  registry.promote(model_id_, note_, force_);
  const auto [now, before] = last_change(registry);
  std::printf("%s is production%s\n", now.c_str(), before.empty() ? "" : (" (" + before + " retired)").c_str());
  return kExitOk;
}

int RegistryCommands::rollback() {
  Workspace ws = Workspace::open(Workspace::resolve(workspace_));
  const RollbackResult r = rollback_production(ws, note_);
  std::printf("rolled back: %s is production again (%s retired); replay buffer: %ld example(s) of %s removed, "
              "%ld it evicted put back\n",
              r.model_id.c_str(), r.retired.c_str(), long(r.replay_removed), r.retired.c_str(),
              long(r.replay_restored));
  return kExitOk;
}

int RegistryCommands::lineage() {
  Workspace ws = Workspace::open(Workspace::resolve(workspace_), Workspace::reading());
  const auto chain = Registry(ws.db()).lineage(model_id_);
  if (json_) std::cout << versions_json(chain).dump(2) << "\n";
  else print_versions(chain);
  return kExitOk;
}

int RegistryCommands::history() {
  Workspace ws = Workspace::open(Workspace::resolve(workspace_), Workspace::reading());
  const auto entries = Registry(ws.db()).history();
  if (json_) {
    nlohmann::json out = nlohmann::json::array();
    for (const HistoryEntry& e : entries) out.push_back(e.to_json());
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (entries.empty()) {
    std::printf("no history yet\n");
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"SEQ", "AT", "ACTION", "MODEL_ID", "PREVIOUS", "NOTE"}};
  for (const HistoryEntry& e : entries) {
    rows.push_back({std::to_string(e.seq), utc_time(e.at), e.action, e.model_id,
                    or_dash(e.previous_model_id), e.note});
  }
  std::fputs(format_table(rows).c_str(), stdout);
  return kExitOk;
}

}  // namespace retain::cli
