// Flags and library calls of `retain train` and `retain gate` (see round_commands.h).
#include "round_commands.h"

#include <iostream>

#include "flags.h"
#include "retain/config.h"
#include "retain/errors.h"
#include "retain/pipeline.h"
#include "retain/workspace.h"

namespace retain::cli {

namespace {

// Flags that set one key of a round config section, with their help.
const std::vector<std::pair<std::string, std::string>> kRoundFlags = {
    {"replay.ratio", "share of replayed examples in the mix, in [0, 1) (default 0.3)"},
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
  t->add_flag("--json", json_, "print the result as one JSON object");
  t->add_option("--wait-lock", wait_lock_s_, "wait up to SECONDS for another job's workspace lock")
      ->capture_default_str();
  t->add_option("--set", overrides_, "override any config key: section.key=value (repeatable)");
  for (const auto& [key, help] : kRoundFlags) t->add_option(flag_name(key), section_flags_[key], help);
  const nlohmann::json defaults = TrainConfig{}.to_json();
  for (const auto& key : TrainConfig::keys()) {
    if (key == "ewc_lambda") continue;
    t->add_option("--" + dashed(key), section_flags_["training." + key], "training: " + key)
        ->default_str(defaults.at(key).is_string() ? defaults.at(key).get<std::string>() : defaults.at(key).dump());
  }

  gate_ = app.add_subcommand("gate", "re-run the evaluation gate for a version against the current production");
  gate_->add_option("--version", version_, "the version id")->required();
  gate_->add_option("--config", config_path_, "round config whose \"gate\" and \"eval\" sections to use")->required();
  gate_->add_option("--workspace", workspace_, kWorkspaceHelp);
  gate_->add_option("--device", device_, "cpu | cuda | cuda:N (default: the config's training.device)");
  gate_->add_flag("--json", json_, "print the result as JSON");
}

bool RoundCommands::run(int& exit_code) {
  if (train_->parsed()) exit_code = train();
  else if (gate_->parsed()) exit_code = gate();
  else return false;
  return true;
}

int RoundCommands::train() {
  RoundOptions options;
  options.workspace = Workspace::resolve(workspace_);
  options.promote = !no_promote_;
  options.lock_wait_s = wait_lock_s_;
  if (progress_bar_on_tty() && !json_) options.hooks.on_progress = draw_progress;
  RoundResult result;
  if (!resume_.empty()) {
    if (!config_path_.empty() || !data_.empty() || !base_.empty() || !overrides_.empty())
      throw ConfigError("--resume takes the config, data and base from the run's round.json; drop the other flags");
    for (const auto& [key, value] : section_flags_)
      if (!value.empty()) throw ConfigError("--resume takes its settings from round.json; drop " + flag_name(key));
    result = resume_round(resume_, options);
  } else {
    if (config_path_.empty() || data_.empty()) throw ConfigError("retain train needs --config FILE and --data FILE");
    nlohmann::json j = load_json_file(config_path_);
    if (!j.is_object()) throw ConfigError(config_path_ + ": a round config must be a JSON object");
    const nlohmann::json train_defaults = TrainConfig{}.to_json();
    for (const auto& [key, value] : section_flags_) {
      if (value.empty()) continue;
      const auto dot = key.find('.');
      const std::string section = key.substr(0, dot), name = key.substr(dot + 1);
      const nlohmann::json def = section == "training" ? train_defaults.at(name)
                                 : (name == "strategy" || name == "estimator") ? nlohmann::json("")
                                 : name == "num_samples" ? nlohmann::json(1) : nlohmann::json(0.0);
      j[section][name] = flag_value(name, value, def);
    }
    if (!name_.empty()) j["name"] = name_;
    apply_overrides(j, overrides_);
    const RoundConfig config = RoundConfig::from_json(j, config_path_);
    options.data = data_;
    options.base = base_;
    result = run_round(config, options);
  }
  if (json_) std::cout << result.to_json().dump(2) << "\n";
  else std::cout << result.summary();
  return result.status == "rejected" ? kExitRejected : kExitOk;
}

int RoundCommands::gate() {
  const RoundConfig config = RoundConfig::from_json(load_json_file(config_path_), config_path_);
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

}  // namespace retain::cli
