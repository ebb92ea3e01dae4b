// Tests of the workspace (workspace.h) and the SQLite wrapper (sqlite.h): layout, schema version,
// refusal of files that are not retain databases, the lock timeout, and nested transactions.
#include <gtest/gtest.h>

#include "test_util.h"
#include <sqlite3.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "retain/errors.h"
#include "retain/replay.h"
#include "retain/workspace.h"

namespace retain {
namespace {

using testing_util::registry_error;

namespace fs = std::filesystem;

fs::path fresh_dir() {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::temp_directory_path() /
                 ("retain_workspace_test_" + std::string(info->test_suite_name()) + "_" + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A raw connection, independent of the wrapper, to poke at or lock a database.
struct RawDb {
  explicit RawDb(const std::string& path) { EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK); }
  ~RawDb() { sqlite3_close(db); }
  int exec(const std::string& sql) { return sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr); }
  sqlite3* db = nullptr;
};

TEST(Workspace, InitCreatesLayoutAndSchema) {
  const fs::path dir = fresh_dir() / "ws";
  Workspace ws = Workspace::init(dir.string());
  EXPECT_TRUE(fs::is_regular_file(dir / "retain.db"));
  EXPECT_TRUE(fs::is_directory(dir / "versions"));
  EXPECT_TRUE(fs::is_directory(dir / "runs"));
  EXPECT_EQ(ws.schema_version(), current_schema_version());
  EXPECT_GE(current_schema_version(), 1);
  EXPECT_EQ(ws.db().query_int("PRAGMA application_id"), kApplicationId);
  EXPECT_EQ(ws.db().query_int("PRAGMA foreign_keys"), 1);
  auto mode = ws.db().prepare("PRAGMA journal_mode");
  ASSERT_TRUE(mode.step());
  EXPECT_EQ(mode.column_text(0), "wal");
  EXPECT_EQ(ReplayBuffer(ws.db()).max_size(), kDefaultReplayMaxSize);
}

TEST(Workspace, InitTwiceKeepsContents) {
  const fs::path dir = fresh_dir() / "ws";
  {
    Workspace ws = Workspace::init(dir.string());
    ReplayBuffer(ws.db()).set_max_size(77);
  }
  Workspace again = Workspace::init(dir.string());
  EXPECT_EQ(ReplayBuffer(again.db()).max_size(), 77);
  Workspace opened = Workspace::open(dir.string());
  EXPECT_EQ(ReplayBuffer(opened.db()).max_size(), 77);
}

TEST(Workspace, OpenWithoutWorkspaceSaysRunInit) {
  const fs::path dir = fresh_dir() / "missing";
  const std::string message = registry_error([&] { Workspace::open(dir.string()); });
  EXPECT_NE(message.find("no retain workspace at " + dir.string()), std::string::npos) << message;
  EXPECT_NE(message.find("retain init"), std::string::npos) << message;
}

TEST(Workspace, ResolveFlagThenEnvironmentThenDefault) {
  const char* saved = std::getenv(kWorkspaceEnv);
  const std::string old = saved ? saved : "";
  ::setenv(kWorkspaceEnv, "/from/env", 1);
  EXPECT_EQ(Workspace::resolve("/from/flag"), "/from/flag");
  EXPECT_EQ(Workspace::resolve(""), "/from/env");
  ::unsetenv(kWorkspaceEnv);
  EXPECT_EQ(Workspace::resolve(""), "retain-workspace");
  if (saved) ::setenv(kWorkspaceEnv, old.c_str(), 1);
}

TEST(Workspace, RefusesAFileThatIsNotSqlite) {
  const fs::path dir = fresh_dir();
  std::ofstream(dir / "retain.db") << "this is a text file, not a database\n";
  std::string message = registry_error([&] { Workspace::open(dir.string()); });
  EXPECT_NE(message.find("not a retain database"), std::string::npos) << message;
  message = registry_error([&] { Workspace::init(dir.string()); });
  EXPECT_NE(message.find("not a retain database"), std::string::npos) << message;
}

TEST(Workspace, RefusesAnotherApplicationsSqliteDatabase) {
  const fs::path dir = fresh_dir();
  {
    RawDb raw((dir / "retain.db").string());
    ASSERT_EQ(raw.exec("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('x');"), SQLITE_OK);
  }
  std::string message = registry_error([&] { Workspace::open(dir.string()); });
  EXPECT_NE(message.find("not a retain database"), std::string::npos) << message;
  message = registry_error([&] { Workspace::init(dir.string()); });
  EXPECT_NE(message.find("not a retain database"), std::string::npos) << message;
  RawDb raw((dir / "retain.db").string());  // and it was left alone
  EXPECT_EQ(raw.exec("SELECT name FROM users"), SQLITE_OK);
  // Nothing was created beside it before the refusal.
  EXPECT_FALSE(fs::exists(dir / "versions"));
  EXPECT_FALSE(fs::exists(dir / "runs"));
}

TEST(Workspace, ReadingOpensReadOnlyAndMigratesNothing) {
  const fs::path dir = fresh_dir() / "ws";
  Workspace::init(dir.string());
  {
    Workspace ws = Workspace::open(dir.string(), Workspace::reading());
    EXPECT_EQ(ws.schema_version(), current_schema_version());
    EXPECT_EQ(ReplayBuffer(ws.db()).size(), 0);
    const std::string message = registry_error([&] { ws.db().exec("UPDATE meta SET value = '1' WHERE key = 'x'"); });
    EXPECT_NE(message.find("readonly"), std::string::npos) << message;
  }
  {
    RawDb raw((dir / "retain.db").string());
    ASSERT_EQ(raw.exec("UPDATE meta SET value = '1' WHERE key = 'schema_version'"), SQLITE_OK);
  }
  const std::string message = registry_error([&] { Workspace::open(dir.string(), Workspace::reading()); });
  EXPECT_NE(message.find("has schema version 1;"), std::string::npos) << message;
  EXPECT_NE(message.find("once to migrate it"), std::string::npos) << message;
  RawDb raw((dir / "retain.db").string());  // still at version 1: reading migrated nothing
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(raw.db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "1");
  sqlite3_finalize(stmt);
}

TEST(Workspace, InitIsQuietAboutTheSchemaAndAnOlderWorkspaceSaysItMigrated) {
  const fs::path dir = fresh_dir() / "ws";
  testing_util::CapturedLog captured;
  Workspace::init(dir.string());
  for (const auto& line : captured.lines()) EXPECT_EQ(line.find("migrated"), std::string::npos) << line;
  {
    RawDb raw((dir / "retain.db").string());  // back to schema 5: without versions.data_files
    ASSERT_EQ(raw.exec("ALTER TABLE versions DROP COLUMN data_files"), SQLITE_OK);
    ASSERT_EQ(raw.exec("UPDATE meta SET value = '5' WHERE key = 'schema_version'"), SQLITE_OK);
  }
  Workspace ws = Workspace::open(dir.string());
  EXPECT_EQ(ws.schema_version(), current_schema_version());
  const auto lines = captured.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("migrated to schema version 6"), std::string::npos) << lines[0];
}

TEST(Workspace, RefusesANewerSchema) {
  const fs::path dir = fresh_dir() / "ws";
  Workspace::init(dir.string());
  {
    RawDb raw((dir / "retain.db").string());
    ASSERT_EQ(raw.exec("UPDATE meta SET value = '999' WHERE key = 'schema_version'"), SQLITE_OK);
  }
  const std::string message = registry_error([&] { Workspace::open(dir.string()); });
  EXPECT_NE(message.find("schema version 999"), std::string::npos) << message;
}

TEST(Workspace, OpenAppliesPendingMigrations) {
  // A workspace made before any migration existed: application_id and meta at version 0.
  const fs::path dir = fresh_dir();
  {
    RawDb raw((dir / "retain.db").string());
    ASSERT_EQ(raw.exec("PRAGMA journal_mode = WAL; PRAGMA application_id = " +
                       std::to_string(kApplicationId) +
                       "; CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                       "INSERT INTO meta VALUES ('schema_version', '0');"),
              SQLITE_OK);
  }
  Workspace ws = Workspace::open(dir.string());
  EXPECT_EQ(ws.schema_version(), current_schema_version());
  EXPECT_EQ(ReplayBuffer(ws.db()).size(), 0);
}

TEST(Workspace, LockedDatabaseWaitsThenFailsClearly) {
  const fs::path dir = fresh_dir() / "ws";
  Workspace::init(dir.string());
  RawDb holder((dir / "retain.db").string());
  ASSERT_EQ(holder.exec("BEGIN IMMEDIATE"), SQLITE_OK);  // another process writing

  Workspace::Options options;
  options.busy_timeout_ms = 300;
  Workspace ws = Workspace::open(dir.string(), options);  // reading is not blocked (WAL)
  ReplayBuffer buffer(ws.db());
  EXPECT_EQ(buffer.size(), 0);
  const auto start = std::chrono::steady_clock::now();
  const std::string message = registry_error([&] { buffer.set_max_size(5); });
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(message.find("locked by another process"), std::string::npos) << message;
  EXPECT_NE(message.find("0.3 s"), std::string::npos) << message;
  EXPECT_GE(waited, 0.25);
  EXPECT_LT(waited, 5.0);

  ASSERT_EQ(holder.exec("ROLLBACK"), SQLITE_OK);
  buffer.set_max_size(5);  // works once the lock is gone
  EXPECT_EQ(buffer.max_size(), 5);
}

TEST(Sqlite, NestedTransactionRollsBackOnlyItself) {
  const fs::path dir = fresh_dir();
  Database db((dir / "t.db").string(), Database::Options{true, 1000});
  db.exec("CREATE TABLE t (x INTEGER)");
  {
    Transaction outer(db);
    db.exec("INSERT INTO t VALUES (1)");
    {
      Transaction inner(db);
      db.exec("INSERT INTO t VALUES (2)");
    }  // not committed: rolled back to its savepoint
    {
      Transaction inner(db);
      db.exec("INSERT INTO t VALUES (3)");
      inner.commit();
    }
    outer.commit();
  }
  EXPECT_EQ(db.query_int("SELECT group_concat(x) = '1,3' FROM t"), 1);
  {
    Transaction outer(db);
    db.exec("INSERT INTO t VALUES (4)");
  }  // rolled back
  EXPECT_EQ(db.query_int("SELECT count(*) FROM t"), 2);
}

TEST(Sqlite, BindAndReadEveryType) {
  const fs::path dir = fresh_dir();
  Database db((dir / "t.db").string(), Database::Options{true, 1000});
  db.exec("CREATE TABLE t (i INTEGER, d REAL, s TEXT, b BLOB, n TEXT)");
  const std::string blob("a\0b", 3);
  db.prepare("INSERT INTO t VALUES (?, ?, ?, ?, ?)")
      .bind(1, int64_t{1} << 40).bind(2, 0.25).bind(3, std::string("héllo"))
      .bind_blob(4, blob.data(), blob.size()).bind_null(5).run();
  auto s = db.prepare("SELECT i, d, s, b, n FROM t");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_int(0), int64_t{1} << 40);
  EXPECT_DOUBLE_EQ(s.column_double(1), 0.25);
  EXPECT_EQ(s.column_text(2), "héllo");
  EXPECT_EQ(s.column_blob(3), blob);
  EXPECT_TRUE(s.column_is_null(4));
  EXPECT_FALSE(s.step());
  EXPECT_THROW(db.prepare("SELECT nonsense FROM nowhere"), RegistryError);
}

}  // namespace
}  // namespace retain
