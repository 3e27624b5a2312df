#include "connectors/postgres/common/pg_connection.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "engine/base/status_macros.h"

namespace ferry::pg {
namespace {

std::string Abbreviate(absl::string_view sql) {
  if (sql.size() <= 200) return std::string(sql);
  return absl::StrCat(sql.substr(0, 200), "...");
}

// The keys `dsn` sets, as "key='value' " pairs, `skip` left out.
absl::StatusOr<std::string> ConninfoPairs(const std::string& dsn, absl::string_view skip) {
  FERRY_ASSIGN_OR_RETURN(auto keys, DsnKeys(dsn));
  std::string out;
  for (const auto& [key, value] : keys) {
    if (key != skip) absl::StrAppend(&out, key, "=", QuoteConninfoValue(value), " ");
  }
  return out;
}

}  // namespace

std::string QuoteConninfoValue(absl::string_view v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> DsnKeys(const std::string& dsn) {
  char* err = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &err);
  if (options == nullptr) {
    std::string message = err != nullptr ? err : "out of memory";
    if (err != nullptr) PQfreemem(err);
    return absl::InvalidArgumentError(absl::StrCat("cannot parse the Postgres DSN: ",
                                                   absl::StripTrailingAsciiWhitespace(message)));
  }
  std::vector<std::pair<std::string, std::string>> keys;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) keys.emplace_back(o->keyword, o->val);
  }
  PQconninfoFree(options);
  return keys;
}

absl::StatusOr<std::string> ReplicationDsn(const std::string& dsn) {
  FERRY_ASSIGN_OR_RETURN(std::string out, ConninfoPairs(dsn, "replication"));
  return absl::StrCat(out, "replication=database");
}

absl::StatusOr<std::string> KeywordDsn(const std::string& dsn) {
  FERRY_ASSIGN_OR_RETURN(std::string out, ConninfoPairs(dsn, ""));
  return std::string(absl::StripTrailingAsciiWhitespace(out));
}

absl::StatusOr<std::string> SessionDsn(const std::string& dsn, absl::string_view defaults,
                                       absl::string_view fixed) {
  absl::StatusOr<std::string> keywords = KeywordDsn(dsn);
  if (!keywords.ok()) return absl::InvalidArgumentError("the Postgres DSN cannot be parsed");
  return absl::StrCat(defaults, " ", *keywords, " ", fixed);
}

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Connect(const std::string& dsn,
                                                                    ConnectionKind kind) {
  std::string conninfo = dsn;
  if (kind == ConnectionKind::kLogicalReplication) {
    auto replication = ReplicationDsn(dsn);
    if (!replication.ok()) return replication.status();
    conninfo = *std::move(replication);
  }
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (conn == nullptr) return absl::ResourceExhaustedError("libpq could not allocate a connection");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn)));
    PQfinish(conn);
    // A refused or unreachable server is the common transient case; a bad password or an
    // unknown database looks the same to libpq at this point, and retrying them is harmless.
    return absl::UnavailableError(absl::StrCat("cannot connect to Postgres: ", message));
  }
  return std::unique_ptr<PgConnection>(new PgConnection(conn));
}

PgConnection::~PgConnection() { PQfinish(conn_); }

absl::Status PgConnection::ConnectionError(absl::string_view context) const {
  std::string message(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn_)));
  absl::StatusCode code = broken() ? absl::StatusCode::kUnavailable : absl::StatusCode::kInternal;
  return absl::Status(code, absl::StrCat(context, ": ", message));
}

absl::Status PgConnection::ResultError(const PGresult* result, absl::string_view context) const {
  if (result == nullptr) return ConnectionError(context);
  const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  if (state == nullptr) {
    // No server error: libpq itself failed (connection lost mid-query and the like).
    std::string message(absl::StripTrailingAsciiWhitespace(PQresultErrorMessage(result)));
    if (message.empty()) {
      message = std::string(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn_)));
    }
    absl::StatusCode code = broken() ? absl::StatusCode::kUnavailable : absl::StatusCode::kInternal;
    return absl::Status(code, absl::StrCat(context, ": ", message));
  }
  absl::Status s = SqlStateError(state, primary != nullptr ? primary : "(no message)", context);
  if (broken()) return absl::UnavailableError(s.message());
  return s;
}

absl::StatusOr<PgResult> PgConnection::Check(PGresult* raw_result, absl::string_view sql) {
  PgResult result(raw_result);
  switch (raw_result == nullptr ? PGRES_FATAL_ERROR : result.status()) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
      return result;
    default:
      return ResultError(raw_result,
                         absl::StrCat("Postgres statement failed (", Abbreviate(sql), ")"));
  }
}

absl::StatusOr<PgResult> PgConnection::Exec(absl::string_view sql) {
  std::string text(sql);
  return Check(PQexec(conn_, text.c_str()), sql);
}

absl::StatusOr<PgResult> PgConnection::ExecParams(
    absl::string_view sql, const std::vector<std::optional<std::string>>& params) {
  std::string text(sql);
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p.has_value() ? p->c_str() : nullptr);
  return Check(PQexecParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr,
                            values.data(), nullptr, nullptr, 0),
               sql);
}

}  // namespace ferry::pg
