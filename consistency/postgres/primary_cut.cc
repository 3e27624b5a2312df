#include "consistency/postgres/primary_cut.h"

#include <poll.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "connectors/postgres/common/identifiers.h"
#include "connectors/postgres/common/lsn.h"
#include "engine/base/status_macros.h"

namespace ferry::consistency {
namespace {

// Runs `command` without blocking past `deadline`; cancels it then.
absl::StatusOr<pg::PgResult> ExecWithDeadline(pg::PgConnection& conn, const std::string& command,
                                              absl::Time deadline, absl::string_view what) {
  PGconn* raw = conn.raw();
  if (PQsendQuery(raw, command.c_str()) != 1) return conn.ConnectionError(what);
  while (true) {
    if (PQconsumeInput(raw) != 1) return conn.ConnectionError(what);
    if (PQisBusy(raw) == 0) break;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      if (PGcancel* cancel = PQgetCancel(raw)) {
        char err[256];
        PQcancel(cancel, err, sizeof err);
        PQfreeCancel(cancel);
      }
      while (PGresult* r = PQgetResult(raw)) PQclear(r);
      return absl::DeadlineExceededError(absl::StrCat(
          what,
          ": timed out; the primary waits for every running transaction that holds a "
          "transaction id to end before it can cut (a long transaction delays a verify)"));
    }
    pollfd fd{.fd = PQsocket(raw), .events = POLLIN, .revents = 0};
    const int ms = static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(left), 1, 1000));
    poll(&fd, 1, ms);
  }
  pg::PgResult result(PQgetResult(raw));
  while (PGresult* r = PQgetResult(raw)) PQclear(r);
  if (result.get() == nullptr || result.status() != PGRES_TUPLES_OK) {
    return conn.ResultError(result.get(), what);
  }
  return result;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PrimaryCut>> PrimaryCut::Create(const std::string& dsn,
                                                               const std::string& slot_name,
                                                               absl::Duration timeout) {
  if (slot_name.empty() || slot_name.size() > 63 ||
      slot_name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("invalid slot name \"", slot_name, "\""));
  }
  const absl::Time deadline = absl::Now() + timeout;
  FERRY_ASSIGN_OR_RETURN(auto conn,
                         pg::PgConnection::Connect(dsn, pg::ConnectionKind::kLogicalReplication));
  FERRY_ASSIGN_OR_RETURN(
      pg::PgResult r,
      ExecWithDeadline(*conn,
                       absl::StrCat("CREATE_REPLICATION_SLOT ", slot_name,
                                    " TEMPORARY LOGICAL pgoutput (SNAPSHOT 'export')"),
                       deadline, "creating the verify's cut on the primary"));
  if (r.rows() != 1 || r.columns() < 3) {
    return absl::InternalError("CREATE_REPLICATION_SLOT returned an unexpected result");
  }
  FERRY_ASSIGN_OR_RETURN(uint64_t position, pg::ParseLsn(r.Get(0, 1)));
  return std::unique_ptr<PrimaryCut>(
      new PrimaryCut(std::move(conn), slot_name, position, std::string(r.Get(0, 2))));
}

void PrimaryCut::Release() {
  if (conn_ != nullptr && !conn_->broken()) {
    (void)conn_->Exec(absl::StrCat("DROP_REPLICATION_SLOT ", slot_name_));
  }
  conn_.reset();
}

absl::Status PrimaryCut::CommitMarker(const std::string& dsn, const std::string& id) {
  FERRY_ASSIGN_OR_RETURN(auto conn, pg::PgConnection::Connect(dsn));
  return conn
      ->ExecParams("SELECT pg_logical_emit_message(true, 'ferry_verify', $1)",
                   {absl::StrCat("cut ", id, " at ", pg::FormatLsn(position_))})
      .status();
}

}  // namespace ferry::consistency
