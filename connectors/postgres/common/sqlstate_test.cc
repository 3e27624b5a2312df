// The SQLSTATE table of sqlstate.h, one row per class the connector meets. A mutant that moves
// a class to another code (e.g. 55P03 back to kInternal, which would stop a table on a lock
// timeout instead of re-applying serially) fails here.
#include "connectors/postgres/common/sqlstate.h"

#include "gtest/gtest.h"

namespace ferry::pg {
namespace {

struct Row {
  const char* sqlstate;
  absl::StatusCode code;
  const char* what;
};

constexpr absl::StatusCode kUnavailable = absl::StatusCode::kUnavailable;
constexpr absl::StatusCode kAborted = absl::StatusCode::kAborted;
constexpr absl::StatusCode kFailedPrecondition = absl::StatusCode::kFailedPrecondition;
constexpr absl::StatusCode kInternal = absl::StatusCode::kInternal;

constexpr Row kTable[] = {
    // 08: connection exception.
    {"08000", kUnavailable, "connection exception"},
    {"08003", kUnavailable, "connection does not exist"},
    {"08006", kUnavailable, "connection failure"},
    {"08001", kUnavailable, "unable to establish connection"},
    {"08P01", kUnavailable, "protocol violation"},
    // 57P: the server is going away or not there yet; other 57 codes are not.
    {"57P01", kUnavailable, "admin shutdown"},
    {"57P02", kUnavailable, "crash shutdown"},
    {"57P03", kUnavailable, "cannot connect now"},
    {"57P05", kUnavailable, "idle session timeout"},
    {"57014", kInternal, "query canceled"},
    // 53: insufficient resources.
    {"53000", kUnavailable, "insufficient resources"},
    {"53100", kUnavailable, "disk full"},
    {"53200", kUnavailable, "out of memory"},
    {"53300", kUnavailable, "too many connections"},
    {"53400", kUnavailable, "configuration limit exceeded"},
    // 40: transaction rollback; only serialization failures and deadlocks are retried.
    {"40001", kAborted, "serialization failure"},
    {"40P01", kAborted, "deadlock detected"},
    {"40002", kInternal, "transaction integrity constraint violation"},
    {"40000", kInternal, "transaction rollback"},
    // 55: object not in prerequisite state.
    {"55P03", kAborted, "lock not available (lock_timeout)"},
    {"55006", kUnavailable, "object in use (slot or origin held)"},
    {"55000", kFailedPrecondition, "object not in prerequisite state"},
    {"55P02", kInternal, "cannot change runtime parameter"},
    // 42: syntax error or access rule violation; the undefined/duplicate objects stop.
    {"42704", kFailedPrecondition, "undefined object"},
    {"42P01", kFailedPrecondition, "undefined table"},
    {"42710", kFailedPrecondition, "duplicate object"},
    {"42601", kInternal, "syntax error"},
    {"42501", kInternal, "insufficient privilege"},
    {"42703", kInternal, "undefined column"},
    {"42804", kInternal, "datatype mismatch"},
    {"42P07", kInternal, "duplicate table"},
    // 22: data exception (a value the column refuses).
    {"22P02", kInternal, "invalid text representation"},
    {"22001", kInternal, "string data right truncation"},
    {"22003", kInternal, "numeric value out of range"},
    {"22021", kInternal, "character not in repertoire"},
    // 23: integrity constraint violation.
    {"23505", kInternal, "unique violation"},
    {"23502", kInternal, "not null violation"},
    {"23503", kInternal, "foreign key violation"},
    // XX, and no SQLSTATE at all.
    {"XX000", kInternal, "internal error"},
    {"XX001", kInternal, "data corrupted"},
    {"", kInternal, "libpq reported no SQLSTATE"},
};

TEST(SqlState, EveryClassMapsToItsCode) {
  for (const Row& row : kTable) {
    EXPECT_EQ(CodeForSqlState(row.sqlstate), row.code) << row.sqlstate << " (" << row.what << ")";
  }
}

TEST(SqlState, TransientMeansRetry) {
  EXPECT_TRUE(IsTransient(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(IsTransient(absl::StatusCode::kAborted));
  EXPECT_FALSE(IsTransient(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(IsTransient(absl::StatusCode::kInternal));
  EXPECT_FALSE(IsTransient(absl::StatusCode::kOk));
  for (const Row& row : kTable) {
    EXPECT_EQ(IsTransient(CodeForSqlState(row.sqlstate)),
              row.code == kUnavailable || row.code == kAborted)
        << row.sqlstate;
  }
}

TEST(SqlState, ErrorNamesStateAndContext) {
  absl::Status s = SqlStateError("40P01", "deadlock detected", "UPDATE");
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(s.message(), "UPDATE: [40P01] deadlock detected");
}

TEST(SqlState, HasSqlStateReadsTheStateOfAServerError) {
  const absl::Status s = SqlStateError("55006", "replication origin is already active", "setup");
  EXPECT_TRUE(HasSqlState(s, "55006"));
  EXPECT_FALSE(HasSqlState(s, "5500"));
  EXPECT_FALSE(HasSqlState(s, "53300"));  // the same code (kUnavailable), another state
  EXPECT_FALSE(HasSqlState(absl::UnavailableError("connection lost: [55006] in a message"), "5"));
  EXPECT_FALSE(HasSqlState(absl::OkStatus(), "55006"));
}

}  // namespace
}  // namespace ferry::pg
