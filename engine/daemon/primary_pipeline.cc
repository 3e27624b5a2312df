#include "engine/daemon/primary_pipeline.h"

#include <spdlog/spdlog.h>

#include "engine/base/backoff.h"
#include "engine/base/status_macros.h"
#include "engine/base/thread_name.h"

namespace ferry {

absl::StatusOr<std::unique_ptr<PrimaryPipeline>> PrimaryPipeline::Start(
    PrimaryPipelineOptions options, DurableLog* outbound, std::unique_ptr<Source> source) {
  options.shipper.region = options.region;
  options.shipper.epoch = options.epoch;
  options.shipper.start_paused = options.start_paused;
  options.shipper.clock = options.clock;
  std::unique_ptr<PrimaryPipeline> p(new PrimaryPipeline(std::move(options), outbound));
  {
    absl::MutexLock lock(&p->mu_);
    p->paused_ = p->options_.start_paused;
  }
  p->capture_ = std::make_unique<LogCaptureTarget>(outbound, p->options_.region, p->options_.epoch,
                                                   p->options_.clock);
  FERRY_RETURN_IF_ERROR(p->capture_->Load());
  p->capture_->CountTablesInto(p->options_.table_counts);
  p->source_ = std::move(source);
  FERRY_ASSIGN_OR_RETURN(p->shipper_, replication::Shipper::Start(p->options_.shipper, outbound));
  p->capture_thread_ = std::thread([raw = p.get()] { raw->CaptureLoop(); });
  return p;
}

PrimaryPipeline::~PrimaryPipeline() { Stop(options_.clock->Now()); }

void PrimaryPipeline::SetPaused(bool paused) {
  {
    absl::MutexLock lock(&mu_);
    paused_ = paused;
  }
  shipper_->SetPaused(paused);
}

std::string PrimaryPipeline::capture_error() const {
  absl::MutexLock lock(&mu_);
  return capture_error_;
}

absl::Status PrimaryPipeline::capture_halt() const {
  absl::MutexLock lock(&mu_);
  return capture_halt_;
}

void PrimaryPipeline::CaptureLoop() {
  SetCurrentThreadName("capture");
  Backoff backoff({.min = options_.restart_min, .max = options_.restart_max, .jitter = 0}, 0);
  while (!capture_stop_.stopped()) {
    absl::Status s = source_->Run(*capture_, capture_stop_);
    if (capture_stop_.stopped()) break;
    // An operator must act (slot dropped, corrupt input): stop capturing, keep serving status
    // so that the error is visible, never skip ahead silently.
    const bool halt = s.code() == absl::StatusCode::kFailedPrecondition ||
                      s.code() == absl::StatusCode::kDataLoss;
    {
      absl::MutexLock lock(&mu_);
      capture_error_ = s.ok() ? "" : std::string(s.message());
      if (halt) capture_halt_ = s;
    }
    if (!s.ok()) {
      if (options_.on_source_error) options_.on_source_error(s);
      if (halt) {
        spdlog::error(
            "capture stopped until an operator acts (see the source connector's README): {}",
            s.ToString());
        return;
      }
    }
    const absl::Duration delay = backoff.Next();
    if (!s.ok()) {
      spdlog::warn("capture failed, retrying in {}: {}", absl::FormatDuration(delay), s.ToString());
    }
    if (capture_stop_.WaitFor(delay)) break;
  }
}

bool PrimaryPipeline::Stop(absl::Time deadline) {
  bool paused;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return false;
    stopped_ = true;
    paused = paused_;
  }
  capture_stop_.Stop();
  if (capture_thread_.joinable()) capture_thread_.join();
  if (shipper_ == nullptr) return false;  // a Start() that failed before the shipper ran
  const uint64_t target = outbound_->next_seq();
  bool acked = shipper_->status().acked_next_seq >= target;
  if (!paused && !acked) {
    acked = shipper_->WaitForAck(target, deadline);
    if (!acked) {
      spdlog::warn("primary pipeline stopped: peer has not acknowledged up to {} (RPO {} records)",
                   target, shipper_->status().unacked_records);
    }
  }
  shipper_->Stop();
  return acked;
}

}  // namespace ferry
