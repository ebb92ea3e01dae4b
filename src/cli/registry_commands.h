// The registry subcommands of `retain`: import, and registry {list, show, promote, rollback,
// lineage, history}. Each registers its flags on construction and calls the library.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace retain::cli {

class RegistryCommands {
 public:
  explicit RegistryCommands(CLI::App& app);
  // Runs the parsed subcommand if it is one of these: returns true and sets `exit_code`.
  // Returns false when another subcommand was parsed.
  bool run(int& exit_code);

 private:
  void add_registry(CLI::App& app);
  int import_model();
  int list();
  int show();
  int promote();
  int rollback();
  int lineage();
  int history();
  int merge();

  CLI::App* import_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* show_ = nullptr;
  CLI::App* promote_ = nullptr;
  CLI::App* rollback_ = nullptr;
  CLI::App* lineage_ = nullptr;
  CLI::App* history_ = nullptr;
  CLI::App* merge_ = nullptr;

  std::string workspace_, model_id_, source_dir_, hf_dir_, peft_dir_, base_id_, merged_id_, note_;
  std::vector<std::string> replay_files_;
  bool json_ = false, force_ = false, promote_flag_ = false, no_promote_flag_ = false;
  double wait_lock_s_ = 0;
};

}  // namespace retain::cli
