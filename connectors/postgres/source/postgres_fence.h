// PostgresFence: the database fence of a Postgres region (engine/api/fence.h), built on the
// functions of sql/ddl_capture.sql (installed on first use; that needs a superuser):
//   Raise  ferry.set_fence(true, message, hint): every permanent table outside schema ferry has
//          the statement trigger ferry_fence (BEFORE INSERT, UPDATE, DELETE, TRUNCATE), whose
//          function is replaced by one raising SQLSTATE 25006 read_only_sql_transaction with the
//          notice; with end_sessions, ferry.end_fenced_sessions() then ends (and waits for) every
//          client session whose transaction began before the fence.
//   Lift   ferry.set_fence(false, ...): the trigger's function is empty again.
//   Mark   ferry.emit_sequences(operation): a signed "ferry.sequences" message with every
//          sequence's value; returns its LSN.
// Not stopped by the fence (docs/operations.md, "Fencing"): superusers that disable triggers or
// set session_replication_role, DDL, nextval(), and tables of schema ferry.
// The calls share one connection (application_name ferry_fence), opened and checked (Ferry's
// schema installed and current) at the first call and kept: a new backend and the check cost
// 50-100 ms on a loaded host, and a switchover makes five fence calls while writes wait
// (bench/side_by_side/FINDINGS.md, session 27). Each call first checks that the connection still
// answers and opens another when it does not (the database restarted, the session was ended),
// so that the call does not fail on a dead session; no call is retried. A call that fails drops
// the connection, so the next one checks the schema again. Thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "connectors/postgres/common/pg_connection.h"
#include "engine/api/fence.h"

namespace ferry::pg {

// The fence session's connection string: `dsn` (key=value or URI) with the session's name
// (ferry_fence) and, unless `dsn` sets them, a connect timeout, TCP keepalives and
// tcp_user_timeout. kInvalidArgument, without quoting `dsn`, when libpq cannot parse it.
[[nodiscard]] absl::StatusOr<std::string> FenceConnectionString(const std::string& dsn);

class PostgresFence final : public DatabaseFence {
 public:
  // `dsn`: a normal connection string of the region's database.
  explicit PostgresFence(std::string dsn, absl::Duration session_exit_wait = absl::Seconds(5))
      : dsn_(std::move(dsn)), session_exit_wait_(session_exit_wait) {}
  ~PostgresFence() override;

  absl::Status Raise(const FenceNotice& notice, bool end_sessions) override;
  absl::Status Lift() override;
  absl::StatusOr<uint64_t> Mark(const std::string& operation) override;
  // ferry.advance_sequences(gap).
  absl::Status AdvanceSequences(int64_t gap) override;

 private:
  absl::Status Set(bool raise, const FenceNotice& notice);
  // Runs one statement on the kept connection (see the top of this file).
  absl::StatusOr<PgResult> Call(const std::string& sql,
                                const std::vector<std::optional<std::string>>& params);
  const std::string dsn_;
  const absl::Duration session_exit_wait_;
  absl::Mutex mu_;
  std::unique_ptr<PgConnection> conn_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::pg
