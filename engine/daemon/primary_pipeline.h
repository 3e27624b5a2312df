// PrimaryPipeline: what runs while this region is primary.
//
//   Source -> LogCaptureTarget -> outbound DurableLog -> Shipper ==> peer
//
// Started when the region becomes primary, stopped when it stops being one; a role change is
// "stop one pipeline, persist the new state, start the other" (engine/daemon/daemon.h). The
// pipeline owns the source, the capture target, the shipper and the capture thread; the outbound
// log belongs to the daemon and outlives it.
//
// Threads: Start() spawns the capture thread; the shipper runs its own. Every method is
// thread-safe.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(auto primary,
//                          PrimaryPipeline::Start(options, outbound, std::move(source)));
//   primary->Stop(clock->Now() + absl::Seconds(20));
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/api/source.h"
#include "engine/base/clock.h"
#include "engine/capture/log_capture_target.h"
#include "engine/log/durable_log.h"
#include "engine/replication/shipper.h"
#include "engine/stats/table_counts.h"

namespace ferry {

struct PrimaryPipelineOptions {
  std::string region;
  // The region's current epoch (stamped on captured records, sent in the handshake).
  std::function<uint64_t()> epoch;
  // The shipper's settings (region and epoch are filled from the fields above).
  replication::ShipperOptions shipper;
  // Start with shipping held back (capture goes on).
  bool start_paused = false;
  // Called on the capture thread for each error the source returns (metrics).
  std::function<void(const absl::Status&)> on_source_error;
  // Backoff between restarts of a failed source.
  absl::Duration restart_min = absl::Milliseconds(200);
  absl::Duration restart_max = absl::Seconds(10);
  // Time for Stop()'s deadline and the shipper (options.shipper.clock). Not owned.
  Clock* clock = Clock::Real();
  // Per-table counts of what capture made durable (status' tables). Not owned; may be null.
  TableCounts* table_counts = nullptr;
};

class PrimaryPipeline {
 public:
  // Loads the capture position from `outbound` (which must outlive the pipeline), starts the
  // shipper and the capture thread. Errors: those of the log and the shipper's start.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PrimaryPipeline>> Start(
      PrimaryPipelineOptions options, DurableLog* outbound, std::unique_ptr<Source> source);
  ~PrimaryPipeline();  // Stop(now)

  // Holds shipping back, or lets it go. Capture goes on either way.
  void SetPaused(bool paused);

  // Stops capturing at a transaction boundary, then gives the shipper until `deadline` to get
  // everything captured acknowledged (not while paused), then stops shipping. Returns whether
  // the peer acknowledged everything captured. Idempotent (later calls return false at once).
  bool Stop(absl::Time deadline);

  const LogCaptureTarget& capture() const { return *capture_; }
  const Source& source() const { return *source_; }
  // Source::Resnapshot of this pipeline's source (thread-safe; runs beside capture).
  [[nodiscard]] absl::StatusOr<Source::ResnapshotResult> Resnapshot(const std::string& table) {
    return source_->Resnapshot(table);
  }
  const replication::Shipper& shipper() const { return *shipper_; }
  replication::Shipper& shipper() { return *shipper_; }
  // The last error the source stopped with ("" while capturing).
  std::string capture_error() const;
  // OK while capture runs or retries; once it stopped until an operator acts (a dropped slot,
  // corrupt input: kFailedPrecondition or kDataLoss from the source), that error.
  absl::Status capture_halt() const;

 private:
  PrimaryPipeline(PrimaryPipelineOptions options, DurableLog* outbound)
      : options_(std::move(options)), outbound_(outbound) {}
  void CaptureLoop();

  const PrimaryPipelineOptions options_;
  DurableLog* const outbound_;
  // Constant after Start().
  std::unique_ptr<LogCaptureTarget> capture_;
  std::unique_ptr<Source> source_;
  std::unique_ptr<replication::Shipper> shipper_;

  StopSignal capture_stop_;
  std::thread capture_thread_;
  mutable absl::Mutex mu_;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::string capture_error_ ABSL_GUARDED_BY(mu_);
  absl::Status capture_halt_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry
