// Daemon: starting and stopping the role's pipelines, and a role change (ChangeRole): the
// database's pipeline and the bucket's event pipeline beside it (docs/objects.md, "How it is
// wired"). A standby's bucket apply drains before a flip as its database apply does.
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "engine/base/status_macros.h"
#include "engine/daemon/apply_cut_barrier.h"
#include "engine/daemon/daemon.h"
#include "engine/daemon/event_pipeline.h"
#include "engine/daemon/primary_pipeline.h"
#include "engine/daemon/standby_pipeline.h"
#include "engine/log/durable_log.h"
#include "engine/log/log_names.h"
#include "engine/metrics/metrics.h"
#include "engine/region/role_controller.h"
#include "engine/replication/receiver_router.h"
#include "engine/replication/server.h"

namespace ferry {

// Builds the role's pipeline without holding pipeline_mu_ (a factory may connect to a database,
// the server binds), then installs it. REQUIRES: change_mu_ held, or the daemon is starting.
absl::Status Daemon::StartPipeline(Role role) {
  const RegionRecord now = roles_->Get();
  const PipelineContext context{.epoch = now.epoch,
                                .rejoining = now.phase == RegionPhase::kRejoining};
  const bool paused = roles_->paused();
  RoleController* roles = roles_.get();
  auto epoch = [roles] { return roles->epoch(); };
  const replication::TlsOptions& tls = tls_;

  if (role == Role::kPrimary) {
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Source> source, factories_.source(config_, context));
    PrimaryPipelineOptions po;
    po.region = config_.region;
    po.epoch = epoch;
    po.start_paused = paused;
    po.clock = clock_;
    po.table_counts = &captured_tables_;
    po.on_source_error = [this](const absl::Status&) {
      if (Metrics* m = metrics_.load()) m->CountError("source");
    };
    replication::ShipperOptions& so = po.shipper;
    so.peer_address = config_.peer.replication.ToString();
    so.token = config_.security.token.value;
    so.tls = tls;
    so.compression_level = config_.stream.compression_level;
    so.window_bytes = config_.stream.window_bytes;
    so.max_batch_bytes = config_.stream.max_batch_bytes;
    so.max_message_bytes = config_.stream.max_message_bytes;
    so.backoff.min = absl::Milliseconds(config_.stream.reconnect_min_ms);
    so.backoff.max = absl::Milliseconds(config_.stream.reconnect_max_ms);
    so.on_batch_sent = [this](uint64_t records) {
      if (Metrics* m = metrics_.load()) m->ObserveBatchRecords(static_cast<double>(records));
    };
    FERRY_ASSIGN_OR_RETURN(
        std::unique_ptr<PrimaryPipeline> primary,
        PrimaryPipeline::Start(std::move(po), outbound_.get(), std::move(source)));
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<EventPipeline> events, StartEvents(role, context));
    {
      absl::MutexLock lock(&pipeline_mu_);
      primary_ = std::move(primary);
      events_ = std::move(events);
      pipeline_error_.clear();
    }
    SettleFence();  // lifted: the database takes writes
    return absl::OkStatus();
  }
  // A standby's database is fenced, and holds nothing for a capture (the slot of its last turn
  // as primary, or of a switchover rolled back, would retain WAL).
  SettleFence();
  {
    absl::StatusOr<std::unique_ptr<Source>> source = factories_.source(config_, context);
    absl::Status released = source.ok() ? (*source)->ReleaseCapture() : source.status();
    if (!released.ok()) {
      spdlog::warn("region {}: releasing the capture's upstream position failed: {}",
                   config_.region, released.ToString());
    }
  }
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Sink> sink, factories_.sink(config_, context));
  StandbyPipelineOptions options;
  options.start_paused = paused;
  options.clock = clock_;
  replication::ReceiverOptions& ro = options.receiver;
  ro.region = config_.region;
  ro.expected_peer_region = config_.peer.region;
  ro.token = config_.security.token.value;
  ro.epoch = epoch;
  ro.adopt_epoch = [roles](uint64_t e) { return roles->AdoptEpoch(e).status(); };
  ro.max_uncompressed_batch_bytes = config_.stream.max_message_bytes * 4;
  options.router = router_.get();
  options.cut_barrier = cut_barrier_.get();
  ApplyOptions& ao = options.apply;
  ao.workers = config_.apply.workers;
  ao.max_group_transactions = static_cast<size_t>(config_.apply.group_max_transactions);
  ao.max_group_bytes = config_.apply.group_max_bytes;
  ao.max_group_delay = absl::Milliseconds(config_.apply.group_max_delay_ms);
  ao.durable_poll = absl::Milliseconds(config_.apply.durable_poll_ms);
  ao.stopped_table_retention_bytes = config_.apply.stopped_table_retention_bytes;
  ao.table_counts = &applied_tables_;
  ao.on_group_committed = [this](absl::Duration latency, size_t transactions) {
    if (Metrics* m = metrics_.load()) {
      m->ObserveApplyLatency(absl::ToDoubleSeconds(latency));
      m->ObserveBatchRecords(static_cast<double>(transactions));
    }
  };
  FERRY_ASSIGN_OR_RETURN(
      std::unique_ptr<StandbyPipeline> standby,
      StandbyPipeline::Start(std::move(options), inbound_.get(), std::move(sink)));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<EventPipeline> events, StartEvents(role, context));
  absl::MutexLock lock(&pipeline_mu_);
  standby_ = std::move(standby);
  events_ = std::move(events);
  pipeline_error_.clear();
  return absl::OkStatus();
}

