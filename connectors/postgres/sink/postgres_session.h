// PostgresSession: the SinkSession of PostgresSink (engine/api/sink.h), one target connection
// applying one group at a time into one target transaction. Private to the sink.
//
// The connection runs with session_replication_role = replica (unless disabled), lock_timeout,
// ISO date style, generic plans (plan_cache_mode) and, unless
// PostgresSinkOptions::synchronous_commit, synchronous_commit = off;
// it holds the worker's replication origin (origins.h), so every commit records its progress
// atomically with its data.
//
// A group goes one of two ways, chosen by GroupContext::careful:
//   fast     (fast_path.cc) changes of batchable tables are folded into a ChangeBatch and sent
//            as set-based statements (or the group's ahead-of-time plan is sent as is); other
//            changes go one statement each (change_statements.cc). Statements are queued in the
//            pipeline and their row counts checked later; any mismatch or error is kAborted.
//   careful  (careful_path.cc) one statement per change, run at once; a row count that is off
//            is a conflict resolved per ConflictPolicy, and an error names its table (a
//            TableFault: kFailedPrecondition).
// This file's class is defined across those files and postgres_session.cc (the lifecycle:
// connect, Begin, Apply, Prepare, Commit, Abort), each with one concern. Target tables are
// reconciled by TargetTables (target_tables.h) and bookkeeping rows written by bookkeeping.h.
//
// Errors follow engine/api/sink.h: kUnavailable / kAborted transient (SQLSTATEs mapped by
// common/sqlstate.h), kFailedPrecondition with fault() set for a table that cannot take a
// change, kDataLoss for a record that names no table.
//
// Thread safety: one thread at a time (its worker).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "connectors/postgres/sink/change_batch.h"
#include "connectors/postgres/sink/fast_path.h"
#include "connectors/postgres/sink/pipeline.h"
#include "connectors/postgres/sink/postgres_sink.h"
#include "connectors/postgres/sink/resnapshots.h"
#include "connectors/postgres/sink/sink_sql.h"
#include "connectors/postgres/sink/target_incarnation.h"
#include "connectors/postgres/sink/target_tables.h"
#include "engine/api/sink.h"
#include "proto/change.pb.h"
#include "proto/pg_messages.pb.h"

namespace ferry::pg_sink {

class PostgresSession final : public SinkSession {
 public:
  // `options` must outlive the session (the sink's); `origin` empty: no origin (unused today);
  // `one_trip_groups`: the sink's counter of groups sent in one round trip;
  // `schema_generation`: the sink's count of schema changes replayed (a session that sees it
  // move forgets what it knew of target tables); `resnapshots`: the sink's committed
  // re-snapshots (resnapshots.h); `incarnation`: the server the sink's round began on
  // (target_incarnation.h).
  PostgresSession(const PostgresSinkOptions& options, std::string dsn, std::string origin,
                  std::atomic<uint64_t>* one_trip_groups, std::atomic<uint64_t>* schema_generation,
                  ResnapshotRegistry* resnapshots, const TargetIncarnation* incarnation);

  absl::Status Begin(const GroupContext& context) override;
  absl::Status Apply(uint64_t seq, const v1::Transaction& fragment) override;
  absl::Status Prepare() override;
  absl::Status Commit(uint64_t progress_seq, int64_t commit_time_us) override;
  absl::Status PrepareAndCommit(uint64_t progress_seq, int64_t commit_time_us) override;
  void Abort() override;
  std::optional<TableFault> fault() const override { return fault_; }
  uint64_t conflicts_committed() const override { return conflicts_committed_; }
  std::vector<TableResnapshot> resnapshotted() const override { return resnapshotted_; }

 private:
  // --- postgres_session.cc: connection, transaction, dispatch.
  absl::Status Connect();
  absl::Status EnsureBegun();
  absl::Status SyncAndCheck();
  bool Skipped(const TableName& table) const;
  // Sets fault_ (the table stops at the current source transaction) and returns the matching
  // kFailedPrecondition.
  absl::Status Fault(const TableName& table, std::string reason,
                     std::optional<ConflictInfo> conflict = std::nullopt);
  // Makes the target table take `rel` (TargetTables::Reconcile), after sending what is queued;
  // a refusal is a Fault.
  absl::Status EnsureTable(const v1::Relation& rel);
  // Sends a statement: queued with its row count checked later (fast, QueueStatement) or run
  // now with its result in *out (careful, RunStatement). `server_checked`: `sql` is a
  // RowCountCheckedSql wrapper that checks `expect_rows` itself (fast mode only).
  absl::Status Statement(const TableName& table, const std::string& sql,
                         const std::vector<const std::string*>& params, int64_t expect_rows,
                         const char* what, StatementResult* out, bool server_checked = false);
  absl::Status RecordConflict(const TableName& table, uint64_t seq, const ConflictInfo& c);
  const std::vector<TargetColumn>& TargetOf(const v1::Relation& rel) {
    return tables_.Get(NameOf(rel)).columns;
  }

