// PostgresSink: applies Ferry transactions to a Postgres 15 target (the Sink of
// engine/api/sink.h). Decisions and the target-side schema: README.md beside this file.
//
// Exactly once. Session k applies through replication origin
//   ferry_<source_region>_<epoch>_w<k>
// (pg_replication_origin_session_setup), and every group commits with
// pg_replication_origin_xact_setup(<log seq as an LSN>, <source commit time>), so the progress
// is committed atomically with the data, and what apply writes carries the origin (the source
// connector skips origin-tagged changes: no loops). Postgres lets one session hold an origin at
// a time, hence one per worker. LoadState() reads the progress as the maximum over every
// ferry_<source_region>_<epoch>_w<k> origin (groups commit in log order, so the maximum is a
// consistent prefix); origins of another epoch are folded into this epoch's w0 and dropped, which
// fails (kUnavailable) while an applier of the old epoch still holds one: a fence against a
// zombie. The upstream log the progress counts is named by the marker origin
// ferry_<source_region>_log_<log_id> (origins.h: why that is safe under a crash).
//
// Target-side bookkeeping (schema `ferry`, created when missing):
//   ferry.conflicts    every conflict, written in the transaction that resolved it;
//   ferry.table_state  stopped tables (a row = stopped; no row = applying);
//   ferry.target_run   UNLOGGED: the run of the target each apply round began on
//                      (target_incarnation.h).
//
// Hot path: libpq pipeline mode, prepared statements, multi-row INSERTs; conflicts and errors
// are detected from the results and the group is then re-applied change by change ("careful"),
// where every conflict is resolved per policy and every error names its table.
//
// Thread safety: PostgresSink is thread-safe; each session is used by one thread at a time.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(auto sink, PostgresSink::Open({.dsn = "...", .source_region = "east"}));
//   FERRY_ASSIGN_OR_RETURN(auto apply, ApplyScheduler::Start({}, inbound, sink.get()));
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "connectors/postgres/sink/pipeline.h"
#include "connectors/postgres/sink/resnapshots.h"
#include "connectors/postgres/sink/target_incarnation.h"
#include "engine/api/sink.h"
#include "engine/base/clock.h"

namespace ferry {

struct PostgresSinkOptions {
  // libpq connection string of the target database (a superuser, or a role that may use
  // replication origins and set session_replication_role).
  std::string dsn;
  // The region whose changes are applied; names origins and bookkeeping rows. [A-Za-z0-9_-].
  std::string source_region;
  // The epoch of the inbound log's producer (names origins; see above).
  uint64_t epoch = 0;
  ConflictPolicy conflict_policy = ConflictPolicy::kStopTable;
  // A single value larger than this stops its table (protects memory and the target).
  size_t max_value_bytes = 32 << 20;
  // Rows per multi-row INSERT statement (capped so that parameters stay below 65535).
  int insert_batch_rows = 100;
  // session_replication_role = replica: user triggers and foreign-key checks do not fire, as in
  // Postgres's own logical replication (needed for parallel apply).
  bool replica_role = true;
  // A statement waiting longer than this for a lock fails (kAborted: the scheduler re-applies
  // serially). Guards against a lock cycle between parallel workers the key tracking missed.
  absl::Duration lock_timeout = absl::Seconds(20);
  // libpq connect_timeout for each connection.
  int connect_timeout_seconds = 5;
  // false: apply sessions commit with synchronous_commit = off, as Postgres's own subscriptions
  // do. A commit then returns before its WAL is flushed; a crash of the target can take back
  // the last commits (data and progress together, atomically). DurableSeq() reports the flushed
  // progress, and the engine keeps the inbound log from there, so those commits are applied
  // again. true: every commit waits for its WAL flush.
  bool synchronous_commit = false;
  // Apply sessions plan each prepared statement once (generic plans, postgres_session.cc) and
  // drop their statements to plan them again after this long. A generic plan keeps the table
  // sizes it was made with until Postgres invalidates it (an ANALYZE of the table), so one made
  // while a table was small (a hash join over a sequential scan) would otherwise last through
  // the table's growth until autovacuum analyzes it.
  absl::Duration replan_interval = absl::Seconds(10);
  // The clock of replan_interval. Not owned; tests pass a ManualClock.
  Clock* clock = Clock::Real();
};

class PostgresSink final : public Sink {
 public:
  // Validates the options; connects to nothing yet (the target may be down).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PostgresSink>> Open(
      const PostgresSinkOptions& options);
  ~PostgresSink() override;

  // Also binds the progress to upstream.log_id (origins.h: the marker origin).
  [[nodiscard]] absl::StatusOr<SinkState> LoadState(const UpstreamLog& upstream) override;
  // The durable progress and its marker (origins.h ReadCommittedProgress).
  [[nodiscard]] absl::StatusOr<TargetProgress> CommittedProgress() override;
  // Drops the region's origins (origins.h DiscardProgress).
  [[nodiscard]] absl::StatusOr<uint64_t> DiscardProgress(const std::string& discard_log_id,
                                                         const std::string& keep_log_id) override;
  [[nodiscard]] absl::StatusOr<std::unique_ptr<SinkSession>> OpenSession(int worker) override;
  [[nodiscard]] absl::StatusOr<UniqueKeys> UniqueKeysOf(const v1::Relation& relation) override;
  // Encodes a group's statements ahead when all of its changes can go into one ChangeBatch
  // (change_batch.h); a session uses the plan only when every table in it is verified and
  // batchable on its connection.
  [[nodiscard]] std::shared_ptr<const GroupPlan> Plan(const GroupTransactions& txns) override;
  // With synchronous_commit off: the largest flushed progress of this region's origins
  // (pg_replication_origin_progress(..., flush => true)); groups commit in log order, and every
  // commit that records progress moves its origin (it takes a transaction id), so every group
  // up to it is durable. kAborted when the target no longer holds the round's run token
  // (target_incarnation.h): it crashed, and may have taken back commits apply counts. The token
  // is read in the same statement.
  [[nodiscard]] absl::StatusOr<std::optional<uint64_t>> DurableSeq() override;

  // ferry_<region>_<epoch>_w<worker>.
  std::string OriginName(int worker) const;
  const PostgresSinkOptions& options() const { return options_; }
  // Groups this sink's sessions sent in one round trip (SinkSession::PrepareAndCommit),
  // committed or not. For tests and diagnostics.
  uint64_t one_trip_groups() const { return one_trip_groups_.load(std::memory_order_relaxed); }

 private:
  absl::Status CheckPrivileges(pg_sink::Pipeline& pipe) const;
  explicit PostgresSink(const PostgresSinkOptions& options) : options_(options) {}
  std::string Dsn() const;
  // The connection for catalog and progress queries, kept open (re-opened when broken).
  absl::StatusOr<pg_sink::Pipeline*> AdminConnection() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PostgresSinkOptions options_;
  absl::Mutex mu_;  // serializes the admin connection
  std::unique_ptr<pg_sink::Pipeline> admin_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> one_trip_groups_{0};
  std::atomic<uint64_t> schema_generation_{0};  // schema changes replayed (sessions re-read)
  pg_sink::ResnapshotRegistry resnapshots_;     // re-snapshots committed by any session
  pg_sink::TargetIncarnation incarnation_;      // the target's run the round began on
  absl::BitGen bitgen_ ABSL_GUARDED_BY(mu_);    // incarnation tokens
};

}  // namespace ferry
