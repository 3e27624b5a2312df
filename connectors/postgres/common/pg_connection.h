// A thin RAII layer over libpq for Ferry's Postgres connectors: a connection (normal or
// logical-replication), results, and libpq errors as absl::Status. A server error gets the code
// of its SQLSTATE (sqlstate.h, the connector's one mapping); a broken connection is always
// kUnavailable. Error messages carry the SQLSTATE and the server's primary message.
//
// Thread safety: a PgConnection is used by one thread at a time (libpq's rule).
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(dsn));
//   FERRY_ASSIGN_OR_RETURN(PgResult r, conn->ExecParams("SELECT $1::int + 1", {"41"}));
//   absl::string_view v = r.Get(0, 0);  // "42"
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "connectors/postgres/common/sqlstate.h"  // IWYU pragma: export

namespace ferry::pg {

enum class ConnectionKind {
  kNormal,
  kLogicalReplication,  // replication=database: walsender commands and SQL
};

// Returns `dsn` (key=value or URI form) as key=value with `replication=database` set, any
// replication key of the input replaced. kInvalidArgument when libpq cannot parse it.
[[nodiscard]] absl::StatusOr<std::string> ReplicationDsn(const std::string& dsn);
// Returns `dsn` (key=value or URI form) as key=value, to which more " key=value" pairs can be
// appended (appended to a URI they would be read as part of it). kInvalidArgument when libpq
// cannot parse it.
[[nodiscard]] absl::StatusOr<std::string> KeywordDsn(const std::string& dsn);
// A session's connection string: `defaults` ("key=value ...") unless `dsn` sets those keys
// itself, then `dsn` (key=value or URI form), then `fixed`, which always hold (libpq takes a
// key's last value; a service file's or the environment's values fill only keys still unset,
// so they do not replace `defaults`). kInvalidArgument, without quoting `dsn` (libpq's message
// would, password and all), when libpq cannot parse it.
[[nodiscard]] absl::StatusOr<std::string> SessionDsn(const std::string& dsn,
                                                     absl::string_view defaults,
                                                     absl::string_view fixed);
// The keys `dsn` (key=value or URI form) sets and their values as libpq reads them (a URI's
// percent-encoding decoded), in libpq's order. kInvalidArgument when libpq cannot parse it;
// libpq's message, which it carries, may quote the DSN.
[[nodiscard]] absl::StatusOr<std::vector<std::pair<std::string, std::string>>> DsnKeys(
    const std::string& dsn);
// `v` as a single-quoted libpq connection-string value (quote and backslash escaped).
std::string QuoteConninfoValue(absl::string_view v);

// Owns a PGresult.
class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(PGresult* r) : result_(r) {}

  PGresult* get() const { return result_.get(); }
  ExecStatusType status() const { return PQresultStatus(result_.get()); }
  int rows() const { return PQntuples(result_.get()); }
  int columns() const { return PQnfields(result_.get()); }
  bool IsNull(int row, int col) const { return PQgetisnull(result_.get(), row, col) != 0; }
  // The text value; empty for NULL. Valid as long as this result lives.
  absl::string_view Get(int row, int col) const {
    return absl::string_view(PQgetvalue(result_.get(), row, col),
                             static_cast<size_t>(PQgetlength(result_.get(), row, col)));
  }
  std::optional<std::string> GetOptional(int row, int col) const {
    if (IsNull(row, col)) return std::nullopt;
    return std::string(Get(row, col));
  }

 private:
  struct Deleter {
    void operator()(PGresult* r) const { PQclear(r); }
  };
  std::unique_ptr<PGresult, Deleter> result_;
};

class PgConnection {
 public:
  // Connects (blocking, libpq's connect_timeout applies). kUnavailable when the server cannot
  // be reached or refuses for a transient reason, kInvalidArgument for a malformed DSN.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PgConnection>> Connect(
      const std::string& dsn, ConnectionKind kind = ConnectionKind::kNormal);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs one statement (or several separated by ';' when it has no parameters). OK when the
  // last result is TUPLES_OK, COMMAND_OK, COPY_OUT or COPY_BOTH; the caller then drives the
  // copy through raw(). On error the status names the statement's first 200 characters.
  [[nodiscard]] absl::StatusOr<PgResult> Exec(absl::string_view sql);
  // With text parameters ($1, $2...); nullopt is NULL.
  [[nodiscard]] absl::StatusOr<PgResult> ExecParams(
      absl::string_view sql, const std::vector<std::optional<std::string>>& params);

  // The status for the connection's last error (PQerrorMessage), kUnavailable when the
  // connection is broken.
  absl::Status ConnectionError(absl::string_view context) const;
  // The status for a failed result.
  absl::Status ResultError(const PGresult* result, absl::string_view context) const;

  bool broken() const { return PQstatus(conn_) != CONNECTION_OK; }
  int server_version() const { return PQserverVersion(conn_); }
  PGconn* raw() const { return conn_; }

 private:
  explicit PgConnection(PGconn* conn) : conn_(conn) {}
  [[nodiscard]] absl::StatusOr<PgResult> Check(PGresult* result, absl::string_view sql);

  PGconn* conn_;  // owned
};

}  // namespace ferry::pg