// Detaches the running pipeline (status then shows none) and stops it, draining until
// `deadline`, without holding pipeline_mu_. REQUIRES: change_mu_ held.
absl::StatusOr<std::unique_ptr<EventPipeline>> Daemon::StartEvents(Role role,
                                                                   const PipelineContext& context) {
  const bool primary = role == Role::kPrimary;
  if (primary ? !factories_.event_source : !factories_.event_sink) {
    return std::unique_ptr<EventPipeline>();
  }
  RoleController* roles = roles_.get();
  EventPipelineOptions options{
      .region = config_.region, .epoch = [roles] { return roles->epoch(); }, .clock = clock_};
  options.on_event_applied = [this](absl::Duration latency) {
    if (Metrics* m = metrics_.load()) m->ObserveObjectLatency(absl::ToDoubleSeconds(latency));
  };
  options.on_error = [this](const absl::Status& s) {
    if (Metrics* m = metrics_.load()) {
      std::string kind = absl::StatusCodeToString(s.code());
      for (char& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      m->CountObjectError(kind);
    }
  };
  if (primary) {
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Source> source,
                           factories_.event_source(config_, context));
    return EventPipeline::StartCapture(std::move(options), outbound_.get(), std::move(source));
  }
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<EventSink> sink, factories_.event_sink(config_, context));
  options.start_paused = roles_->paused();
  return EventPipeline::StartApply(std::move(options), inbound_.get(), std::move(sink));
}

bool Daemon::StopPipeline(absl::Time deadline, bool apply_backlog) {
  std::unique_ptr<PrimaryPipeline> primary;
  std::unique_ptr<StandbyPipeline> standby;
  std::unique_ptr<EventPipeline> events;
  {
    absl::MutexLock lock(&pipeline_mu_);
    primary = std::move(primary_);
    standby = std::move(standby_);
    events = std::move(events_);
  }
  // The primary's capture first: what it captured is then shipped by the primary's drain.
  if (events && primary) events->Stop();
  if (primary) primary->Stop(deadline);
  if (standby) standby->Stop(deadline, apply_backlog);  // no more records arrive from here
  bool bucket_applied = true;
  if (events && standby) {
    // The bucket's apply drains like the database's (as a switchover's does): an object event
    // received and not applied here would be lost once this region captures its own bucket.
    const uint64_t end = inbound_->next_seq();
    bucket_applied = events->applied_next_seq() >= end;
    if (apply_backlog && !bucket_applied && !roles_->paused() && clock_->Now() < deadline) {
      bucket_applied = events->WaitForApplied(end, deadline - clock_->Now());
    }
  }
  if (events && !primary) events->Stop();
  return bucket_applied;
}