  // --- change_statements.cc: one statement per change (both paths).
  absl::Status Validate(const v1::Relation& rel, const v1::Tuple& tuple, bool allow_toast,
                        const char* what);
  absl::Status ApplyChange(const v1::Relation& rel, const v1::Change& change);
  absl::Status ApplyTruncate(const v1::Change& change,
                             const std::map<uint32_t, const v1::Relation*>& rels);
  // A COPY change (snapshot rows in COPY text format): checked, then one COPY FROM with the rows
  // as they are; on the careful path, or for a table the batch does not take, row by row.
  absl::Status ApplyCopyRows(const v1::Relation& rel, const v1::Change& change);
  absl::Status FlushInserts();

  // --- schema_changes.cc: Ferry's own messages (replayed DDL, partition TRUNCATE).
  absl::Status ApplyFerryMessage(uint64_t seq, const v1::Change& change);
  absl::Status ApplyDdl(const v1::PgDdlMessage& message);
  absl::Status ApplyPartitionTruncate(const v1::PgTruncateMessage& message);
  // "ferry.resnapshot": the table's TRUNCATE and rows follow in this transaction; from here on
  // the table is not skipped, and Commit clears its stop.
  absl::Status ApplyResnapshot(const v1::PgResnapshotMessage& message);
  // "ferry.sequences": sequences set forward to the source's values.
  absl::Status ApplySequences(const std::string& json);

  // --- fast_path.cc: set-based statements, queued statements, one round trip.
  // Adds the change to batch_ when its table is batchable and the batch takes it; false: the
  // change needs its own statement.
  absl::StatusOr<bool> AddToBatch(const v1::Relation& rel, const v1::Change& change);
  absl::Status FlushBatch();
  // `server_checked`: every statement checks its own row count in the server (see
  // RowCountCheckedSql), so a COMMIT queued behind them runs only when all matched.
  absl::Status SendBatched(const std::vector<ChangeBatch::Statement>& statements,
                           bool server_checked = false);
  bool PlanUsable(const PlannedGroup& plan);
  // Sends the group's plan (planned_, then cleared) into the open transaction.
  absl::Status SendPlan(bool server_checked);
  // Statement() on the fast path: queued; a row count other than `expect_rows` or an error is
  // kept in deferred_ (kAborted, or the transient status of its SQLSTATE).
  absl::Status QueueStatement(const TableName& table, const std::string& sql,
                              const std::vector<const std::string*>& params, int64_t expect_rows,
                              const char* what, bool server_checked);

  // --- careful_path.cc: run now, resolve conflicts, attribute errors to tables.
  absl::Status RunStatement(const TableName& table, const std::string& sql,
                            const std::vector<const std::string*>& params, const char* what,
                            StatementResult* out);
  absl::Status StatementError(const TableName& table, const StatementResult& r, const char* what);
  // The change did not find its row (or found one where it should not): record and resolve
  // per the conflict policy, or stop the table.
  absl::Status Conflict(const v1::Relation& rel, const v1::Change& change, const char* kind);

  // Constant after construction.
  const PostgresSinkOptions& options_;
  const std::string dsn_;
  const std::string origin_;                        // empty: no origin (never used today)
  std::atomic<uint64_t>* const one_trip_groups_;    // the sink's counter
  std::atomic<uint64_t>* const schema_generation_;  // the sink's counter
  ResnapshotRegistry* const resnapshots_;           // the sink's
  const TargetIncarnation* const incarnation_;      // the sink's
  uint64_t seen_schema_generation_ = 0;
  // When the session's prepared statements were last dropped (or the connection made): they
  // are planned again after options_.replan_interval.
  absl::Time planned_since_ = absl::InfinitePast();

  std::unique_ptr<Pipeline> pipe_;
  GroupContext ctx_;
  bool in_txn_ = false;
  uint64_t txn_seq_ = 0;  // seq of the current source transaction's fragment 0
  int64_t txn_commit_us_ = 0;
  std::optional<TableFault> fault_;
  absl::Status deferred_;  // first problem found by a fast-path result callback
  TargetTables tables_;
  uint64_t conflicts_pending_ = 0;
  uint64_t conflicts_committed_ = 0;
  // The current run of INSERTs into one relation (pointers into the fragment being applied).
  const v1::Relation* run_rel_ = nullptr;
  std::vector<const v1::Tuple*> run_rows_;
  // The fast path's net changes of tables where row order is not observable.
  ChangeBatch batch_;
  // COPY changes expanded into INSERTs in this group (statements point into them until Begin).
  std::deque<std::vector<v1::Change>> expanded_;
  // The group's plan, when this session uses it (Apply then has nothing to do).
  const PlannedGroup* planned_ = nullptr;
  // Re-snapshots in the open group, and those of the last committed group.
  std::vector<TableResnapshot> resnapshots_in_group_;
  std::vector<TableResnapshot> resnapshotted_;
};

}  // namespace ferry::pg_sink
