// The sink's bookkeeping in the target: schema `ferry` with
//   ferry.conflicts    every conflict, written in the transaction that resolved it;
//   ferry.table_state  stopped tables (a row = stopped; no row = applying).
// The DDL (README.md beside this file shows it) and every read and write of these tables live
// here. Writes go into the caller's open transaction, so they commit or roll back with the
// group they belong to.
//
// Errors are the status of the failed statement (code by SQLSTATE, common/sqlstate.h), with
// context; kUnavailable when the connection broke.
//
// Example:
//   FERRY_RETURN_IF_ERROR(CreateBookkeeping(*pipe));
//   FERRY_ASSIGN_OR_RETURN(StoppedTables stopped, ReadStops(*pipe, "east"));
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "connectors/postgres/sink/pipeline.h"
#include "engine/api/sink.h"

namespace ferry::pg_sink {

// Creates schema `ferry` and its tables when missing (idempotent).
[[nodiscard]] absl::Status CreateBookkeeping(Pipeline& pipe);

// Inserts `conflict` into ferry.conflicts: of `table`, found at log seq `seq`, in a source
// transaction that committed at `source_commit_time_us` (Unix microseconds).
[[nodiscard]] absl::Status RecordConflict(Pipeline& pipe, const std::string& source_region,
                                          const TableName& table, uint64_t seq,
                                          int64_t source_commit_time_us,
                                          const ConflictInfo& conflict);

// Upserts the row of ferry.table_state that stops `stop.table` at `stop.seq` (its conflict, if
// any, is recorded separately with RecordConflict).
[[nodiscard]] absl::Status RecordStop(Pipeline& pipe, const std::string& source_region,
                                      const TableStop& stop);

// Deletes the stop of `table` (ResumeTable's replay caught up).
[[nodiscard]] absl::Status ClearStop(Pipeline& pipe, const std::string& source_region,
                                     const TableName& table);

// Deletes every stop of `source_region` (a re-seed: their seqs count the discarded log).
[[nodiscard]] absl::Status ClearAllStops(Pipeline& pipe, const std::string& source_region);

// The stopped tables of `source_region`. A row whose seq does not parse is skipped.
[[nodiscard]] absl::StatusOr<StoppedTables> ReadStops(Pipeline& pipe,
                                                      const std::string& source_region);

// How many conflicts of `source_region` were recorded (0 when the count does not parse).
[[nodiscard]] absl::StatusOr<uint64_t> CountConflicts(Pipeline& pipe,
                                                      const std::string& source_region);

}  // namespace ferry::pg_sink
