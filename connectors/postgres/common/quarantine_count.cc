#include "connectors/postgres/common/quarantine_count.h"

#include "absl/strings/numbers.h"
#include "engine/base/status_macros.h"

namespace ferry::pg {

absl::StatusOr<int64_t> QuarantineCounter::Pending() {
  absl::MutexLock lock(&mu_);
  if (conn_ == nullptr || conn_->broken()) {
    conn_.reset();
    FERRY_ASSIGN_OR_RETURN(conn_, PgConnection::Connect(dsn_));
    // A status call never waits long on a lock (a rejoin altering the table).
    FERRY_RETURN_IF_ERROR(
        conn_->Exec("SET lock_timeout = '1s'; SET statement_timeout = '5s'").status());
  }
  // One statement: the table's existence and its count at one snapshot. A quarantine that does
  // not exist yet holds nothing.
  FERRY_ASSIGN_OR_RETURN(PgResult exists,
                         conn_->Exec("SELECT to_regclass('ferry.quarantine') IS NOT NULL"));
  if (exists.rows() != 1 || exists.Get(0, 0) != "t") return 0;
  FERRY_ASSIGN_OR_RETURN(
      PgResult r, conn_->Exec("SELECT count(*) FROM ferry.quarantine WHERE status = 'pending'"));
  int64_t count = 0;
  if (r.rows() != 1 || !absl::SimpleAtoi(r.Get(0, 0), &count)) {
    return absl::InternalError("counting ferry.quarantine returned no number");
  }
  return count;
}

}  // namespace ferry::pg
