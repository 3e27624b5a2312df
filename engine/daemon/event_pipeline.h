// EventPipeline: the daemon's second pipeline, for a source of non-transaction events (a
// bucket's object events) beside the database's. Compact on purpose: it shares the region's
// logs, shipper and receiver with the database pipeline and adds only the two ends.
//
//   capture mode (primary):  Source::Run -> LogCaptureTarget -> outbound log (the shipper
//                            carries the events with everything else)
//   apply mode (standby):    inbound log's SourceEvent records -> EventSink::ApplyEvents, the
//                            progress kept as the inbound log cursor "events_applied" (the next
//                            seq to look at), written after each successful batch (the sink is
//                            idempotent: a replay after a crash changes nothing). The daemon
//                            trims the inbound log only below applied_next_seq().
//
// The database apply passes over SourceEvent records (engine/apply/inbound_reader.h); this
// pipeline passes over everything else.
//
// A failing source or sink is retried with backoff; its error is in last_error() meanwhile.
// Thread-safe accessors; Stop() is idempotent and joins the worker.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "engine/api/event_sink.h"
#include "engine/api/source.h"
#include "engine/base/clock.h"
#include "engine/log/durable_log.h"

namespace ferry {

inline constexpr char kEventsAppliedCursor[] = "events_applied";

struct EventPipelineOptions {
  std::string region;
  std::function<uint64_t()> epoch;
  absl::Duration restart_min = absl::Milliseconds(200);
  absl::Duration restart_max = absl::Seconds(10);
  size_t max_batch_records = 1000;
  uint64_t max_batch_bytes = uint64_t{16} << 20;
  Clock* clock = Clock::Real();
  // Called on the pipeline's thread: per applied event, its capture-to-apply latency; per
  // failed attempt (capture or apply), the error.
  std::function<void(absl::Duration)> on_event_applied;
  std::function<void(const absl::Status&)> on_error;
  // Apply mode: start with applying held back (the region is paused).
  bool start_paused = false;
  // Apply mode, while paused: how often the pending objects are counted again (a resume or a
  // stop ends the wait at once).
  absl::Duration paused_recount = absl::Milliseconds(100);
};

struct EventPipelineStatus {
  bool capturing = false;         // capture mode
  bool paused = false;            // apply mode: held back by SetPaused
  uint64_t applied_next_seq = 0;  // apply mode: inbound records below are applied
  uint64_t events_applied = 0;    // since start
  uint64_t events_pending = 0;    // apply mode: SourceEvent records not applied yet (last scan)
  // Apply mode: what the events not applied yet will write (EventSink::Weigh), counted over the
  // inbound log from applied_next_seq up to pending_scanned_seq (exclusive): the scan runs ahead
  // of apply (CountPending: on the apply thread between batches, and from the daemon's
  // maintenance thread, so that a batch stuck on a slow or unreachable bucket does not hide
  // what arrives behind it), at most kPendingScanRecords records a turn.
  uint64_t objects_pending = 0;
  uint64_t bytes_pending = 0;
  uint64_t pending_scanned_seq = 0;
  std::string target;  // apply mode: EventSink::target_name()
  std::string last_error;
  SourceHealth source;  // capture mode: the source's own report
};

class EventPipeline {
 public:
  // `outbound` / `inbound` must outlive the pipeline.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<EventPipeline>> StartCapture(
      EventPipelineOptions options, DurableLog* outbound, std::unique_ptr<Source> source);
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<EventPipeline>> StartApply(
      EventPipelineOptions options, DurableLog* inbound, std::unique_ptr<EventSink> sink);
  ~EventPipeline();  // Stop()

  void Stop();
  // Apply mode: holds applying back (after the batch in progress), or lets it go; the region's
  // pause (docs/operations.md). Capture mode: no effect (capture goes on while paused, as the
  // database's does; shipping is what pause holds).
  void SetPaused(bool paused);
  EventPipelineStatus status() const;
  // Apply mode: the inbound log may be trimmed below this. Capture mode: UINT64_MAX.
  uint64_t applied_next_seq() const { return applied_next_.load(); }
  // Apply mode: waits until every inbound record below `next_seq` is applied (a switchover's
  // drain, a bucket verify's cut), at most `timeout` or until Stop(). True when they are;
  // capture mode: at once.
  bool WaitForApplied(uint64_t next_seq, absl::Duration timeout) const;
  // Apply mode: counts what arrived in the inbound log since the last count into the pending
  // totals (see EventPipelineStatus). Thread-safe; reads at most kPendingScanRecords records.
  // Capture mode: nothing.
  void CountPending();

 private:
  explicit EventPipeline(EventPipelineOptions options) : options_(std::move(options)) {}
  void CaptureLoop(DurableLog* outbound);
  void ApplyLoop(DurableLog* inbound);
  absl::Status ApplyOnce(DurableLog* inbound, bool* idle);
  // Counts the weight of the records from scanned_next_ on (at most kPendingScanRecords) into
  // the pending totals.
  absl::Status ScanPending(DurableLog* inbound) ABSL_LOCKS_EXCLUDED(scan_mu_);
  static constexpr size_t kPendingScanRecords = 5000;
  void SetError(const absl::Status& s);

  const EventPipelineOptions options_;
  std::unique_ptr<Source> source_;
  std::unique_ptr<EventSink> sink_;
  StopSignal stop_;
  std::thread worker_;
  std::atomic<uint64_t> applied_next_{UINT64_MAX};
  DurableLog* inbound_ = nullptr;  // apply mode; constant after StartApply
  // Held across a scan's read of the log and while apply moves its progress: the first record
  // no scan has weighed. Before mu_.
  absl::Mutex scan_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  uint64_t scanned_next_ ABSL_GUARDED_BY(scan_mu_) = 0;
  mutable absl::Mutex mu_;
  EventPipelineStatus status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry
