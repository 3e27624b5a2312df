// SourceMonitor: watches the source database beside capture, on its own thread and connection,
// so that what capture cannot see for itself is reported even while capture is stopped (a
// dropped slot), stuck (a full log) or busy decoding one huge transaction:
//
//   - uncaptured WAL: pg_current_wal_lsn() each round; with the captured position this gives the
//     WAL bytes the source committed and Ferry has not captured, and since when (Uncaptured());
//   - tables of the publication without a usable replica identity, on which the application's
//     own UPDATE and DELETE fail on this primary: under KeylessTablePolicy::kReplicaIdentityFull
//     a keyless table with the default identity gets REPLICA IDENTITY FULL (logged); every
//     other one is named in status and in the log (a new table is noticed within one round);
//   - the publication's tables, for status' table list (each round);
//   - large objects (pg_largeobject_metadata rows, every `large_object_rounds` rounds): they are
//     not replicated, and status and the log say so while any exist;
//   - the slot's WAL allowance under max_slot_wal_keep_size: a slot that has used more than half
//     of what Postgres keeps for it, holds more than that, or was invalidated is a warning, so
//     that an operator hears of it before Postgres invalidates the slot (after which the standby
//     must be re-seeded).
//
// Warnings are logged when they appear, again every `warning_repeat` while they last, and once
// when they clear. The state survives Stop()/Start() (the source restarts between sessions).
//
// Threads: Start() spawns the monitor thread; every other method is thread-safe.
//
// Example:
//   SourceMonitor monitor(options);
//   monitor.Start([&target] { return target.CapturedPosition(); });
//   UncapturedReport r = monitor.Uncaptured(target.CapturedPosition());
//   monitor.Stop();
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "connectors/postgres/common/pg_connection.h"
#include "connectors/postgres/common/postgres_config.h"
#include "engine/api/source.h"
#include "engine/base/clock.h"

namespace ferry::pg {

struct SourceMonitorOptions {
  std::string dsn;
  std::string publication;
  // The source's replication slot ("": its WAL allowance is not checked).
  std::string slot;
  KeylessTablePolicy keyless_tables = KeylessTablePolicy::kReplicaIdentityFull;
  // One round: the WAL position and the keyless tables.
  absl::Duration interval = absl::Seconds(1);
  // Large objects are counted every this many rounds (a count of pg_largeobject_metadata).
  int large_object_rounds = 10;
  // A warning that lasts is logged again this often.
  absl::Duration warning_repeat = absl::Minutes(5);
  // Not owned; Clock::Real() when null.
  Clock* clock = nullptr;
};

class SourceMonitor {
 public:
  explicit SourceMonitor(const SourceMonitorOptions& options);
  ~SourceMonitor();  // Stop()

  // Runs a round at once, then one every interval until Stop(). `captured` (thread-safe) is the
  // position capture has made durable. Restartable after Stop().
  void Start(std::function<uint64_t()> captured);
  void Stop();

  // See ferry::Source::Uncaptured.
  UncapturedReport Uncaptured(uint64_t captured_position) const;
  // Sets health's unreplicated_objects (large objects), blocked_tables and warnings.
  void Fill(SourceHealth& health) const;

 private:
  struct Blocked {
    std::string table;  // schema.name, quoted where Postgres would quote
    std::string reason;
  };
  void Loop(std::function<uint64_t()> captured, const absl::Notification* stop);
  void Round(const std::function<uint64_t()>& captured);
  absl::Status MeasureWal(PgConnection& conn, uint64_t captured);
  absl::StatusOr<std::vector<Blocked>> CheckKeyless(PgConnection& conn);
  absl::StatusOr<int64_t> CountLargeObjects(PgConnection& conn);
  // The warning about the slot's WAL allowance, "" when there is nothing to say.
  absl::StatusOr<std::string> CheckSlotAllowance(PgConnection& conn);
  // The publication's tables (schema.name, sorted).
  absl::StatusOr<std::vector<std::string>> ListTables(PgConnection& conn);
  // Logs warnings that appeared, lasted `warning_repeat` or cleared.
  void LogWarnings(const std::vector<std::string>& now);

  const SourceMonitorOptions options_;
  Clock* const clock_;

  // Monitor thread only.
  std::unique_ptr<PgConnection> conn_;
  uint64_t rounds_ = 0;
  std::map<std::string, absl::Time> logged_;  // warning -> when last logged
  // Keyless tables Ferry could not ALTER: table -> (when it last tried, the error).
  std::map<std::string, std::pair<absl::Time, std::string>> alter_failed_;
  std::string last_error_logged_;
  absl::Time last_error_time_ = absl::InfinitePast();

  // Owned by Start()/Stop()'s caller.
  std::unique_ptr<absl::Notification> stop_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  // Measurements of the WAL position still ahead of the captured position, oldest first.
  std::deque<std::pair<absl::Time, uint64_t>> marks_ ABSL_GUARDED_BY(mu_);
  uint64_t wal_position_ ABSL_GUARDED_BY(mu_) = 0;  // last measured, 0 never
  absl::Time measured_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t large_objects_ ABSL_GUARDED_BY(mu_) = -1;
  std::vector<Blocked> blocked_ ABSL_GUARDED_BY(mu_);
  std::string slot_warning_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> tables_ ABSL_GUARDED_BY(mu_);  // the publication's, schema.name
};

}  // namespace ferry::pg
