#include "sqlite.h"

#include <sqlite3.h>

namespace spt::server {

namespace {

[[noreturn]] void fail(sqlite3* db, int rc, const std::string& context) {
  const char* msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  throw SqliteError(rc & 0xff, std::string(msg ? msg : sqlite3_errstr(rc)) + " (" + context + ")");
}

}  // namespace

Db::Db(const std::string& path) : path_(path) {
  // NOMUTEX: the store serialises access itself.
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw SqliteError(rc & 0xff, "cannot open " + path + ": " + msg);
  }
  sqlite3_extended_result_codes(db_, 0);
}

Db::~Db() {
  for (auto& [sql, st] : cache_) sqlite3_finalize(st);
  sqlite3_close(db_);
}

void Db::exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw SqliteError(rc & 0xff, msg + " (" + sql.substr(0, 80) + ")");
  }
}

int64_t Db::last_insert_id() const { return sqlite3_last_insert_rowid(db_); }
int Db::changes() const { return sqlite3_changes(db_); }

sqlite3_stmt* Db::prepared(const char* sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) return it->second;
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr);
  if (rc != SQLITE_OK) fail(db_, rc, std::string("prepare: ") + sql);
  cache_.emplace(sql, st);
  return st;
}

Query::Query(Db& db, const char* sql) : db_(db), st_(db.prepared(sql)) {}

Query::~Query() {
  sqlite3_reset(st_);
  sqlite3_clear_bindings(st_);
}

Query& Query::bind(int64_t v) {
  int rc = sqlite3_bind_int64(st_, next_++, v);
  if (rc != SQLITE_OK) fail(db_.db_, rc, "bind");
  return *this;
}

Query& Query::bind(double v) {
  int rc = sqlite3_bind_double(st_, next_++, v);
  if (rc != SQLITE_OK) fail(db_.db_, rc, "bind");
  return *this;
}

Query& Query::bind(const std::string& v) {
  int rc = sqlite3_bind_text(st_, next_++, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) fail(db_.db_, rc, "bind");
  return *this;
}

Query& Query::bind_at(int index, int64_t v) {
  int rc = sqlite3_bind_int64(st_, index, v);
  if (rc != SQLITE_OK) fail(db_.db_, rc, "bind");
  return *this;
}

Query& Query::bind_null() {
  int rc = sqlite3_bind_null(st_, next_++);
  if (rc != SQLITE_OK) fail(db_.db_, rc, "bind");
  return *this;
}

bool Query::step() {
  int rc = sqlite3_step(st_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail(db_.db_, rc, sqlite3_sql(st_));
}

void Query::run() {
  while (step()) {
  }
}

int64_t Query::i64(int col) const { return sqlite3_column_int64(st_, col); }
double Query::real(int col) const { return sqlite3_column_double(st_, col); }
bool Query::is_null(int col) const { return sqlite3_column_type(st_, col) == SQLITE_NULL; }

std::string Query::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, col));
  if (!p) return {};
  return std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, col)));
}

Txn::Txn(Db& db) : db_(db) { Query(db_, "BEGIN IMMEDIATE").run(); }

Txn::~Txn() {
  if (!done_) {
    try {
      Query(db_, "ROLLBACK").run();
    } catch (...) {
      // Already rolled back by SQLite (e.g. after SQLITE_FULL); nothing to do.
    }
  }
}

void Txn::commit() {
  Query(db_, "COMMIT").run();
  done_ = true;
}

}  // namespace spt::server
