#include "connectors/postgres/source/postgres_fence.h"

#include "absl/strings/str_cat.h"
#include "connectors/postgres/common/lsn.h"
#include "connectors/postgres/common/pg_connection.h"
#include "connectors/postgres/source/ddl_capture.h"
#include "engine/base/status_macros.h"

namespace ferry::pg {

absl::StatusOr<std::string> FenceConnectionString(const std::string& dsn) {
  // Bounded: a fence call must not hang a switchover or the daemon's maintenance on a database
  // that does not answer. A kept session can go dead without a word (a firewall's idle timeout,
  // a host gone): the keepalives find that out while it idles, and tcp_user_timeout bounds a
  // statement sent into it (the server's statement_timeout cannot). An operator's own values
  // of these in the DSN stay; the session's name is the fence's, which its SQL functions tell
  // its session by.
  return SessionDsn(dsn,
                    "connect_timeout=10 keepalives=1 keepalives_idle=30 keepalives_interval=10 "
                    "keepalives_count=3 tcp_user_timeout=15000",
                    "application_name=ferry_fence");
}

PostgresFence::~PostgresFence() = default;

absl::StatusOr<PgResult> PostgresFence::Call(
    const std::string& sql, const std::vector<std::optional<std::string>>& params) {
  absl::MutexLock lock(&mu_);
  // A kept connection whose server went away fails its first statement: find that out with a
  // statement that changes nothing, so that the call itself is sent once, on a live session.
  if (conn_ != nullptr && (conn_->broken() || !conn_->Exec("SELECT 1").ok())) conn_.reset();
  if (conn_ == nullptr) {
    FERRY_ASSIGN_OR_RETURN(std::string conninfo, FenceConnectionString(dsn_));
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn, PgConnection::Connect(conninfo));
    FERRY_RETURN_IF_ERROR(
        conn->Exec("SET statement_timeout = '60s'; SET lock_timeout = '10s'").status());
    FERRY_RETURN_IF_ERROR(EnsureDdlCapture(*conn));
    conn_ = std::move(conn);
  }
  absl::StatusOr<PgResult> r = conn_->ExecParams(sql, params);
  if (!r.ok()) conn_.reset();  // the next call connects and checks the schema again
  return r;
}

absl::Status PostgresFence::Set(bool raise, const FenceNotice& notice) {
  return Annotate(Call("SELECT ferry.set_fence($1::boolean, $2, $3)",
                       {raise ? "true" : "false", notice.message, notice.hint})
                      .status(),
                  raise ? "raising the fence" : "lifting the fence");
}

absl::Status PostgresFence::Raise(const FenceNotice& notice, bool end_sessions) {
  FERRY_RETURN_IF_ERROR(Set(true, notice));
  if (!end_sessions) return absl::OkStatus();
  FERRY_ASSIGN_OR_RETURN(PgResult r,
                         Call("SELECT ferry.end_fenced_sessions($1::bigint)",
                              {std::to_string(absl::ToInt64Milliseconds(session_exit_wait_))}));
  if (r.rows() != 1 || !r.Get(0, 0).empty()) {
    return absl::UnavailableError(
        absl::StrCat("sessions whose transaction began before the fence did not exit within ",
                     absl::FormatDuration(session_exit_wait_), ": ",
                     r.rows() == 1 ? std::string(r.Get(0, 0)) : "(unknown)"));
  }
  return absl::OkStatus();
}

absl::Status PostgresFence::Lift() { return Set(false, {}); }

// Two transactions: the marker (the sequences' values), then a plain message after its commit.
// The second's position is what is returned: the capture is past it only once every transaction
// that committed before it (the marker included) is captured, whatever committed between the
// marker's message and its commit (its own position would not say that).
absl::StatusOr<uint64_t> PostgresFence::Mark(const std::string& operation) {
  FERRY_RETURN_IF_ERROR(Call("SELECT ferry.emit_sequences($1, false)", {operation}).status());
  FERRY_ASSIGN_OR_RETURN(
      PgResult r,
      Call("SELECT pg_logical_emit_message(true, 'ferry-fence-sync', $1)::text", {operation}));
  if (r.rows() != 1 || r.IsNull(0, 0)) {
    return absl::InternalError("pg_logical_emit_message returned no position");
  }
  return ParseLsn(r.Get(0, 0));
}

absl::Status PostgresFence::AdvanceSequences(int64_t gap) {
  return Annotate(
      Call("SELECT ferry.advance_sequences($1::bigint)", {std::to_string(gap)}).status(),
      "advancing the sequences");
}

}  // namespace ferry::pg
