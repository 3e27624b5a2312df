// Daemon: the database fence and the planned switchover (ferryctl reverse), both sides; see
// the top of daemon.h and docs/operations.md ("Switchover", "Fencing").
#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/base/kill_point.h"
#include "engine/base/status_macros.h"
#include "engine/capture/log_capture_target.h"
#include "engine/daemon/daemon.h"
#include "engine/daemon/event_pipeline.h"
#include "engine/daemon/primary_pipeline.h"
#include "engine/daemon/standby_pipeline.h"
#include "engine/daemon/status_report.h"
#include "engine/log/durable_log.h"
#include "engine/log/log_names.h"
#include "engine/region/role_controller.h"
#include "engine/replication/shipper.h"
#include "spdlog/spdlog.h"

namespace ferry {

// --- The database fence --------------------------------------------------------------------

FenceNotice Daemon::NoticeFor(const RegionRecord& region) const {
  const std::string& peer = config_.peer.region.empty() ? "the peer" : config_.peer.region;
  if (region.role == Role::kPrimary && region.phase == RegionPhase::kReplicating &&
      self_fenced_.load()) {
    return {absl::StrCat("ferry: region ", config_.region, " fenced itself: no answer from region ",
                         peer, " for ", config_.failover.self_fence_after_seconds,
                         " s, which may have been promoted"),
            "writes resume here once the peer answers and was not promoted; otherwise write there"};
  }
  if (region.phase == RegionPhase::kFenced) {
    return {absl::StrCat("ferry: region ", config_.region, " is fenced: region ", peer,
                         " was promoted under a higher epoch (this region's is ", region.epoch,
                         "): write to region ", peer),
            "ferryctl rejoin makes this region the new primary's standby"};
  }
  if (region.phase == RegionPhase::kSwitching) {
    return {absl::StrCat("ferry: region ", config_.region, " is fenced (switchover ",
                         region.operation, " in progress): write to region ", peer),
            absl::StrCat("region ", peer, " takes writes once the switchover completes")};
  }
  return {absl::StrCat("ferry: region ", config_.region, " is fenced (",
                       std::string(RoleName(region.role)), ", ",
                       std::string(RegionPhaseName(region.phase)), ", epoch ", region.epoch,
                       "): write to region ", peer),
          absl::StrCat("region ", peer, " is the primary; only Ferry writes here")};
}

void Daemon::SettleFence() {
  if (fence_ == nullptr) return;
  absl::MutexLock io(&fence_mu_);
  // Writable exactly while primary and replicating, whether or not ferryd's capture runs: its
  // slot keeps what is written meanwhile (a takeover creates it before the flip), and a
  // stopped ferryd must not stop the primary's application. Read under fence_mu_, so that a
  // switchover that raised the fence meanwhile is seen.
  const RegionRecord region = roles_->Get();
  const bool writable = region.role == Role::kPrimary &&
                        region.phase == RegionPhase::kReplicating && !self_fenced_.load();
  const FenceNotice notice = writable ? FenceNotice{} : NoticeFor(region);
  const std::string want = writable ? "lifted" : notice.message;
  bool logged_error;
  {
    absl::MutexLock lock(&fence_state_mu_);
    if (fence_applied_ == want) return;
    logged_error = !fence_error_.empty();
  }
  absl::Status s = writable ? fence_->Lift() : fence_->Raise(notice, /*end_sessions=*/false);
  if (!s.ok()) {
    if (!logged_error) {
      spdlog::error("region {}: {} the database fence failed: {}", config_.region,
                    writable ? "lifting" : "raising", s.ToString());
    }
    absl::MutexLock lock(&fence_state_mu_);
    fence_error_ = s.ToString();
    return;
  }
  spdlog::info("region {}: database fence {}", config_.region,
               writable ? "lifted: it takes application writes" : "raised: " + notice.message);
  absl::MutexLock lock(&fence_state_mu_);
  fence_applied_ = want;
  fence_error_.clear();
}

std::string Daemon::FenceWordLocked() const {
  return fence_applied_.empty() ? "" : fence_applied_ == "lifted" ? "lifted" : "raised";
}

void Daemon::SetOperationNote(std::string note) {
  if (!note.empty()) spdlog::info("region {}: {}", config_.region, note);
  absl::MutexLock lock(&pipeline_mu_);
  operation_note_ = std::move(note);
}

absl::Status Daemon::CaptureHalted() {
  absl::Status halt;
  {
    absl::MutexLock lock(&pipeline_mu_);
    if (primary_ != nullptr) halt = primary_->capture_halt();
  }
  if (halt.ok()) return halt;
  return absl::FailedPreconditionError(absl::StrCat("region ", config_.region,
                                                    "'s capture stopped until an operator acts (",
                                                    halt.message(), ")"));
}

v1::RegionInfo Daemon::Info() {
  const RegionRecord r = roles_->Get();
  v1::RegionInfo info;
  info.set_region(config_.region);
  info.set_role(std::string(RoleName(r.role)));
  info.set_epoch(r.epoch);
  info.set_state(std::string(RegionPhaseName(r.phase)));
  info.set_operation(r.operation);
  info.set_paused(r.paused);
  auto applied = inbound_->GetCursor(kAppliedCursor);
  if (applied.ok() && applied->has_value()) info.set_inbound_applied_seq(**applied);
  info.set_inbound_next_seq(inbound_->next_seq());
  {
    absl::MutexLock fence(&fence_state_mu_);
    info.set_fenced(r.phase == RegionPhase::kFenced || FenceWordLocked() == "raised");
  }
  auto copied = inbound_->GetState(kPeerLogIdState);
  if (copied.ok() && copied->has_value()) info.set_inbound_log_id(**copied);
  absl::MutexLock lock(&pipeline_mu_);
  info.set_flipped_operation(flipped_operation_);
  if (standby_) {
    const ApplyStatus apply = standby_->apply().status();
    info.set_applied_seq(apply.applied_seq);
    info.set_stopped_tables(apply.stopped_tables.size());
    if (apply.failed) {
      info.set_apply_stopped_error(replication::PeerApplyReport::Cut(apply.last_error));
    }
    if (events_) info.set_events_applied_next_seq(events_->applied_next_seq());
  }
  return info;
}

// --- Planned switchover: the primary's side ------------------------------------------------

absl::StatusOr<v1::ReverseReply> Daemon::Reverse(absl::Duration timeout) {
  absl::StatusOr<v1::ReverseOutcome> done;
  const RegionRecord region = roles_->Get();
  if (region.phase != RegionPhase::kReplicating) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, " is ", std::string(RegionPhaseName(region.phase)),
                     region.operation.empty() ? "" : " (operation " + region.operation + ")",
                     ": reverse refused"));
  }
  if (region.role == Role::kStandby) {
    // Sent to the standby: the primary runs it (it holds the database to fence).
    done = peer_->Reverse(timeout, absl::Now() + timeout + absl::Seconds(30));
  } else {
    done = RunReverse(timeout);
  }
  if (!done.ok()) return done.status();
  v1::ReverseReply reply;
  reply.set_operation(done->operation());
  reply.set_new_primary(done->new_primary());
  reply.set_epoch(done->epoch());
  reply.set_through_seq(done->through_seq());
  *reply.mutable_steps() = done->steps();
  return reply;
}

