// The SQLite wrapper (see sqlite.h). Errors become RegistryError naming the database file; a busy
// database becomes an actionable "locked by another process" message.
#include "retain/sqlite.h"

#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <utility>

#include "retain/errors.h"

namespace retain {

// ---- Database ------------------------------------------------------------------------------

Database::Database(const std::string& path, const Options& options)
    : path_(path), busy_timeout_ms_(options.busy_timeout_ms) {
  int flags = (options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
  if (options.create && !options.read_only) flags |= SQLITE_OPEN_CREATE;
  std::string name = path;
  if (options.read_only) {
    std::error_code ec;
    const auto folder = std::filesystem::absolute(path, ec).parent_path();
    if (::access(folder.c_str(), W_OK) != 0) {
      // A URI, so that immutable=1 applies; '?' and '#' in the path must not start its query.
      std::string escaped;
      for (const char c : std::filesystem::absolute(path, ec).string()) {
        if (c == '?' || c == '#' || c == '%') {
          char hex[4];
          std::snprintf(hex, sizeof hex, "%%%02X", static_cast<unsigned char>(c));
          escaped += hex;
        } else {
          escaped += c;
        }
      }
      name = "file:" + escaped + "?immutable=1";
      flags |= SQLITE_OPEN_URI;
    }
  }
  const int rc = sqlite3_open_v2(name.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw RegistryError("cannot open database " + path + ": " + message);
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, busy_timeout_ms_);
  // Not a query: this does not read the file, so a non-database fails later with a clear message.
  if (sqlite3_exec(db_, "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr) != SQLITE_OK) {
    const std::string message = sqlite3_errmsg(db_);
    sqlite3_close(db_);
    db_ = nullptr;
    throw RegistryError("cannot configure database " + path + ": " + message);
  }
}

Database::~Database() {
  // Statements are owned by their RAII objects, all gone by now; close_v2 tolerates leftovers.
  if (db_) sqlite3_close_v2(db_);
}

void Database::fail(int rc, const std::string& what) const {
  const int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    char waited[32];
    std::snprintf(waited, sizeof waited, "%.1f s", busy_timeout_ms_ / 1000.0);
    throw RegistryError("database " + path_ + " is locked by another process (waited " + waited +
                        " while " + what + "); try again when that process has finished");
  }
  if (primary == SQLITE_NOTADB) {
    throw RegistryError(path_ + " is not a retain database (not an SQLite file)");
  }
  const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  throw RegistryError("database " + path_ + ": " + what + ": " + message);
}

void Database::exec(const std::string& sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    std::string message = error ? error : "";
    sqlite3_free(error);
    const int primary = rc & 0xff;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED || primary == SQLITE_NOTADB) {
      fail(rc, "running " + sql.substr(0, 40));
    }
    throw RegistryError("database " + path_ + ": " + message + " (in: " + sql.substr(0, 80) + ")");
  }
}

int64_t Database::query_int(const std::string& sql) {
  Statement s(*this, sql);
  return s.step() ? s.column_int(0) : 0;
}

int64_t Database::changes() const { return sqlite3_changes64(db_); }
int64_t Database::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
bool Database::in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }

// ---- Statement -----------------------------------------------------------------------------

Statement::Statement(Database& db, const std::string& sql) : db_(&db) {
  const int rc = sqlite3_prepare_v2(db.handle(), sql.c_str(), static_cast<int>(sql.size()),
                                    &stmt_, nullptr);
  if (rc != SQLITE_OK) db.fail(rc, "preparing \"" + sql.substr(0, 60) + "\"");
}

Statement::~Statement() {
  if (stmt_) sqlite3_finalize(stmt_);
}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)) {}

Statement& Statement::bind(int index, int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK) db_->fail(rc, "binding parameter " + std::to_string(index));
  return *this;
}

Statement& Statement::bind(int index, double value) {
  const int rc = sqlite3_bind_double(stmt_, index, value);
  if (rc != SQLITE_OK) db_->fail(rc, "binding parameter " + std::to_string(index));
  return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
  const int rc = sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT,
                                     SQLITE_UTF8);
  if (rc != SQLITE_OK) db_->fail(rc, "binding parameter " + std::to_string(index));
  return *this;
}

Statement& Statement::bind_blob(int index, const void* data, size_t size) {
  const int rc = sqlite3_bind_blob64(stmt_, index, data, size, SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) db_->fail(rc, "binding parameter " + std::to_string(index));
  return *this;
}

Statement& Statement::bind_null(int index) {
  const int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK) db_->fail(rc, "binding parameter " + std::to_string(index));
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const std::string sql = sqlite3_sql(stmt_) ? sqlite3_sql(stmt_) : "";
  sqlite3_reset(stmt_);
  db_->fail(rc, "running \"" + sql.substr(0, 60) + "\"");
}

void Statement::run() {
  while (step()) {
  }
  reset();
}

void Statement::reset() { sqlite3_reset(stmt_); }

int64_t Statement::column_int(int column) const { return sqlite3_column_int64(stmt_, column); }
double Statement::column_double(int column) const { return sqlite3_column_double(stmt_, column); }
bool Statement::column_is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::string Statement::column_text(int column) const {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  const int size = sqlite3_column_bytes(stmt_, column);
  return text ? std::string(text, static_cast<size_t>(size)) : std::string();
}

std::string Statement::column_blob(int column) const {
  const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
  const int size = sqlite3_column_bytes(stmt_, column);
  return data ? std::string(data, static_cast<size_t>(size)) : std::string();
}

// ---- Transaction ---------------------------------------------------------------------------

Transaction::Transaction(Database& db, Mode mode) : db_(db) {
  if (db.in_transaction()) {
    static std::atomic<uint64_t> counter{0};
    savepoint_ = "retain_sp_" + std::to_string(++counter);
    db_.exec("SAVEPOINT " + savepoint_);
  } else {
    db_.exec(mode == Mode::kWrite ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED");
  }
}

Transaction::~Transaction() {
  if (done_) return;
  // Never throws from a destructor: a failed rollback leaves SQLite to roll back on close.
  if (savepoint_.empty()) {
    sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  } else {
    const std::string sql = "ROLLBACK TO " + savepoint_ + "; RELEASE " + savepoint_;
    sqlite3_exec(db_.handle(), sql.c_str(), nullptr, nullptr, nullptr);
  }
}

void Transaction::commit() {
  if (done_) return;
  if (savepoint_.empty()) {
    db_.exec("COMMIT");
  } else {
    db_.exec("RELEASE " + savepoint_);
  }
  done_ = true;
}

}  // namespace retain
