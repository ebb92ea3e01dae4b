// The `retain` executable: parses flags, builds a job, calls the library. No logic of its own
// beyond turning exceptions into one error line and a documented exit code.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "bench_commands.h"
#include "commands.h"
#include "flags.h"
#include "model_commands.h"
#include "registry_commands.h"
#include "replay_commands.h"
#include "report_commands.h"
#include "round_commands.h"
#include "tokenize_commands.h"
#include "retain/errors.h"
#include "retain/log.h"

int main(int argc, char** argv) {
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console->set_pattern("%^%L%$ %H:%M:%S %v");
  auto logger = std::make_shared<spdlog::logger>(retain::kLoggerName, console);
  spdlog::register_logger(logger);

  CLI::App app{"retain: continual fine-tuning without catastrophic forgetting"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "retain 0.1.0");
  auto* verbose = app.add_flag("-q,--quiet", "only warnings and errors on stderr");
  retain::cli::Commands commands(app);
  retain::cli::ReplayCommands replay_commands(app);
  retain::cli::RoundCommands round_commands(app);
  retain::cli::RegistryCommands registry_commands(app);
  retain::cli::BenchCommands bench_commands(app);
  retain::cli::TokenizeCommands tokenize_commands(app);
  retain::cli::ModelCommands model_commands(app);
  retain::cli::ReportCommands report_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() != 0) {
      if (const std::string hint = retain::cli::usage_hint(app, argc, argv); !hint.empty()) {
        std::cerr << hint << "\n";
        return retain::kExitUsage;
      }
    }
    return app.exit(e) == 0 ? retain::kExitOk : retain::kExitUsage;
  }
  if (verbose->count() > 0) logger->set_level(spdlog::level::warn);
  try {
    int exit_code = retain::kExitOk;
    if (replay_commands.run(exit_code)) return exit_code;
    if (round_commands.run(exit_code)) return exit_code;
    if (registry_commands.run(exit_code)) return exit_code;
    if (bench_commands.run(exit_code)) return exit_code;
    if (tokenize_commands.run(exit_code)) return exit_code;
    if (model_commands.run(exit_code)) return exit_code;
    if (report_commands.run(exit_code)) return exit_code;
    return commands.run();
  } catch (const retain::ConfigError& e) {
    logger->error("error: {}", e.what());
    return retain::kExitUsage;
  } catch (const retain::DataError& e) {
    logger->error("data error: {}", e.what());
    return retain::kExitData;
  } catch (const retain::CheckpointError& e) {
    logger->error("checkpoint error: {}", e.what());
    return retain::kExitCheckpoint;
  } catch (const retain::RegistryError& e) {
    logger->error("registry error: {}", e.what());
    return retain::kExitRegistry;
  } catch (const retain::TrainingError& e) {
    logger->error("training failed: {}", e.what());
    return retain::kExitTraining;
  } catch (const retain::Error& e) {  // a system call refused: a full disk, a missing permission
    logger->error("error: {}", e.what());
    return retain::kExitIo;
  } catch (const std::filesystem::filesystem_error& e) {
    logger->error("error: {}", e.what());
    return retain::kExitIo;
  } catch (const std::exception& e) {
    logger->error("internal error: {}", e.what());
    return retain::kExitInternal;
  }
}
