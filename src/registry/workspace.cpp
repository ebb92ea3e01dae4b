// Opening and creating a workspace (see workspace.h): resolve the folder, check that retain.db is
// really ours (SQLite header, application_id, meta table), and apply pending schema migrations.
#include "retain/workspace.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <thread>

#include "retain/errors.h"
#include "retain/log.h"

namespace retain {
namespace {

namespace fs = std::filesystem;

std::string hex32(int64_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08llx", static_cast<unsigned long long>(value & 0xffffffff));
  return text;
}

// Per-connection settings. FULL sync makes a returned commit durable across power loss (WAL
// itself keeps readers such as sampling from blocking a writer). The page cache is a fixed 8 MiB,
// so memory does not grow with the buffer; it holds the upper b-tree levels of a million-row
// buffer, which keeps an add's cost nearly flat. The WAL is truncated back to 64 MiB after a
// checkpoint. Temporary structures stay in memory.
void configure(Database& db) {
  db.exec("PRAGMA synchronous = FULL; PRAGMA journal_size_limit = 67108864;"
          "PRAGMA cache_size = -8192; PRAGMA temp_store = MEMORY;");
}

// Refuses anything that is not a retain database; SQLITE_NOTADB becomes RegistryError in Database.
void check_identity(Database& db) {
  const int64_t app_id = db.query_int("PRAGMA application_id");
  if (app_id != kApplicationId) {
    throw RegistryError(db.path() + " is an SQLite database but not a retain database "
                        "(application_id " + hex32(app_id) + ", expected " +
                        hex32(kApplicationId) + "); point --workspace at a retain workspace or "
                        "run `retain init` in an empty folder");
  }
  if (db.query_int("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'") == 0) {
    throw RegistryError(db.path() + " is not a retain database (no meta table)");
  }
}

int64_t read_version(Database& db) {
  auto s = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'");
  if (!s.step()) throw RegistryError(db.path() + " is not a retain database (no schema_version)");
  return std::stoll(s.column_text(0));
}

// Applies each pending migration in its own write transaction; the version is re-read inside it,
// so two processes opening an old workspace at once migrate it exactly once.
void migrate(Database& db) {
  const auto& migrations = schema_migrations();
  const int64_t latest = current_schema_version();
  const bool fresh = read_version(db) == 0;  // a new workspace: its schema is created, not news
  for (;;) {
    const int64_t version = read_version(db);
    if (version > latest) {
      throw RegistryError(db.path() + " has schema version " + std::to_string(version) +
                          " but this retain build knows only up to " + std::to_string(latest) +
                          "; use a newer retain");
    }
    if (version == latest) return;
    Transaction txn(db, Transaction::Mode::kWrite);
    if (read_version(db) != version) continue;  // someone else migrated meanwhile
    db.exec(migrations[static_cast<size_t>(version)]);
    db.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'")
        .bind(1, std::to_string(version + 1))
        .run();
    txn.commit();
    if (fresh) log()->debug("workspace database {}: schema version {} created", db.path(), version + 1);
    else log()->info("workspace database {} migrated to schema version {}", db.path(), version + 1);
  }
}

}  // namespace

Workspace::Workspace(std::string dir, std::unique_ptr<Database> db)
    : dir_(std::move(dir)), db_(std::move(db)) {}

std::string Workspace::resolve(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv(kWorkspaceEnv);
  if (env != nullptr && *env != '\0') return env;
  return kDefaultWorkspace;
}

Workspace Workspace::init(const std::string& dir, const Options& options) {
  std::error_code ec;
  auto make_folder = [&](const std::string& sub) {
    fs::create_directories(sub, ec);
    if (ec) throw RegistryError("cannot create workspace folder " + sub + ": " + ec.message());
  };
  make_folder(dir);  // the database's folder; versions/ and runs/ only once the database is ours
  Database::Options db_options;
  db_options.create = true;
  db_options.busy_timeout_ms = options.busy_timeout_ms;
  auto db = std::make_unique<Database>(dir + "/" + kWorkspaceDbFile, db_options);
  const int64_t app_id = db->query_int("PRAGMA application_id");  // NOTADB throws here
  if (app_id == 0) {
    // Only an empty database becomes a workspace: never adopt someone else's SQLite file.
    if (db->query_int("SELECT count(*) FROM sqlite_master") != 0) check_identity(*db);
    db->exec("PRAGMA journal_mode = WAL");  // persistent; cannot change inside a transaction
    Transaction txn(*db, Transaction::Mode::kWrite);
    if (db->query_int("PRAGMA application_id") == 0) {
      db->exec("PRAGMA application_id = " + std::to_string(kApplicationId) + ";"
               "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
               "INSERT INTO meta VALUES ('schema_version', '0');");
    }
    txn.commit();
  }
  check_identity(*db);
  make_folder(dir + "/versions");
  make_folder(dir + "/runs");
  configure(*db);
  migrate(*db);
  return Workspace(dir, std::move(db));
}

Workspace Workspace::open(const std::string& dir, const Options& options) {
  const std::string path = dir + "/" + kWorkspaceDbFile;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw RegistryError("no retain workspace at " + dir + "; run `retain init" +
                        (dir == kDefaultWorkspace ? std::string() : " --workspace " + dir) +
                        "` (or set --workspace / $" + kWorkspaceEnv + ")");
  }
  Database::Options db_options;
  db_options.busy_timeout_ms = options.busy_timeout_ms;
  db_options.read_only = options.read_only;
  auto db = std::make_unique<Database>(path, db_options);
  check_identity(*db);
  if (options.read_only) {
    const int64_t version = read_version(*db);
    if (version != current_schema_version())
      throw RegistryError(path + " has schema version " + std::to_string(version) + "; this retain build reads " +
                          std::to_string(current_schema_version()) +
                          (version < current_schema_version()
                               ? " (run a command that changes the workspace, or `retain init`, once to migrate it)"
                               : " (use a newer retain)"));
    return Workspace(dir, std::move(db));
  }
  configure(*db);
  migrate(*db);
  return Workspace(dir, std::move(db));
}

int64_t Workspace::schema_version() { return read_version(*db_); }

WorkspaceLock WorkspaceLock::acquire(const std::string& dir, const std::string& holder, double wait_s) {
  const std::string path = dir + "/lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw RegistryError(path + ": cannot open the workspace lock: " + std::strerror(errno));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(std::max(0.0, wait_s));
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      const int err = errno;
      ::close(fd);
      throw RegistryError(path + ": cannot lock the workspace: " + std::strerror(err));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      char text[256] = {0};
      const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
      ::close(fd);
      std::string who = n > 0 ? std::string(text, n) : "another process";
      while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
      throw RegistryError("workspace " + dir + " is locked by " + who +
                          "; wait for it to finish (or pass --wait-lock SECONDS)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::string text = "pid " + std::to_string(::getpid()) + " (" + holder + ")\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) != ssize_t(text.size()))
    log()->warn("{}: could not record the lock holder", path);
  return WorkspaceLock(fd);
}

WorkspaceLock::~WorkspaceLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the flock
}

}  // namespace retain
