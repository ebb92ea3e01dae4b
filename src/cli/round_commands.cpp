// Flags and library calls of `retain train` and `retain gate` (see round_commands.h).
#include "round_commands.h"

#include <iostream>

#include "flags.h"
#include "retain/config.h"
#include "retain/distributed.h"
#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/log.h"
#include "retain/pipeline.h"
#include "retain/sweep.h"
#include "retain/workspace.h"

namespace retain::cli {

namespace {

// Flags that set one key of a round config section, with their help.
const std::vector<std::pair<std::string, std::string>> kRoundFlags = {
    {"replay.ratio", "share of replayed examples in the mix, in [0, 1) (default 0.3), or auto: 0.3, then 0.5 "
                     "after a regression or 0.2 after a missed minimum, until the gate passes"},
    {"replay.strategy", "diverse | uniform | proportional"},
    {"ewc.lambda", "EWC strength λ in λ/2 Σ F (θ − θ*)²; 0 disables the penalty"},
    {"ewc.gamma", "online EWC decay of the base's Fisher, in [0, 1]"},
    {"ewc.estimator", "Fisher estimator: empirical | true | batch"},
    {"ewc.num_samples", "examples the Fisher is estimated on"},
};

std::string flag_name(const std::string& dotted) {
  const auto dot = dotted.find('.');
  const std::string section = dotted.substr(0, dot), key = dotted.substr(dot + 1);
  if (section == "replay" && key == "ratio") return "--replay-ratio";
  if (section == "replay") return "--replay-" + dashed(key);
  if (section == "ewc" && (key == "lambda" || key == "gamma")) return "--ewc-" + key;
  if (key == "num_samples") return "--fisher-samples";
  return "--" + dashed(key);
}

// "0,1,10" → {0, 1, 10}; ConfigError naming the flag on anything else.
std::vector<double> number_list(const std::string& flag, const std::string& text) {
  std::vector<double> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    try {
      size_t used = 0;
      out.push_back(std::stod(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::logic_error&) {
      throw ConfigError(flag + ": expected comma-separated numbers, got \"" + text + "\"");
    }
    start = comma + 1;
  }
  return out;
}

}  // namespace

RoundCommands::RoundCommands(CLI::App& app) {
  train_ = app.add_subcommand("train", "one continual round: replay + EWC fine-tune, gate, register, promote");
  auto* t = train_;
  t->add_option("--config", config_path_, "round config (JSON: replay, ewc, training, eval, gate)");
  t->add_option("--data", data_, "the new training data (chat JSONL)");
  t->add_option("--base", base_, "base version id (default: the production version)");
  t->add_option("--resume", resume_, "continue the interrupted round RUN (a folder name under runs/)");
  t->add_option("--workspace", workspace_, kWorkspaceHelp);
  t->add_option("--name", name_, "versions are NAME-v<N> (default: the base's name)");
  t->add_flag("--no-promote", no_promote_, "register a passing candidate without promoting it");
  t->add_flag("--promote-stale", promote_stale_,
              "promote a passing candidate even when production changed while the round ran (it is "
              "kept a candidate otherwise)")->excludes("--no-promote");
  t->add_flag("--json", json_, "print the result as one JSON object");
  t->add_option("--wait-lock", wait_lock_s_, "wait up to SECONDS for another job's workspace lock")
      ->capture_default_str();
  t->add_option("--set", overrides_, "override any config key: section.key=value (repeatable)");
  t->add_option("--nproc", nproc_, "data-parallel: N local workers train (and estimate the Fisher) on "
                "their shares of every batch through c10d; rank 0 alone evaluates, gates and registers")
      ->capture_default_str();
  add_config_flags(*t, false);

  sweep_ = app.add_subcommand("sweep", "rounds for a grid of EWC λ and replay ratios in a scratch copy of the workspace");
  sweep_->add_option("--config", config_path_, "round config (JSON)")->required();
  sweep_->add_option("--data", data_, "the new training data (chat JSONL)")->required();
  sweep_->add_option("--lambda", lambdas_, "EWC strengths, comma-separated (e.g. 0,1,10,100,1000)")->required();
  sweep_->add_option("--replay-ratio", ratios_, "replay ratios, comma-separated (e.g. 0,0.1,0.3,0.5)")->required();
  sweep_->add_option("--base", base_, "base version id (default: the production version)");
  sweep_->add_option("--workspace", workspace_, kWorkspaceHelp);
  sweep_->add_option("--old", old_set_, "the test set of the old task (default: the one the base scores better on)");
  sweep_->add_option("--new", new_set_, "the test set of the new task");
  sweep_->add_option("--out", out_dir_, "results folder (default <workspace>/sweeps/<UTC time>)");
  sweep_->add_option("--plot", plot_, "also write the SVG plot to FILE");
  sweep_->add_flag("--keep-workspace", keep_workspace_, "keep the scratch workspace with every candidate");
  sweep_->add_option("--set", overrides_, "override any config key: section.key=value (repeatable)");
  sweep_->add_flag("--json", json_, "print the table as JSON");
  add_config_flags(*sweep_, true);

  gate_ = app.add_subcommand("gate", "re-run the evaluation gate for a version against the current production");
  gate_->add_option("--version", version_, "the version id")->required();
  gate_->add_option("--config", config_path_, "round config whose \"gate\" and \"eval\" sections to use")->required();
  gate_->add_option("--workspace", workspace_, kWorkspaceHelp);
  gate_->add_option("--device", device_, "cpu | cuda | cuda:N (default: the config's training.device)");
  gate_->add_flag("--json", json_, "print the result as JSON");
}

void RoundCommands::add_config_flags(CLI::App& command, bool for_sweep) {
  for (const auto& [key, help] : kRoundFlags)
    if (!for_sweep || (key != "replay.ratio" && key != "ewc.lambda"))
      command.add_option(flag_name(key), section_flags_[key], help);
  const nlohmann::json defaults = RoundConfig{}.to_json().at("training");
  for (const auto& key : TrainConfig::keys()) {
    command.add_option("--" + dashed(key), section_flags_["training." + key], "training: " + key)
        ->default_str(defaults.at(key).is_string() ? defaults.at(key).get<std::string>() : defaults.at(key).dump());
  }
  lora_flags_.add_to(command);
}

nlohmann::json RoundCommands::config_with_flags() {
  nlohmann::json j = load_json_file(config_path_);
  if (!j.is_object()) throw ConfigError(config_path_ + ": a round config must be a JSON object");
  resolve_config_paths(j, config_path_, {"gate.test_sets.*"});
  // A flag's type is its key's in the config itself: RoundConfig's defaults, not a copy here.
  const nlohmann::json defaults = RoundConfig{}.to_json();
  for (const auto& [key, value] : section_flags_) {
    if (value.empty()) continue;
    const auto dot = key.find('.');
    const std::string section = key.substr(0, dot), name = key.substr(dot + 1);
    const nlohmann::json& def = defaults.at(section).at(name);
    j[section][name] = key == "replay.ratio" && value == "auto" ? nlohmann::json("auto") : flag_value(name, value, def);
    // Training values are checked alone first, so that an error names the flag, not the file.
    if (section == "training") TrainConfig::from_json({{name, j[section][name]}}, flag_name(key));
  }
  if (!name_.empty()) j["name"] = name_;
  lora_flags_.apply(j);
  for (const std::string& o : overrides_) {  // the same for --set training.KEY=VALUE
    nlohmann::json alone = nlohmann::json::object();
    apply_overrides(alone, {o});
    if (alone.contains("training") && alone["training"].is_object())
      TrainConfig::from_json(alone["training"], "--set " + o);
  }
  apply_overrides(j, overrides_);
  if (!j.contains("training") || !j["training"].is_object()) j["training"] = nlohmann::json::object();
  if (!j["training"].contains("threads") || j["training"]["threads"] == 0) {  // the CPUs free now
    j["training"]["threads"] = default_threads();
    log()->info("{} CPU thread(s) (the CPUs free now; --threads N to choose)", j["training"]["threads"].get<int>());
  }
  return j;
}

bool RoundCommands::run(int& exit_code) {
  if (train_->parsed()) exit_code = train();
  else if (gate_->parsed()) exit_code = gate();
  else if (sweep_->parsed()) exit_code = sweep();
  else return false;
  return true;
}

int RoundCommands::train() {
  if (nproc_ > 1 && !DistEnv::from_env().distributed()) return launch_local_workers(nproc_, worker_argv());
  const bool follower = DistEnv::from_env().rank != 0;
  if (follower) log()->set_level(spdlog::level::warn);  // rank 0 reports
  RoundOptions options;
  options.workspace = Workspace::resolve(workspace_);
  options.promote = !no_promote_;
  options.promote_stale = promote_stale_;
  options.lock_wait_s = wait_lock_s_;
  if (!json_) progress_bar_on_tty();
  std::vector<RoundResult> attempts;
  if (!resume_.empty()) {
    if (!config_path_.empty() || !data_.empty() || !base_.empty() || !overrides_.empty())
      throw ConfigError("--resume takes the config, data and base from the run's round.json; drop the other flags");
    for (const auto& [key, value] : section_flags_)
      if (!value.empty()) throw ConfigError("--resume takes its settings from round.json; drop " + flag_name(key));
    if (lora_flags_.any())
      throw ConfigError("--resume takes its settings from round.json; drop " + lora_flags_.first_given());
    attempts.push_back(resume_round(resume_, options));
  } else {
    if (config_path_.empty() || data_.empty()) throw ConfigError("retain train needs --config FILE and --data FILE");
    const RoundConfig config = RoundConfig::from_json(config_with_flags(), config_path_);
    options.data = data_;
    options.base = base_;
    attempts = run_round_auto(config, options);
  }
  const RoundResult& result = attempts.back();
  if (follower) return kExitOk;
  if (json_) {
    nlohmann::json j = result.to_json();
    if (attempts.size() > 1) {
      j["attempts"] = nlohmann::json::array();
      for (const auto& a : attempts) j["attempts"].push_back(a.to_json());
    }
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << attempts_summary(attempts);
    if (!result.note.empty()) std::cout << "note: " << result.note << "\n";
  }
  return result.status == "rejected" ? kExitRejected : kExitOk;
}

int RoundCommands::gate() {
  progress_bar_on_tty();
  nlohmann::json j = load_json_file(config_path_);
  if (j.is_object()) resolve_config_paths(j, config_path_, {"gate.test_sets.*"});
  const RoundConfig config = RoundConfig::from_json(j, config_path_);
  const auto r = regate(Workspace::resolve(workspace_), version_, config.gate, config.eval,
                        device_.empty() ? config.training.device : device_);
  if (json_) {
    std::cout << r.to_json().dump(2) << "\n";
  } else {
    std::cout << "gate for " << r.model_id << " against production "
              << (r.production_model_id.empty() ? "(none)" : r.production_model_id) << ": "
              << (r.gate.passed ? "PASSED" : "FAILED") << "\n";
    for (const auto& c : r.gate.checks) {
      std::cout << "  " << c.test_set << " " << c.metric << " " << (c.score ? std::to_string(*c.score) : "-");
      if (c.production) std::cout << " (production " << *c.production << ")";
      std::cout << (c.passed ? " pass" : " FAIL") << "\n";
    }
    for (const auto& f : r.gate.failures) std::cout << "  ✗ " << f.message << "\n";
  }
  return r.gate.passed ? kExitOk : kExitRejected;
}

int RoundCommands::sweep() {
  progress_bar_on_tty();
  nlohmann::json j = config_with_flags();
  if (j.contains("replay") && j["replay"].is_object()) j["replay"].erase("ratio");  // the sweep sets it
  const RoundConfig config = RoundConfig::from_json(j, config_path_);
  SweepOptions options;
  options.workspace = Workspace::resolve(workspace_);
  options.data = data_;
  options.base = base_;
  options.lambdas = number_list("--lambda", lambdas_);
  options.ratios = number_list("--replay-ratio", ratios_);
  options.old_set = old_set_;
  options.new_set = new_set_;
  options.out_dir = out_dir_;
  options.keep_workspace = keep_workspace_;
  const SweepResult result = run_sweep(config, options);
  if (!plot_.empty()) write_file_atomic(plot_, result.svg());
  if (json_) std::cout << result.to_json().dump(2) << "\n";
  else std::cout << result.table();
  return kExitOk;
}

}  // namespace retain::cli
