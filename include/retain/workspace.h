// The workspace: where a team's state lives (design.md, "Where state lives"; docs/workspace.md).
//
//   <dir>/retain.db   SQLite (WAL): schema version, replay buffer, later versions/scores/runs
//   <dir>/versions/   model directories of registered versions
//   <dir>/runs/       one folder per fine-tuning run
//
// The database schema is a list of migrations; opening a workspace applies the ones it lacks, each
// in its own transaction, so later issues add tables by appending to the list.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "retain/sqlite.h"

namespace retain {

inline constexpr const char* kWorkspaceEnv = "RETAIN_WORKSPACE";
inline constexpr const char* kDefaultWorkspace = "retain-workspace";
inline constexpr const char* kWorkspaceDbFile = "retain.db";
// PRAGMA application_id of every retain database: "RTN1" in ASCII.
inline constexpr int32_t kApplicationId = 0x52544E31;

// The schema, as migrations: element i takes schema_version i to i + 1. Append only; never edit a
// migration that has shipped. schema_version is the size of this list.
const std::vector<std::string>& schema_migrations();
int64_t current_schema_version();

class Workspace {
 public:
  struct Options {
    int busy_timeout_ms = 10000;  // how long to wait for a database another process has locked
    // For commands that only read (registry list/show, buffer stats, report, a version lookup):
    // the database is opened read-only, nothing is migrated, and a workspace on a read-only mount
    // works. RegistryError when its schema is older than this build's (open it writable once).
    bool read_only = false;
  };
  static Options reading() {
    Options o;
    o.read_only = true;
    return o;
  }

  // The folder to use: `flag` when non-empty, else $RETAIN_WORKSPACE when set and non-empty,
  // else ./retain-workspace.
  static std::string resolve(const std::string& flag);

  // Creates the workspace in `dir` (folders, database in WAL mode, schema), or brings an existing
  // one up to date. Throws RegistryError when DIR/retain.db exists but is not a retain database,
  // or was made by a newer retain.
  static Workspace init(const std::string& dir, const Options& options);
  static Workspace init(const std::string& dir) { return init(dir, Options()); }

  // Opens an existing workspace, applying pending migrations. Throws RegistryError
  // ("no retain workspace at DIR; run `retain init`") when DIR/retain.db is missing, when the file
  // is not a retain database, when its schema is newer than this build, and when the database
  // stays locked longer than the busy timeout.
  static Workspace open(const std::string& dir, const Options& options);
  static Workspace open(const std::string& dir) { return open(dir, Options()); }

  const std::string& dir() const { return dir_; }
  std::string db_path() const { return dir_ + "/" + kWorkspaceDbFile; }
  std::string versions_dir() const { return dir_ + "/versions"; }
  std::string runs_dir() const { return dir_ + "/runs"; }
  Database& db() { return *db_; }
  // The schema_version recorded in the database.
  int64_t schema_version();

 private:
  Workspace(std::string dir, std::unique_ptr<Database> db);
  std::string dir_;
  std::unique_ptr<Database> db_;
};

// An exclusive lock on a workspace for a job that changes versions or the buffer over minutes (a
// round, an import): flock(2) on <dir>/lock, so the kernel drops it when the process dies, even by
// SIGKILL. The file holds the holder's pid and description for the error message.
class WorkspaceLock {
 public:
  // Takes the lock, waiting up to `wait_s` seconds (0: try once). Throws RegistryError
  // ("workspace DIR is locked by pid N (what); …") when it stays held.
  static WorkspaceLock acquire(const std::string& dir, const std::string& holder, double wait_s);
  WorkspaceLock(WorkspaceLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  WorkspaceLock& operator=(WorkspaceLock&&) = delete;
  WorkspaceLock(const WorkspaceLock&) = delete;
  ~WorkspaceLock();

 private:
  explicit WorkspaceLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace retain
