// The interface between the engine and a change source (Postgres today, a bucket's event
// stream in the next wave). The engine owns it; a connector implements Source and never
// touches the engine's internals.
//
// Contract (invariant 1 of DESIGN.md): a source acknowledges a position to its upstream (the
// Postgres slot's confirmed_flush_lsn, a Kafka offset) only after CaptureTarget::Append() has
// returned OK for everything up to that position, i.e. only up to CapturedPosition().
//
// Example (a source's main loop, simplified):
//   absl::Status MySource::Run(CaptureTarget& target, const StopSignal& stop) {
//     uint64_t resume = target.CapturedPosition();
//     while (!stop.stopped()) {
//       ... read a transaction ending at commit position P ...
//       FERRY_RETURN_IF_ERROR(target.Append(std::move(fragments), P));
//       Confirm(target.CapturedPosition());
//     }
//   }
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "engine/api/shared_relation.h"
#include "engine/base/clock.h"
#include "proto/change.pb.h"

namespace ferry {

// Set once when the owner wants the source to stop; the source returns from Run() promptly
// (within about a second) after it is set.
class StopSignal {
 public:
  StopSignal();
  ~StopSignal();
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  void Stop();
  bool stopped() const { return stopped_.load(std::memory_order_acquire); }
  // A descriptor that turns readable once stopped (an eventfd), for a source that waits in
  // poll() on a socket: with it beside the socket, a stop ends the wait at once. -1 when the
  // eventfd could not be made (the wait then ends at its own timeout).
  int wake_fd() const { return wake_fd_; }
  // Waits until stopped or the timeout passes; true when stopped. For backoff between retries.
  bool WaitFor(absl::Duration timeout) const {
    return notification_.WaitForNotificationWithTimeout(timeout);
  }
  // Waits on `clock` until `deadline` or a stop; true when stopped.
  bool SleepUntil(Clock& clock, absl::Time deadline) const {
    clock.SleepUntil(deadline, &notification_);
    return stopped();
  }

 private:
  std::atomic<bool> stopped_{false};
  absl::Notification notification_;
  int wake_fd_ = -1;
};

inline StopSignal::StopSignal() : wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

inline StopSignal::~StopSignal() {
  if (wake_fd_ >= 0) close(wake_fd_);
}

inline void StopSignal::Stop() {
  if (stopped_.exchange(true)) return;
  notification_.Notify();
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));  // stays readable: nothing reads it
  }
}

// Where a source puts what it captured. Implemented by the engine (capture into the outbound
// log). Thread-safe.
class CaptureTarget {
 public:
  virtual ~CaptureTarget() = default;

  // Durably appends transaction fragments (in order; see Transaction in proto/change.proto).
  // `captured_position` is the source position that is completely captured once these are
  // durable: the position just past the last complete transaction among them (Postgres: the
  // commit's end LSN, what the slot is confirmed to), or 0 when the
  // fragments complete none (the middle of a large transaction). Returns only when the
  // fragments are durable; on error nothing of this call is durable and the source must
  // restart from CapturedPosition().
  [[nodiscard]] virtual absl::Status Append(std::vector<v1::Transaction> fragments,
                                            uint64_t captured_position) = 0;

  // Append() of fragments whose table descriptions are shared (shared_relation.h): what is
  // made durable is exactly what Append() of the same fragments with their relations copied in
  // makes durable. The default copies them in; a target that serializes writes the shared
  // encodings instead.
  [[nodiscard]] virtual absl::Status AppendShared(std::vector<SharedRelationsFragment> fragments,
                                                  uint64_t captured_position) {
    std::vector<v1::Transaction> copied;
    copied.reserve(fragments.size());
    for (SharedRelationsFragment& f : fragments) copied.push_back(std::move(f).Materialize());
    return Append(std::move(copied), captured_position);
  }

  // Durably appends events that are not database transactions (a bucket's object events, the
  // messages of a partitioned stream), together with the source's own state entries (e.g. the
  // offset of each partition; the keys of PutSourceState) in the same atomic append: once this
  // returns both are durable, on error neither is. The engine stamps origin, epoch and capture
  // time and carries the events to the peer unchanged. A source whose positions are not one
  // number keeps them in this state rather than in CapturedPosition().
  [[nodiscard]] virtual absl::Status AppendEvents(
      std::vector<v1::SourceEvent> events,
      std::vector<std::pair<std::string, std::string>> source_state) {
    (void)events;
    (void)source_state;
    return absl::UnimplementedError("this capture target takes transactions only");
  }

  // Records that the source durably passed `position` with nothing to capture (idle database
  // heartbeats, filtered transactions). Lets the source confirm an idle slot forward.
  [[nodiscard]] virtual absl::Status AdvanceTo(uint64_t position) = 0;

  // The highest source position known durable in the log (0 before the first capture). A
  // source resumes right after it and never confirms beyond it.
  virtual uint64_t CapturedPosition() const = 0;

  // Source-specific durable state (for example "the initial snapshot of table T is complete"),
  // stored in the same log. Values are opaque to the engine.
  [[nodiscard]] virtual absl::Status PutSourceState(const std::string& key,
                                                    const std::string& value) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::string> GetSourceState(
      const std::string& key) const = 0;  // "" when never set
};

// One table's initial copy (SourceHealth::snapshot_tables).
struct TableCopyProgress {
  std::string table;                          // "schema.name"
  uint64_t rows_copied = 0;                   // rows made durable in the log so far
  int64_t rows_estimated = -1;                // upstream's estimate of the table's rows; -1 unknown
  bool done = false;                          // every row is in the log
  absl::Time started = absl::InfinitePast();  // when its first rows were made durable
};