absl::StatusOr<v1::ReverseOutcome> Daemon::ReverseForPeer(absl::Duration timeout) {
  if (roles_->role() != Role::kPrimary) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, " is not the primary either"));
  }
  return RunReverse(timeout);
}

absl::StatusOr<v1::ReverseOutcome> Daemon::RunReverse(absl::Duration timeout) {
  if (reversing_.exchange(true)) {
    return absl::FailedPreconditionError(
        absl::StrCat("a switchover is already running on region ", config_.region));
  }
  struct Done {
    std::atomic<bool>* flag;
    ~Done() { flag->store(false); }
  } done{&reversing_};
  absl::MutexLock change(&change_mu_);
  if (shut_down_) return absl::FailedPreconditionError("ferryd is shutting down");
  // gRPC deadlines and the peer's clock are real time, whatever clock the daemon runs on.
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + timeout;
  const RegionRecord r = roles_->Get();
  const std::string& peer_name = config_.peer.region.empty() ? "the peer" : config_.peer.region;
  if (r.role != Role::kPrimary || r.phase != RegionPhase::kReplicating) {
    return absl::FailedPreconditionError(absl::StrCat(
        "region ", config_.region, " is ", std::string(RoleName(r.role)), " and ",
        std::string(RegionPhaseName(r.phase)),
        (r.operation.empty() ? "" : " (operation " + r.operation + ")"), ": reverse refused"));
  }
  if (r.paused) {
    return absl::FailedPreconditionError(absl::StrCat(
        "region ", config_.region, " is paused: resume it first (a paused region ships nothing)"));
  }
  PrimaryPipeline* primary;
  std::string pipeline_error;
  {
    absl::MutexLock lock(&pipeline_mu_);
    primary = primary_.get();
    pipeline_error = pipeline_error_;
  }
  if (primary == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, "'s capture is not running: ", pipeline_error));
  }
  if (const absl::Status halted = CaptureHalted(); !halted.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(halted.message(),
                     ": a switchover cannot ship the changes it did not capture; nothing changed"));
  }
  absl::StatusOr<v1::RegionInfo> peer =
      peer_->Probe("", std::min(deadline, absl::Now() + absl::Seconds(5)));
  if (!peer.ok()) {
    return absl::UnavailableError(absl::StrCat("region ", peer_name, " cannot be reached (",
                                               peer.status().message(), "): nothing changed"));
  }
  if (!peer->apply_stopped_error().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", peer_name, "'s apply stopped for good (",
                     replication::PeerApplyReport::Cut(peer->apply_stopped_error()),
                     "): it cannot apply what a switchover ships it; nothing changed"));
  }
  if (peer->role() != "standby" || peer->state() != "replicating" || peer->epoch() != r.epoch ||
      peer->paused() || peer->stopped_tables() > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "region ", peer->region(), " is ", peer->role(), " and ", peer->state(), " under epoch ",
        peer->epoch(), " (this region: epoch ", r.epoch, ")",
        peer->paused() ? ", paused: resume it first" : "",
        peer->stopped_tables() > 0
            ? absl::StrCat(", with ", peer->stopped_tables(),
                           " stopped table(s): resume or re-snapshot them first")
            : "",
        "; a switchover needs a replicating, unpaused standby at the same epoch: nothing "
        "changed"));
  }

  const std::string operation = absl::StrFormat("%s%d-%08x", kReverseOperationPrefix, r.epoch,
                                                absl::Uniform<uint32_t>(absl::BitGen()));
  v1::ReverseOutcome outcome;
  outcome.set_operation(operation);
  auto step = [&](const std::string& what) {
    outcome.add_steps(
        absl::StrFormat("%8.3fs %s", absl::ToDoubleSeconds(absl::Now() - start), what));
    SetOperationNote(absl::StrCat(operation, ": ", what));
  };
  FERRY_RETURN_IF_ERROR(roles_->BeginSwitch(operation));
  step("switching");

  // 1. Fence: application writes are refused from here on; sessions that may have passed the
  // fence's check end; a marker after everything committed carries the sequences' values.
  uint64_t marker = 0;
  if (fence_ != nullptr) {
    absl::Status fenced;
    {
      absl::MutexLock io(&fence_mu_);
      const FenceNotice notice = NoticeFor(roles_->Get());
      fenced = fence_->Raise(notice, /*end_sessions=*/true);
      absl::MutexLock lock(&fence_state_mu_);
      fence_applied_ = fenced.ok() ? notice.message : "";
    }
    if (!fenced.ok()) return RollBackReverse(operation, Annotate(fenced, "fencing the database"));
    KillPoint("reverse.fenced");
    absl::StatusOr<uint64_t> marked;
    {
      absl::MutexLock io(&fence_mu_);
      marked = fence_->Mark(operation);
    }
    if (!marked.ok()) {
      return RollBackReverse(operation, Annotate(marked.status(), "writing the fence's marker"));
    }
    marker = *marked;
    step(absl::StrCat("fenced; marker at ", primary->source().FormatPosition(marker)));
  }

  // 2. Drain: the capture passes the marker, then stops (nothing after the marker is ever
  // shipped under this epoch: it stays in the slot, which a rollback resumes and the flip
  // drops), and the shipper gets everything captured acknowledged.
  while (primary->capture().CapturedPosition() <= marker && marker != 0) {
    if (const absl::Status halt = primary->capture_halt(); !halt.ok()) {
      return RollBackReverse(
          operation, absl::FailedPreconditionError(absl::StrCat(
                         "the capture stopped until an operator acts before it reached the "
                         "fence's marker (captured ",
                         primary->source().FormatPosition(primary->capture().CapturedPosition()),
                         "): ", halt.message())));
    }
    if (absl::Now() >= deadline) {
      return RollBackReverse(
          operation,
          absl::DeadlineExceededError(absl::StrCat(
              "the capture did not reach the fence's marker within the timeout (captured ",
              primary->source().FormatPosition(primary->capture().CapturedPosition()),
              primary->capture_error().empty() ? "" : "; " + primary->capture_error(), ")")));
    }
    absl::SleepFor(absl::Milliseconds(2));  // the capture appends on its own thread
  }
  std::unique_ptr<PrimaryPipeline> stopped;
  std::unique_ptr<EventPipeline> events;
  {
    absl::MutexLock lock(&pipeline_mu_);
    stopped = std::move(primary_);
    events = std::move(events_);
  }
  // A bucket's events stop capturing first, so that what they captured is drained too.
  if (events) events->Stop();
  const bool acknowledged = stopped->Stop(clock_->Now() + (deadline - absl::Now()));
  const uint64_t through = outbound_->next_seq();
  const uint64_t acked = stopped->shipper().status().acked_next_seq;
  stopped.reset();
  outcome.set_through_seq(through);
  if (!acknowledged || acked < through) {
    return RollBackReverse(
        operation, absl::DeadlineExceededError(
                       absl::StrCat("region ", peer_name, " did not acknowledge seq ", through - 1,
                                    " within the timeout (acknowledged below ", acked, ")")));
  }
  step(absl::StrCat("drained: ", peer_name, " holds every record below seq ", through));
  KillPoint("reverse.drained");

  // 3. The standby applies it all and flips (its durable record of the new epoch).
  v1::SwitchoverRequest request;
  request.set_epoch(r.epoch);
  request.set_operation(operation);
  request.set_new_epoch(r.epoch + 1);
  request.set_through_seq(through);
  absl::StatusOr<v1::RegionInfo> flipped = peer_->Switchover(request, deadline);
  if (!flipped.ok()) {
    const absl::StatusCode code = flipped.status().code();
    if (code == absl::StatusCode::kFailedPrecondition ||
        code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kPermissionDenied ||
        code == absl::StatusCode::kUnauthenticated) {
      return RollBackReverse(operation, flipped.status());  // refused before anything changed
    }
    // The answer was lost or late: only the peer knows whether it flipped.
    step(absl::StrCat("no answer from ", peer_name, " (", flipped.status().message(),
                      "); asking whether it flipped"));
    absl::StatusOr<bool> settled = ResolveSwitchover(absl::Now() + absl::Seconds(10));
    if (!settled.ok()) return settled.status();
    if (!*settled) {
      return absl::UnavailableError(absl::StrCat(
          "switchover ", operation, ": region ", peer_name,
          " did not answer whether it flipped; this region stays fenced until it does (status "
          "shows the operation)"));
    }
    const RegionRecord now = roles_->Get();
    if (now.role == Role::kPrimary) {
      return absl::Status(code, absl::StrCat("switchover ", operation,
                                             " rolled back: ", flipped.status().message()));
    }
    flipped = Info();  // completed: report the flip
    flipped->set_region(peer_name);
    flipped->set_epoch(now.epoch);
  } else {
    KillPoint("reverse.peer_flipped");
    step(absl::StrCat(peer_name, " flipped: primary under epoch ", flipped->epoch()));
    FERRY_RETURN_IF_ERROR(CompleteReverse(operation, flipped->epoch()));
  }
  step(absl::StrCat(config_.region, " is a fenced standby of ", peer_name));
  SetOperationNote("");
  RecordChange("switchover", operation, start, flipped->epoch(), peer_name, nullptr);
  outcome.set_new_primary(peer_name);
  outcome.set_epoch(flipped->epoch());
  return outcome;
}

