#include "connectors/postgres/source/replication_connection.h"

#include <poll.h>

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "connectors/postgres/common/identifiers.h"
#include "connectors/postgres/common/lsn.h"
#include "connectors/postgres/source/walsender_messages.h"
#include "engine/base/status_macros.h"

namespace ferry::pg {

absl::StatusOr<std::unique_ptr<ReplicationConnection>> ReplicationConnection::Connect(
    const std::string& dsn) {
  FERRY_ASSIGN_OR_RETURN(auto conn,
                         PgConnection::Connect(dsn, ConnectionKind::kLogicalReplication));
  return std::unique_ptr<ReplicationConnection>(new ReplicationConnection(std::move(conn)));
}

ReplicationConnection::ReplicationConnection(std::unique_ptr<PgConnection> conn)
    : conn_(std::move(conn)) {}

ReplicationConnection::~ReplicationConnection() { FreeBuffer(); }

void ReplicationConnection::FreeBuffer() {
  if (buffer_ != nullptr) PQfreemem(buffer_);
  buffer_ = nullptr;
}

absl::StatusOr<SystemIdentity> ReplicationConnection::IdentifySystem() {
  FERRY_ASSIGN_OR_RETURN(PgResult r, conn_->Exec("IDENTIFY_SYSTEM"));
  if (r.rows() != 1 || r.columns() < 4) {
    return absl::InternalError("IDENTIFY_SYSTEM returned an unexpected result");
  }
  SystemIdentity id;
  id.system_id = std::string(r.Get(0, 0));
  if (!absl::SimpleAtoi(r.Get(0, 1), &id.timeline)) {
    return absl::InternalError("IDENTIFY_SYSTEM returned a bad timeline");
  }
  FERRY_ASSIGN_OR_RETURN(id.wal_position, ParseLsn(r.Get(0, 2)));
  id.database = std::string(r.Get(0, 3));
  return id;
}

absl::StatusOr<CreatedSlot> ReplicationConnection::CreateSlot(const std::string& slot,
                                                              bool export_snapshot) {
  FERRY_ASSIGN_OR_RETURN(PgResult r,
                         conn_->Exec(absl::StrCat("CREATE_REPLICATION_SLOT ", QuoteIdentifier(slot),
                                                  " LOGICAL pgoutput (SNAPSHOT '",
                                                  export_snapshot ? "export" : "nothing", "')")));
  if (r.rows() != 1 || r.columns() < 3) {
    return absl::InternalError("CREATE_REPLICATION_SLOT returned an unexpected result");
  }
  CreatedSlot created;
  FERRY_ASSIGN_OR_RETURN(created.consistent_point, ParseLsn(r.Get(0, 1)));
  if (!r.IsNull(0, 2)) created.snapshot_name = std::string(r.Get(0, 2));
  return created;
}

absl::Status ReplicationConnection::StartReplication(const std::string& slot, uint64_t start_lsn,
                                                     const std::string& publication) {
  std::string sql = absl::StrCat("START_REPLICATION SLOT ", QuoteIdentifier(slot), " LOGICAL ",
                                 FormatLsn(start_lsn), " (proto_version '1', publication_names ",
                                 QuoteLiteral(QuoteIdentifier(publication)), ", messages 'true')");
  FERRY_ASSIGN_OR_RETURN(PgResult r, conn_->Exec(sql));
  if (r.status() != PGRES_COPY_BOTH) {
    return absl::InternalError("START_REPLICATION did not enter COPY BOTH mode");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<absl::string_view>> ReplicationConnection::Receive(
    absl::Duration timeout, int wake_fd) {
  FreeBuffer();
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int n = PQgetCopyData(conn_->raw(), &buffer_, /*async=*/1);
    if (n > 0) return std::optional<absl::string_view>(absl::string_view(buffer_, n));
    if (n == -1) {
      // The server ended the COPY: fetch its final result for the reason.
      PgResult result(PQgetResult(conn_->raw()));
      absl::Status s = result.get() != nullptr && result.status() != PGRES_COMMAND_OK
                           ? conn_->ResultError(result.get(), "replication stream ended")
                           : absl::UnavailableError("the server ended the replication stream");
      if (s.code() == absl::StatusCode::kInternal) s = absl::UnavailableError(s.message());
      return s;
    }
    if (n == -2) {
      return absl::UnavailableError(
          conn_->ConnectionError("reading the replication stream").message());
    }
    // n == 0: nothing complete buffered. Read what the socket holds, waiting for it until the
    // deadline; with no time left, still take what is already there (a zero timeout means "no
    // more on the socket", not "no more in libpq's 16 kB buffer": the caller makes its batch
    // durable when this returns nullopt).
    absl::Duration left = std::max(deadline - absl::Now(), absl::ZeroDuration());
    pollfd pfd[2] = {{PQsocket(conn_->raw()), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int ms =
        left == absl::ZeroDuration() ? 0 : static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
    int rc = poll(pfd, wake_fd >= 0 ? 2 : 1, ms);
    if (rc < 0 && errno != EINTR) {
      return absl::UnavailableError(absl::StrCat("poll on the replication socket failed: ", errno));
    }
    if (rc == 0) return std::optional<absl::string_view>();  // nothing arrived in time
    if (wake_fd >= 0 && (pfd[1].revents & POLLIN) != 0 && (pfd[0].revents & POLLIN) == 0) {
      return std::optional<absl::string_view>();  // stopped: the caller sees it
    }
    if (PQconsumeInput(conn_->raw()) == 0) {
      return absl::UnavailableError(
          conn_->ConnectionError("reading the replication stream").message());
    }
  }
}

absl::Status ReplicationConnection::SendStatus(uint64_t written, uint64_t flushed,
                                               int64_t now_unix_us, bool reply_requested) {
  std::string msg =
      EncodeStandbyStatusUpdate(written, flushed, flushed, now_unix_us, reply_requested);
  if (PQputCopyData(conn_->raw(), msg.data(), static_cast<int>(msg.size())) != 1 ||
      PQflush(conn_->raw()) != 0) {
    return absl::UnavailableError(
        conn_->ConnectionError("sending a standby status update").message());
  }
  return absl::OkStatus();
}

}  // namespace ferry::pg
