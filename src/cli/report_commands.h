// `retain report`: the workspace as one self-contained HTML page (report.h, docs/report.md).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace retain::cli {

class ReportCommands {
 public:
  explicit ReportCommands(CLI::App& app);
  // Runs the parsed subcommand if it is `report`: returns true and sets `exit_code`.
  // Returns false when another subcommand was parsed.
  bool run(int& exit_code);

 private:
  int report();

  CLI::App* report_ = nullptr;
  std::string workspace_, out_;
};

}  // namespace retain::cli
