// A small RAII wrapper over SQLite for the workspace database (replay buffer now, registry later).
//
// Every failure throws RegistryError with the database path and SQLite's message. A database that
// another process holds locked is waited for up to the busy timeout, then reported as "locked".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace retain {

class Database;

// A prepared statement. Parameters are 1-based (as in SQLite), columns 0-based. Bound text and
// blobs are copied, so the arguments may be temporaries.
class Statement {
 public:
  Statement(Database& db, const std::string& sql);
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, int64_t value);
  Statement& bind(int index, double value);
  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, const char* text) { return bind(index, std::string_view(text)); }
  Statement& bind_blob(int index, const void* data, size_t size);
  Statement& bind_null(int index);

  // Advances to the next row: true when a row is ready, false when the statement is done.
  // Throws RegistryError on failure (the statement is reset first).
  bool step();
  // Steps to the end, discarding rows, then resets. For INSERT/UPDATE/DELETE.
  void run();
  // Makes the statement ready to run again; bindings are kept.
  void reset();

  int64_t column_int(int column) const;
  double column_double(int column) const;
  std::string column_text(int column) const;
  std::string column_blob(int column) const;
  bool column_is_null(int column) const;

 private:
  Database* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

class Database {
 public:
  struct Options {
    bool create = false;              // create the file when missing (otherwise it must exist)
    int busy_timeout_ms = 10000;      // how long to wait for another process's lock
    // Open for reading only. Where the database's folder cannot be written either (a read-only
    // mount, an archived workspace), SQLite cannot make the WAL index it needs, so the file is then
    // opened as immutable: nobody can be changing it there.
    bool read_only = false;
  };

  // Opens `path`. Throws RegistryError when it cannot be opened. Foreign keys are switched on and
  // the busy timeout set; nothing is read yet, so a file that is not SQLite fails on first use.
  Database(const std::string& path, const Options& options);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements without results. Throws RegistryError.
  void exec(const std::string& sql);
  Statement prepare(const std::string& sql) { return Statement(*this, sql); }
  // The first column of the first row of `sql` as an integer (0 when there is no row).
  int64_t query_int(const std::string& sql);

  int64_t changes() const;
  int64_t last_insert_rowid() const;
  bool in_transaction() const;
  const std::string& path() const { return path_; }
  int busy_timeout_ms() const { return busy_timeout_ms_; }
  sqlite3* handle() { return db_; }

  // Throws RegistryError for SQLite result code `rc` while doing `what`: "locked" with the timeout
  // for SQLITE_BUSY, "not a database" for SQLITE_NOTADB, SQLite's message otherwise.
  [[noreturn]] void fail(int rc, const std::string& what) const;

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
  int busy_timeout_ms_ = 0;
};

// A transaction that rolls back unless commit() is called. When the database is already inside a
// transaction it nests as a SAVEPOINT, so library calls compose into one caller's transaction
// (for example: register + promote + commit staged examples).
class Transaction {
 public:
  enum class Mode {
    kRead,   // BEGIN DEFERRED: a consistent snapshot for several reads
    kWrite,  // BEGIN IMMEDIATE: takes the write lock now (waiting up to the busy timeout)
  };
  explicit Transaction(Database& db, Mode mode = Mode::kWrite);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  // Throws RegistryError when the commit fails (the transaction is then rolled back).
  void commit();

 private:
  Database& db_;
  std::string savepoint_;  // "" for a top-level transaction
  bool done_ = false;
};

}  // namespace retain