absl::Status Daemon::RollBackReverse(const std::string& operation, const absl::Status& why) {
  FERRY_RETURN_IF_ERROR(roles_->RollBackSwitch(operation));
  SetOperationNote("");
  bool running;
  {
    absl::MutexLock lock(&pipeline_mu_);
    running = primary_ != nullptr;
  }
  if (!running) {
    // The drain stopped it: capture resumes from the slot, nothing after the marker lost.
    absl::Status started = StartPipeline(Role::kPrimary);
    if (!started.ok()) {
      absl::MutexLock lock(&pipeline_mu_);
      pipeline_error_ = started.ToString();
    }
  }
  SettleFence();  // lifted again
  absl::MutexLock lock(&fence_state_mu_);
  const std::string lifted =
      fence_applied_ == "lifted"
          ? "the fence is lifted"
          : "the fence could not be lifted yet (tried again each second): " + fence_error_;
  return absl::Status(why.code(),
                      absl::StrCat("switchover ", operation, " rolled back (", config_.region,
                                   " is primary as before; ", lifted, "): ", why.message()));
}

absl::Status Daemon::CompleteReverse(const std::string& operation, uint64_t peer_epoch) {
  // Whatever was captured after the marker (a superuser's write past the fence) stays in the
  // outbound log: it is never shipped under the old epoch.
  StopPipeline(clock_->Now(), /*apply_backlog=*/false);
  FERRY_RETURN_IF_ERROR(roles_->CompleteSwitch(operation, peer_epoch));
  spdlog::warn("region {}: switchover {} complete: standby under epoch {}", config_.region,
               operation, peer_epoch);
  absl::Status started = StartPipeline(Role::kStandby);  // fenced; the old slot released
  if (!started.ok()) {
    absl::MutexLock lock(&pipeline_mu_);
    pipeline_error_ = started.ToString();
  }
  return absl::OkStatus();  // a pipeline that did not start is retried each second
}

absl::StatusOr<bool> Daemon::ResolveSwitchover(absl::Time deadline) {
  const RegionRecord r = roles_->Get();
  if (r.phase != RegionPhase::kSwitching || r.role != Role::kPrimary) return true;
  absl::StatusOr<v1::RegionInfo> peer = absl::UnavailableError("not asked");
  while (true) {
    peer = peer_->Probe(r.operation, std::min(deadline, absl::Now() + absl::Seconds(2)));
    if (peer.ok() || absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(100));  // the peer restarting: ask again
  }
  if (!peer.ok()) {
    SetOperationNote(absl::StrCat(r.operation, ": waiting for ", config_.peer.region,
                                  " to say whether it flipped (", peer.status().message(), ")"));
    return false;
  }
  if (peer->role() == "primary" && peer->epoch() > r.epoch) {
    FERRY_RETURN_IF_ERROR(CompleteReverse(r.operation, peer->epoch()));
    SetOperationNote("");
    return true;
  }
  if (peer->role() == "standby" && peer->epoch() == r.epoch && peer->state() == "replicating") {
    // It did not flip, and after this answer it never will in this operation.
    absl::Status s = RollBackReverse(
        r.operation, absl::AbortedError(absl::StrCat(config_.peer.region, " did not flip")));
    spdlog::warn("region {}: {}", config_.region, s.ToString());
    return true;
  }
  SetOperationNote(absl::StrCat(r.operation, ": ", config_.peer.region, " is ", peer->role(),
                                " under epoch ", peer->epoch(), "; staying fenced"));
  return false;
}

// --- Planned switchover: the standby's side ------------------------------------------------

v1::RegionInfo Daemon::Probe(const std::string& abort_operation) {
  // A plain probe never waits for change_mu_: the peer's maintenance probes every second while
  // holding its own, and two primaries probing each other must not block each other.
  if (abort_operation.empty()) return Info();
  absl::MutexLock change(&change_mu_);  // after a Switchover call in flight
  bool flipped;
  {
    absl::MutexLock lock(&pipeline_mu_);
    flipped = flipped_operation_ == abort_operation;
  }
  if (!flipped && std::find(aborted_switchovers_.begin(), aborted_switchovers_.end(),
                            abort_operation) == aborted_switchovers_.end()) {
    spdlog::warn("region {}: switchover {} aborted by {}", config_.region, abort_operation,
                 config_.peer.region);
    aborted_switchovers_.push_back(abort_operation);
  }
  return Info();
}

absl::StatusOr<v1::RegionInfo> Daemon::AcceptSwitchover(const v1::SwitchoverRequest& request,
                                                        absl::Time deadline) {
  absl::MutexLock change(&change_mu_);
  if (shut_down_) return absl::FailedPreconditionError("ferryd is shutting down");
  const absl::Time accepted = absl::Now();
  const std::string& op = request.operation();
  const RegionRecord r = roles_->Get();
  if (std::find(aborted_switchovers_.begin(), aborted_switchovers_.end(), op) !=
      aborted_switchovers_.end()) {
    return absl::FailedPreconditionError(absl::StrCat("switchover ", op, " was aborted"));
  }
  if (r.role != Role::kStandby || r.phase != RegionPhase::kReplicating) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, " is ", std::string(RoleName(r.role)), " and ",
                     std::string(RegionPhaseName(r.phase)), ", not a replicating standby"));
  }
  if (r.epoch != request.epoch()) {
    return absl::FailedPreconditionError(absl::StrCat("region ", config_.region, " runs epoch ",
                                                      r.epoch, ", the caller ", request.epoch()));
  }
  if (r.paused) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, " is paused: resume it first"));
  }
  StandbyPipeline* standby;
  EventPipeline* events;  // the bucket's apply (null without objects:)
  {
    absl::MutexLock lock(&pipeline_mu_);
    standby = standby_.get();
    events = events_.get();
  }
  if (standby == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, "'s apply is not running"));
  }
  const uint64_t through = request.through_seq();
  SetOperationNote(absl::StrCat(op, ": applying through seq ", through - 1));
  const std::string who = absl::StrCat("region ", config_.region);
  if (!standby->apply().WaitForApplied(through - 1, deadline - absl::Now())) {
    SetOperationNote("");
    const ApplyStatus apply = standby->apply().status();
    return ApplyWaitError(apply, through - 1, who,
                          absl::StrCat(who, " applied through seq ", apply.applied_seq, " of ",
                                       through - 1, " in time"));
  }
  PausePoint("switchover.marker_applied");  // a test crashes this region's database here
  // ... and holds it durably: with asynchronous commits, a crash of this database just before
  // would have taken back commits apply counts until it notices (the old primary acknowledged
  // them; this region is about to take writes on top of them).
  SetOperationNote(absl::StrCat(op, ": waiting until this database holds through seq ", through - 1,
                                " durably"));
  if (through > 1 && !standby->apply().WaitForDurable(through - 1, deadline - absl::Now())) {
    SetOperationNote("");
    const ApplyStatus apply = standby->apply().status();
    return ApplyWaitError(
        apply, through - 1, who,
        absl::StrCat(who, "'s database holds durably through seq ", apply.durable_seq, " of ",
                     through - 1, " in time", DurableErrorSuffix(apply)));
  }
  // The bucket too: an object event received but not applied here would be lost for good once
  // this region captures its own bucket (and the backfill's reconcile would then have the old
  // primary delete the object). Changes since the drain are not captured yet: `through` counts
  // every event the old primary captured.
  if (events != nullptr) {
    SetOperationNote(absl::StrCat(op, ": applying the bucket's events through seq ", through - 1));
  }
  if (events != nullptr && !events->WaitForApplied(through, deadline - absl::Now())) {
    SetOperationNote("");
    const EventPipelineStatus e = events->status();
    return absl::DeadlineExceededError(
        absl::StrCat("region ", config_.region, " applied its bucket's events through seq ",
                     e.applied_next_seq - 1, " of ", through - 1, " in time",
                     e.last_error.empty() ? "" : absl::StrCat(" (", e.last_error, ")")));
  }
  if (!standby->apply().status().stopped_tables.empty()) {
    SetOperationNote("");
    return absl::FailedPreconditionError(absl::StrCat("region ", config_.region,
                                                      " has stopped tables: their changes are not "
                                                      "applied; resume or re-snapshot them first"));
  }
  if (inbound_->next_seq() != through) {
    SetOperationNote("");
    return absl::FailedPreconditionError(absl::StrCat(
        "region ", config_.region, " holds inbound records up to seq ", inbound_->next_seq() - 1,
        ", the primary's drain counted them up to ", through - 1));
  }
  FERRY_RETURN_IF_ERROR(roles_->BeginSwitch(op));
  KillPoint("switchover.begun");
  StopPipeline(clock_->Now(), /*apply_backlog=*/true);
  // Any failure from here to the flip: back to a replicating standby, the capture released.
  auto roll_back = [&](const absl::Status& why) -> absl::Status {
    absl::Status back = roles_->RollBackSwitch(op);
    absl::Status restarted = back.ok() ? StartPipeline(Role::kStandby) : back;
    if (!restarted.ok()) {
      absl::MutexLock lock(&pipeline_mu_);
      pipeline_error_ = restarted.ToString();
    }
    SetOperationNote("");
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, " ", why.message(), ": nothing changed"));
  };
  // Sequences a little past the marker's values: nextval() is not fenced, so a value handed out
  // on the old primary after its marker must not be handed out here again.
  if (fence_ != nullptr) {
    absl::MutexLock io(&fence_mu_);
    if (absl::Status s = fence_->AdvanceSequences(config_.failover.sequence_gap); !s.ok()) {
      return roll_back(Annotate(s, "could not advance its sequences"));
    }
  }
  // The capture starts at the database's current end, before the flip and before the fence
  // lifts, so nothing written after the flip is missed; what apply wrote is never captured.
  const absl::Status prepared = PrepareCapture(request.new_epoch());
  if (!prepared.ok()) return roll_back(Annotate(prepared, "could not prepare its capture"));
  KillPoint("switchover.capture_prepared");
  if (absl::Status flip = roles_->CompleteSwitch(op, request.new_epoch()); !flip.ok()) {
    return roll_back(Annotate(flip, "could not record the flip"));  // not written: still standby
  }
  {
    absl::MutexLock lock(&pipeline_mu_);
    flipped_operation_ = op;
  }
  spdlog::warn("region {}: switchover {}: now primary under epoch {}", config_.region, op,
               request.new_epoch());
  // Writable now, before the capture starts: the slot made before the flip keeps what is
  // written from here (the maintenance's SettleFence would lift the fence anyway).
  SettleFence();
  absl::Status started = StartPipeline(Role::kPrimary);
  if (!started.ok()) {
    absl::MutexLock lock(&pipeline_mu_);
    pipeline_error_ = started.ToString();
  }
  SetOperationNote("");
  RecordChange("switchover", op, accepted, request.new_epoch(), config_.region, nullptr);
  return Info();
}

absl::Status Daemon::PrepareCapture(uint64_t epoch) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Source> source,
                         factories_.source(config_, PipelineContext{.epoch = epoch}));
  LogCaptureTarget target(outbound_.get(), config_.region, [epoch] { return epoch; });
  FERRY_RETURN_IF_ERROR(target.Load());
  return source->PrepareTakeover(target);
}

}  // namespace ferry