absl::Status Daemon::ChangeRole(Role target, absl::Duration drain) {
  absl::MutexLock change(&change_mu_);
  if (shut_down_) return absl::FailedPreconditionError("ferryd is shutting down");
  const RegionRecord before = roles_->Get();
  if (before.role == target || before.phase != RegionPhase::kReplicating) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, " is ", std::string(RoleName(before.role)), " and ",
                     std::string(RegionPhaseName(before.phase)), "; cannot become ",
                     std::string(RoleName(target))));
  }
  const std::string operation = absl::StrCat("role-", before.epoch, "-", ++operations_);
  FERRY_RETURN_IF_ERROR(roles_->BeginSwitch(operation));
  if (!StopPipeline(clock_->Now() + drain, /*apply_backlog=*/true) && target == Role::kPrimary) {
    // A standby whose bucket apply did not drain would capture its bucket without those objects
    // (and its backfill's reconcile would have the peer delete them): not flipped.
    (void)roles_->RollBackSwitch(operation);
    absl::Status restart = StartPipeline(before.role);
    absl::MutexLock lock(&pipeline_mu_);
    pipeline_error_ = restart.ok() ? "" : restart.ToString();
    return absl::DeadlineExceededError(absl::StrCat(
        "region ", config_.region, ": the bucket's events received were not all applied within ",
        absl::FormatDuration(drain), before.paused ? " (the region is paused)" : "", ": still ",
        std::string(RoleName(before.role))));
  }
  // Read after the drain: a standby's receiver may have adopted a higher epoch meanwhile.
  const uint64_t new_epoch = roles_->epoch() + 1;
  if (absl::Status s = roles_->CompleteSwitch(operation, new_epoch); !s.ok()) {
    // Not flipped: back to the old role, as a restart would do.
    (void)roles_->RollBackSwitch(operation);
    absl::Status restart = StartPipeline(before.role);
    absl::MutexLock lock(&pipeline_mu_);
    pipeline_error_ = restart.ok() ? "" : restart.ToString();
    return s;
  }
  spdlog::info("region {}: now {} under epoch {}", config_.region, RoleName(target),
               roles_->epoch());
  absl::Status started = StartPipeline(target);
  if (!started.ok()) {
    absl::MutexLock lock(&pipeline_mu_);
    pipeline_error_ = started.ToString();
  }
  return started;
}

// A pipeline that could not start (a factory's database down, a port taken) is tried again
// every maintenance round, so the region recovers without a restart. Skipped while a role
// change, pause or shutdown holds change_mu_.
void Daemon::RestartFailedPipeline() {
  if (!change_mu_.TryLock()) return;
  RestartFailedPipelineLocked();
  change_mu_.Unlock();
}

void Daemon::RestartFailedPipelineLocked() {
  if (shut_down_) return;
  CheckPeerEpoch(absl::Now() + absl::Milliseconds(500));
  const RegionRecord region = roles_->Get();
  if (region.phase == RegionPhase::kSwitching && region.role == Role::kPrimary) {
    (void)ResolveSwitchover(absl::Now() + absl::Seconds(2));
    return;
  }
  {
    absl::MutexLock lock(&pipeline_mu_);
    if (primary_ != nullptr || standby_ != nullptr || pipeline_error_.empty()) return;
  }
  if (region.phase != RegionPhase::kReplicating &&
      !(region.phase == RegionPhase::kRejoining && region.role == Role::kStandby)) {
    return;
  }
  absl::Status s = StartPipeline(region.role);
  if (s.ok()) {
    spdlog::info("region {}: the {} pipeline started on a retry", config_.region,
                 RoleName(region.role));
    return;
  }
  absl::MutexLock lock(&pipeline_mu_);
  pipeline_error_ = s.ToString();
}

}  // namespace ferry
