// The exceptions the library throws, and the exit codes the CLI maps them to.
//
// Every message says what went wrong where (file, line, parameter) and, where it helps, what to do.
// An expected negative outcome (a gate that rejects, a lookup that finds nothing) is a value,
// never one of these.
#pragma once

#include <stdexcept>
#include <string>

namespace retain {

// Base of every error the library throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad input data: a malformed JSONL line, an invalid conversation, an unreadable data file.
class DataError : public Error {
 public:
  using Error::Error;
};

// A bad job config or flag: unknown key, wrong type, value out of range.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A malformed or mismatched model directory, safetensors file or training checkpoint.
class CheckpointError : public Error {
 public:
  using Error::Error;
};

// The workspace database or the version registry refused an operation.
class RegistryError : public Error {
 public:
  using Error::Error;
};

// Training could not go on (for example too many non-finite losses in a row).
class TrainingError : public Error {
 public:
  using Error::Error;
};

// Process exit codes of the `retain` CLI (documented in README.md).
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,    // a bug or an unexpected system failure
  kExitUsage = 2,       // bad command line or job config (ConfigError)
  kExitRejected = 3,    // the evaluation gate rejected the candidate (`retain train`, `retain gate`)
  kExitCheckpoint = 4,  // bad model directory or checkpoint (CheckpointError)
  kExitRegistry = 5,    // workspace / registry refused (RegistryError)
  kExitTraining = 6,    // training failed (TrainingError)
  kExitData = 7,        // bad input data (DataError)
  kExitIo = 8,          // a file could not be read or written: no space, no permission (Error)
};

}  // namespace retain
