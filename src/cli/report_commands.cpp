// Flags and the library call of `retain report` (see report_commands.h).
#include "report_commands.h"
#include "flags.h"

#include <cstdio>

#include "retain/errors.h"
#include "retain/report.h"
#include "retain/workspace.h"

namespace retain::cli {

ReportCommands::ReportCommands(CLI::App& app) {
  report_ = app.add_subcommand("report", "the workspace as one HTML page: lineage, scores, gate verdicts, "
                                         "training curves, replay mix, sweeps");
  report_->add_option("--workspace", workspace_, kWorkspaceHelp);
  report_->add_option("--out", out_, "the HTML file to write (default: report.html in the workspace folder)");
}

bool ReportCommands::run(int& exit_code) {
  if (!report_->parsed()) return false;
  exit_code = report();
  return true;
}

int ReportCommands::report() {
  const std::string path = write_report(Workspace::resolve(workspace_), out_);
  std::printf("%s\n", path.c_str());
  return kExitOk;
}

}  // namespace retain::cli