// Health a source reports for status and metrics. Plain values; copied out under the source's
// own lock.
struct SourceHealth {
  bool connected = false;
  uint64_t received_position = 0;   // highest position received from upstream
  uint64_t confirmed_position = 0;  // highest position confirmed to upstream
  int64_t retained_bytes = -1;      // upstream data retained for us (slot WAL), -1 unknown
  std::string last_error;           // empty when healthy
  bool snapshot_in_progress = false;
  std::string upstream_name;  // what the source reads from upstream (Postgres: the slot)
  // What upstream holds that this source does not replicate, as last counted (Postgres: large
  // objects, lo_*); -1 unknown or not applicable.
  int64_t unreplicated_objects = -1;
  // Records the source could not read (a poison message, a malformed notification) and kept in
  // the log as dead letters instead of dropping them, since it started. An event source's.
  uint64_t dead_letters = 0;
  // Tables whose writes upstream fail or are not captured because of how they are defined
  // (Postgres: tables of the publication without a usable replica identity), "schema.name".
  std::vector<std::string> blocked_tables;
  // Conditions an operator must see, each a complete sentence naming what and what to do
  // (the same sentences are logged, rate limited). Empty when none.
  std::vector<std::string> warnings;
  // Every table the source replicates ("schema.name", sorted), as last listed; empty when not
  // known (a source without tables, or upstream never answered).
  std::vector<std::string> tables;
  // The tables of the initial snapshot running or last run since the source was created, in
  // copy order; empty when none ran.
  std::vector<TableCopyProgress> snapshot_tables;
};

// What upstream has committed that is not captured yet (Source::Uncaptured).
struct UncapturedReport {
  bool known = false;  // false: never measured (upstream unreachable since start)
  // Upstream data between `captured_position` and upstream's current position (Postgres: WAL
  // bytes between the captured LSN and pg_current_wal_lsn()), as of measured_at.
  uint64_t bytes = 0;
  // How long upstream has held data that is still not captured: from the first measurement that
  // saw upstream beyond the captured position to the last measurement (0 when caught up).
  absl::Duration behind = absl::ZeroDuration();
  std::string upstream_position;  // upstream's position at measured_at, as operators write it
  absl::Time measured_at = absl::InfinitePast();
};

class Source {
 public:
  virtual ~Source() = default;
  // Captures until `stop` is set (returns OK) or an error the source cannot retry by itself
  // (returns it: kFailedPrecondition for a state an operator must fix, such as a dropped slot).
  // Transient errors (the database restarting) are retried inside with backoff.
  [[nodiscard]] virtual absl::Status Run(CaptureTarget& target, const StopSignal& stop) = 0;
  virtual SourceHealth Health() const = 0;
  // A position as the source's operators write it (Postgres: "16/B374D848"). Positions are
  // opaque to the engine; it shows them only through this.
  virtual std::string FormatPosition(uint64_t position) const { return std::to_string(position); }
  // What upstream holds beyond `captured_position` (the engine's CapturedPosition()), from the
  // source's last measurement of upstream (sources measure on their own schedule, also while
  // capture is stopped or stuck). Thread-safe. Default: not known.
  virtual UncapturedReport Uncaptured(uint64_t captured_position) const {
    (void)captured_position;
    return {};
  }
  // Re-snapshots one table ("schema.name") at a consistent cut of upstream's history: copies
  // it and has the capture put "empty the table, then these rows" at the cut, so that apply
  // makes the peer's copy equal and lifts the table's stop (docs/operations.md). Called from an
  // admin thread while Run() runs; thread-safe. Returns the rows copied once the cut is
  // committed upstream (the capture delivers it like any transaction). kInvalidArgument for a
  // malformed name, kNotFound for a table that is not replicated, kFailedPrecondition for one
  // that cannot be, kUnavailable when upstream is unreachable or busy (nothing was committed:
  // try again). Default: not supported.
  struct ResnapshotResult {
    uint64_t rows = 0;
    std::string id;  // the copy's id, for the operator and the log
  };
  [[nodiscard]] virtual absl::StatusOr<ResnapshotResult> Resnapshot(const std::string& table) {
    (void)table;
    return absl::UnimplementedError("this source cannot re-snapshot a table");
  }

  // Called when this region is about to become primary by a change of direction (a switchover
  // or a promote), before the change is made durable and before the database's fence is lifted,
  // and never while Run() runs: makes upstream keep everything committed from now on for this
  // source (Postgres: a new slot at the current end of the WAL, replacing any earlier one) and
  // records in `target` that capture starts there, without an initial snapshot (the region's
  // database already holds what the previous primary had). What this region's apply wrote is
  // never captured again either way (invariant 5). Idempotent: a second call starts anew.
  // Default: nothing to prepare.
  [[nodiscard]] virtual absl::Status PrepareTakeover(CaptureTarget& target) {
    (void)target;
    return absl::OkStatus();
  }

  // Called when this region stopped being primary (a switchover completed, or at a standby's
  // start): upstream need no longer keep anything for this source (Postgres: the slot is dropped,
  // so that it does not retain WAL). Never while Run() runs. Idempotent. Default: nothing held.
  [[nodiscard]] virtual absl::Status ReleaseCapture() { return absl::OkStatus(); }
};

}  // namespace ferry
