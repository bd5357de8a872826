#pragma once
// A thin RAII layer over the SQLite C API, just enough for the store:
// a connection with a statement cache, a scoped query that binds
// positionally and always resets, and a scoped write transaction.
//
// Not thread-safe: the store serialises all use of one Db behind its mutex.
// Every error becomes a SqliteError carrying SQLite's message and the SQL.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>

struct sqlite3;
struct sqlite3_stmt;

namespace spt::server {

class SqliteError : public std::runtime_error {
 public:
  SqliteError(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }  // primary SQLite result code

 private:
  int code_;
};

class Db {
 public:
  // Opens (creating if absent) without touching the file's contents: SQLite
  // reads nothing until the first statement runs.
  explicit Db(const std::string& path);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Runs one or more statements that return no rows we need.
  void exec(const std::string& sql);
  int64_t last_insert_id() const;
  int changes() const;  // rows changed by the last INSERT/UPDATE/DELETE
  sqlite3* raw() const { return db_; }

 private:
  friend class Query;
  sqlite3_stmt* prepared(const char* sql);  // cached by SQL text

  sqlite3* db_ = nullptr;
  std::string path_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// A cached prepared statement, borrowed for one use. Binds left to right;
// the destructor resets it, so a half-read cursor never pins a snapshot.
// Two live Query objects must not share the same SQL text.
class Query {
 public:
  Query(Db& db, const char* sql);
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& bind(int64_t v);
  Query& bind(int v) { return bind(static_cast<int64_t>(v)); }
  Query& bind(double v);
  Query& bind(const std::string& v);
  Query& bind(const char* v) { return bind(std::string(v)); }
  Query& bind_null();
  // Binds ?index (1-based) without moving the left-to-right cursor.
  Query& bind_at(int index, int64_t v);

  bool step();  // true while a row is available
  void run();   // steps to completion, ignoring rows

  int64_t i64(int col) const;
  double real(int col) const;
  std::string text(int col) const;  // "" for NULL
  bool is_null(int col) const;

 private:
  Db& db_;
  sqlite3_stmt* st_;
  int next_ = 1;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back unless commit() was reached, so an
// exception anywhere inside leaves the database as it was.
class Txn {
 public:
  explicit Txn(Db& db);
  ~Txn();
  void commit();

 private:
  Db& db_;
  bool done_ = false;
};

}  // namespace spt::server
