// Re-snapshot of one table at a consistent cut (ferryctl resnapshot; docs/operations.md).
//
// On a normal connection to the source database, in one transaction:
//   BEGIN; SET LOCAL lock_timeout; LOCK TABLE t IN SHARE MODE   -- writers of t wait from here
//   describe t as pgoutput would (DescribeTable + BuildRelation, like the initial snapshot)
//   COPY (SELECT cols FROM [ONLY] t) TO STDOUT  -> staged copy <staging_dir>/<id> (staged_copy.h)
//   SELECT ferry.emit_resnapshot(schema, name, id)  -- signed "ferry.resnapshot" message
//   COMMIT
// The SHARE lock waits for every transaction that wrote t and blocks new writers until COMMIT,
// so the copy is exactly t at this transaction's place in the WAL: the capture puts a TRUNCATE
// of t and the copied rows right after the message (transaction_assembler.h), and every change
// of t before or after it is in the stream before or after it. On any error before COMMIT the
// transaction rolls back (no message) and the staged copy is deleted. The copy is deleted by
// the capture once its transaction is durable in the log.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "connectors/postgres/common/pg_connection.h"

namespace ferry::pg {

struct ResnapshotOptions {
  std::string dsn;          // normal connection string of the source database
  std::string publication;  // the table must be one of its tables
  std::string staging_dir;  // where copies are staged (created when missing)
  absl::Duration lock_timeout = absl::Seconds(10);
};

struct ResnapshotDone {
  uint64_t rows = 0;
  std::string id;
};

// Re-snapshots `table` ("schema.name", the first dot separating, names exact and unquoted).
// Errors: kInvalidArgument malformed name; kNotFound not a table of the publication;
// kFailedPrecondition a table of schema ferry or no staging dir; kUnavailable the database
// unreachable, the lock not granted in time, or an I/O error (nothing committed: try again);
// kUnknown when COMMIT's outcome is unknown (the copy is kept for the capture).
// At a capture session's start: the staged copies in `staging_dir` left by a crash. Copies
// whose transaction rolled back (or is too old for pg_xact_status) are deleted now; for those
// whose transaction committed, returns (path, a WAL position after that commit), for
// TransactionAssembler::DeleteCopiesOnceCaptured. Copies being written are left alone.
[[nodiscard]] absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> LeftoverCopies(
    PgConnection& conn, const std::string& staging_dir);

[[nodiscard]] absl::StatusOr<ResnapshotDone> ResnapshotTable(const ResnapshotOptions& options,
                                                             const std::string& table);

}  // namespace ferry::pg
