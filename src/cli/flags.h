// Flag helpers shared by the `retain` subcommands.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace retain::cli {

// The help of every --workspace flag.
inline constexpr const char* kWorkspaceHelp =
    "workspace folder (default: $RETAIN_WORKSPACE, else ./retain-workspace)";

// "max_steps" → "max-steps": config keys as flag names.
std::string dashed(std::string key);

// A flag value typed on the command line, converted to the JSON type of the key's default `def`.
// ConfigError naming the flag when it does not parse.
nlohmann::json flag_value(const std::string& key, const std::string& text, const nlohmann::json& def);

// The LoRA flags of finetune and train (--lora-rank, --lora-alpha, --lora-dropout,
// --lora-targets), each stored in flags["lora.<key>"].
struct LoraFlags {
  std::map<std::string, std::string> values;
  void add_to(CLI::App& app);
  // Sets j["lora"][key] for every flag given (rank an integer, alpha and dropout numbers, targets a
  // comma-separated list), over what the config file holds. ConfigError naming the flag.
  void apply(nlohmann::json& j) const;
  bool any() const;
  // The first flag given ("" when none), for errors.
  std::string first_given() const;
};

// A flag's value must be a finite number in [lo, hi] (checked on the text, before CLI11 converts
// it, so that 18446744073709551616 is refused rather than saturated and NaN is no number).
CLI::Validator bounded(double lo, double hi);

// What a --model argument names: a model directory as it is; else `production` or a registered
// version id in the workspace (`workspace_flag`, else $RETAIN_WORKSPACE, else ./retain-workspace),
// as that version's folder. ConfigError saying what was looked for when it is neither.
// With `directories` false, `model` is looked up as a version only.
std::string resolve_model(const std::string& model, const std::string& workspace_flag, bool directories = true);

// Makes --help show each option's type and its default in effect ("--lr FLOAT … [default: 0.0003]");
// call before adding subcommands, which inherit it.
void use_typed_help(CLI::App& app);

// For a command line CLI11 refused: "unknown command \"trian\"; did you mean \"train\"?" or
// "retain train: unknown flag --replay; did you mean --replay-ratio?" ("" when nothing is close).
std::string usage_hint(CLI::App& app, int argc, char** argv);

// Adds a log sink writing to `path` (a run folder's train.log).
void log_to_run_folder(const std::string& path);

// When stderr is a terminal: log lines clear the progress bar first, every long phase (training,
// Fisher, evaluation, generation) draws its bar on stderr (set_progress_bar), and true is returned.
bool progress_bar_on_tty();

// This process's command line (/proc/self/exe, then the arguments) without --nproc and its value:
// what each local worker runs.
std::vector<std::string> worker_argv();

}  // namespace retain::cli
