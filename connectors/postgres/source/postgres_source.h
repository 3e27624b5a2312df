// PostgresSource: the ferry::Source of a Postgres database. It captures every committed
// transaction of a publication through a pgoutput logical replication slot, optionally starting
// with a snapshot of the existing rows, and appends them as v1::Transaction fragments to the
// engine's CaptureTarget. Behaviour, formats and recovery: connectors/postgres/source/README.md.
//
// Example:
//   PostgresSourceOptions options;
//   options.dsn = "host=127.0.0.1 dbname=app user=ferry";
//   options.publication = "ferry";
//   options.slot = "ferry_east";
//   options.origin_region = "east";
//   FERRY_ASSIGN_OR_RETURN(auto source, PostgresSource::Create(options));
//   absl::Status s = source->Run(target, stop);  // until stop, or an error needing an operator
//
// Thread safety: Run() is called by one thread (the capture thread, which owns every
// connection); Health() may be called from any thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "connectors/postgres/common/postgres_config.h"
#include "connectors/postgres/source/source_monitor.h"
#include "engine/api/source.h"
#include "engine/base/clock.h"
#include "engine/base/log_limiter.h"

namespace ferry::pg {

class PgConnection;

struct PostgresSourceOptions {
  // libpq connection string (key=value or URI) of the database to capture. Required.
  std::string dsn;
  // Publication to stream; created when missing: FOR ALL TABLES, or FOR TABLE `tables` when
  // that list is not empty, WITH (publish_via_partition_root = true). An existing publication
  // is used as it is.
  std::string publication = "ferry";
  // Logical replication slot (pgoutput); created when missing on the first start. Only
  // lower-case letters, digits and underscores (Postgres's rule).
  std::string slot = "ferry";
  // Tables of a publication Ferry creates, as "schema.name" (exact, unquoted names; the first
  // dot separates the schema). Empty: all tables.
  std::vector<std::string> tables;
  // Stamped into every Transaction.origin_region. Required.
  std::string origin_region;
  // Copy the existing rows when the slot is created (see README, "Initial snapshot").
  bool snapshot = true;
  int snapshot_parallelism = 2;
  // Large transactions are split into fragments of at most this many changes / about this
  // many bytes; the same limits size snapshot chunks.
  size_t max_fragment_changes = 10000;
  size_t max_fragment_bytes = 8 << 20;
  // Transactions whose replication origin starts with this are not captured (Ferry's apply).
  std::string skip_origin_prefix = "ferry_";
  // Confirm the captured position to the slot at most this often (and at least every 10 s).
  absl::Duration status_interval = absl::Seconds(1);
  // How long an idle capture waits for the walsender before its periodic work (status, the
  // retained-WAL measure, sequences) is looked at again. A stop ends the wait at once.
  absl::Duration idle_poll = absl::Milliseconds(200);
  // Group commit delay (commit_delay.h): when the socket drained less than this after the
  // previous append made at a drain, wait up to the rest of it for more transactions before
  // appending (0: append as soon as the socket drains)...
  absl::Duration commit_delay = absl::ZeroDuration();
  // ...but only when the recent rate says at least this many transactions arrive within the
  // delay (0: whatever the rate).
  int commit_siblings = 0;
  // How often the slot's retained WAL is measured for Health().retained_bytes.
  absl::Duration retained_bytes_interval = absl::Seconds(10);
  // How often the capture emits sequence values when any changed (ferry.emit_sequences; a
  // switchover's fence emits them too). Zero: never periodically (ferryd: 5 s).
  absl::Duration sequence_interval = absl::ZeroDuration();
  // What to do about a published table without a usable replica identity
  // (connectors/postgres/source/README.md, "Tables without a primary key").
  KeylessTablePolicy keyless_tables = KeylessTablePolicy::kReplicaIdentityFull;
  // How often the source database is checked beside capture (SourceMonitor): the WAL position
  // for Uncaptured(), keyless tables; large objects every 10 checks.
  absl::Duration monitor_interval = absl::Seconds(1);
  // Where re-snapshots (Resnapshot(), resnapshot.h) stage their copies for the capture
  // (ferryd: <data_dir>/resnapshot). Empty: re-snapshots are refused.
  std::string resnapshot_dir;
  // How long a re-snapshot waits for its SHARE lock on the table.
  absl::Duration resnapshot_lock_timeout = absl::Seconds(10);
  // Reconnect backoff after a transient error: doubles from min to max.
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);
  // Not owned; Clock::Real() when null.
  Clock* clock = nullptr;
};

class PostgresSource final : public Source {
 public:
  // Validates the options (kInvalidArgument naming the field). Connects to nothing yet.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PostgresSource>> Create(
      const PostgresSourceOptions& options);

  // See ferry::Source. Returns kFailedPrecondition when the slot disappeared or was replaced,
  // belongs to another database or cluster, or is ahead of what was captured; kDataLoss for a
  // malformed stream. Everything else is retried with backoff.
  [[nodiscard]] absl::Status Run(CaptureTarget& target, const StopSignal& stop) override;
  SourceHealth Health() const override;
  std::string FormatPosition(uint64_t position) const override;
  UncapturedReport Uncaptured(uint64_t captured_position) const override;
  // Copies one table at a consistent cut on its own connection (resnapshot.h); the running
  // capture delivers it. Thread-safe.
  absl::StatusOr<ResnapshotResult> Resnapshot(const std::string& table) override;
  // A new slot at the current end of the WAL (the old one dropped), recorded as captured from
  // there with the initial snapshot done.
  absl::Status PrepareTakeover(CaptureTarget& target) override;
  // Drops the slot (waiting up to 10 s for its walsender to exit); creates the publication when
  // it is missing (a standby's first start: a later takeover then needs no superuser).
  absl::Status ReleaseCapture() override;

  // Keys of the source state this source keeps in the CaptureTarget.
  std::string StateKey(const std::string& name) const;

 private:
  explicit PostgresSource(const PostgresSourceOptions& options);
  // Drops the slot when it exists, waiting up to 10 s for its walsender to exit.
  absl::Status DropSlot(PgConnection& conn);
  class Session;
  friend class Session;
  absl::Status RunSessions(CaptureTarget& target, const StopSignal& stop);

  const PostgresSourceOptions options_;
  Clock* const clock_;
  const std::unique_ptr<SourceMonitor> monitor_;
  LogLimiter session_errors_;  // lost connections and other session errors

  mutable absl::Mutex mu_;
  SourceHealth health_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::pg
