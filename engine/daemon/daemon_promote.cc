// Daemon: the unplanned failover (ferryctl promote) and a primary's check of its peer's epoch
// (self-fencing); docs/operations.md, "Promote".
#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/base/kill_point.h"
#include "engine/base/status_macros.h"
#include "engine/capture/log_capture_target.h"
#include "engine/daemon/daemon.h"
#include "engine/daemon/event_pipeline.h"
#include "engine/daemon/kept_changes.h"
#include "engine/daemon/primary_pipeline.h"
#include "engine/daemon/standby_pipeline.h"
#include "engine/daemon/status_report.h"
#include "engine/log/durable_log.h"
#include "engine/log/log_names.h"
#include "engine/region/role_controller.h"
#include "spdlog/spdlog.h"

namespace ferry {
namespace {

// A promote refused before anything changed: the message says so, and that promoting again
// goes on when the wait ran out (not when apply stopped for good, which a retry cannot mend).
absl::Status NothingChanged(const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(s.message(), ": nothing changed",
                                             s.code() == absl::StatusCode::kDeadlineExceeded
                                                 ? " (promote again to go on)"
                                                 : ""));
}

}  // namespace

// --- Unplanned failover --------------------------------------------------------------------

void Daemon::NoteDivergence(const v1::RegionInfo& peer) {
  absl::StatusOr<std::optional<std::string>> ours = outbound_->GetState(kLogIdState);
  if (!ours.ok() || !ours->has_value() || peer.inbound_log_id() != **ours) return;
  v1::Divergence d;
  d.set_known(true);
  d.set_new_primary(peer.region());
  d.set_point_seq(peer.inbound_applied_seq());
  const uint64_t next = outbound_->next_seq();
  if (next > peer.inbound_applied_seq() + 1) {
    d.set_records_beyond(next - 1 - peer.inbound_applied_seq());
    absl::StatusOr<uint64_t> bytes = outbound_->PayloadBytesFrom(peer.inbound_applied_seq() + 1);
    d.set_bytes_beyond(bytes.ok() ? *bytes : 0);
  }
  absl::MutexLock lock(&pipeline_mu_);
  divergence_ = d;
}

void Daemon::CheckPeerEpoch(absl::Time deadline) {
  const RegionRecord r = roles_->Get();
  if (r.role == Role::kPrimary && r.phase == RegionPhase::kFenced) {
    // Fenced: keep the divergence from the new primary's answer current.
    absl::StatusOr<v1::RegionInfo> peer = peer_->Probe("", deadline);
    if (peer.ok() && peer->epoch() >= r.epoch) NoteDivergence(*peer);
    return;
  }
  if (r.role != Role::kPrimary || r.phase != RegionPhase::kReplicating) return;
  absl::StatusOr<v1::RegionInfo> peer = peer_->Probe("", deadline);
  const absl::Time now = clock_->Now();
  if (peer.ok()) {
    peer_answered_ = now;
    if (peer->epoch() > r.epoch) {
      // The database first: even if the higher epoch cannot be made durable now, this region
      // must not take another write.
      self_fenced_ = true;
      SettleFence();
      absl::StatusOr<bool> fenced = roles_->AdoptEpoch(peer->epoch());
      if (!fenced.ok() || !*fenced) return;
      spdlog::error(
          "region {}: region {} is {} under epoch {} (this region's was {}): fenced; this "
          "region ships no more and its database refuses writes (ferryctl rejoin)",
          config_.region, peer->region(), peer->role(), peer->epoch(), r.epoch);
      StopPipeline(now, /*apply_backlog=*/false);
      self_fenced_ = false;
      SettleFence();
      NoteDivergence(*peer);
      return;
    }
    if (self_fenced_.exchange(false)) {
      spdlog::warn("region {}: region {} answers again and was not promoted: fence lifted",
                   config_.region, peer->region());
      SettleFence();
    }
    return;
  }
  const int64_t after = config_.failover.self_fence_after_seconds;
  if (after <= 0) return;
  if (peer_answered_ == absl::InfinitePast()) {
    // Never heard from the peer since this start: a restart must not reopen the window the
    // self-fence closes (the peer may have been promoted while this region was cut off).
    peer_answered_ = now - absl::Seconds(after);
  }
  if (now - peer_answered_ >= absl::Seconds(after) && !self_fenced_.exchange(true)) {
    spdlog::error(
        "region {}: no answer from region {} for {} s (failover.self_fence_after_seconds): "
        "fencing this database, since the peer may have been promoted",
        config_.region, config_.peer.region, after);
    SettleFence();
  }
}

absl::StatusOr<uint64_t> Daemon::KeepStoppedTables(const StoppedTables& stopped,
                                                   const std::string& source_region) {
  uint64_t from = UINT64_MAX;
  for (const auto& [table, stop] : stopped) from = std::min(from, stop.seq);
  // A table's changes from its own stop on.
  auto wanted = [&](const v1::Relation& rel, uint64_t seq) {
    auto it = stopped.find(TableName{rel.schema(), rel.name()});
    return it != stopped.end() && seq >= it->second.seq;
  };
  uint64_t kept = 0;
  absl::StatusOr<KeptCount> collected = CollectKeptChanges(
      *inbound_, std::max<uint64_t>(from, inbound_->first_seq()), wanted,
      [&](v1::QuarantineBatch& batch) -> absl::Status {
        std::vector<v1::QuarantinedChange> changes(batch.changes().begin(), batch.changes().end());
        absl::MutexLock lock(&quarantine_mu_);
        absl::StatusOr<QuarantineStore::Kept> done =
            quarantine_->Keep(source_region.empty() ? "peer" : source_region, changes);
        if (done.ok()) kept += done->kept + done->present;
        return done.status();
      });
  if (!collected.ok()) return collected.status();
  return kept;
}

absl::StatusOr<v1::PromoteReply> Daemon::Promote(bool force, absl::Duration timeout) {
  absl::MutexLock change(&change_mu_);
  if (shut_down_) return absl::FailedPreconditionError("ferryd is shutting down");
  const absl::Time start = absl::Now();
  const RegionRecord r = roles_->Get();
  if (r.role != Role::kStandby || r.phase != RegionPhase::kReplicating) {
    return absl::FailedPreconditionError(absl::StrCat(
        "region ", config_.region, " is ", std::string(RoleName(r.role)), " and ",
        std::string(RegionPhaseName(r.phase)), ": only a replicating standby is promoted"));
  }
  const std::string& peer_name = config_.peer.region.empty() ? "the peer" : config_.peer.region;
  StandbyPipeline* standby;
  {
    absl::MutexLock lock(&pipeline_mu_);
    standby = standby_.get();
  }
  if (standby == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, "'s apply is not running"));
  }
  if (!force) {
    // The stream is the other direction's evidence: a primary still shipping here is alive
    // even if this region cannot reach its listener.
    const replication::ReceiverStatus received = standby->receiver().status();
    if (received.connected && absl::Now() - received.last_frame_at < absl::Seconds(10)) {
      return absl::FailedPreconditionError(
          absl::StrCat("region ", peer_name, " is shipping to this region (last frame ",
                       absl::FormatDuration(absl::Now() - received.last_frame_at),
                       " ago): it is alive; use ferryctl reverse, or promote --force"));
    }
    absl::StatusOr<v1::RegionInfo> peer =
        peer_->Probe("", absl::Now() + absl::Seconds(2), /*wait_for_ready=*/false);
    if (peer.ok() && peer->role() == "primary" && peer->state() == "replicating" &&
        peer->epoch() >= r.epoch) {
      return absl::FailedPreconditionError(absl::StrCat(
          "region ", peer_name, " answers as the replicating primary under epoch ", peer->epoch(),
          ": promoting this region now would make two primaries. For a planned change use "
          "ferryctl reverse; if ",
          peer_name,
          " is unusable although it answers, promote --force (it fences itself when "
          "it learns of the new epoch)"));
    }
  }
  const std::string operation =
      absl::StrFormat("promote-%d-%08x", r.epoch + 1, absl::Uniform<uint32_t>(absl::BitGen()));
  v1::PromoteReply reply;
  reply.set_operation(operation);
  auto step = [&](const std::string& what) {
    reply.add_steps(absl::StrFormat("%8.3fs %s", absl::ToDoubleSeconds(absl::Now() - start), what));
    SetOperationNote(absl::StrCat(operation, ": ", what));
  };

  // The loss bound, from the lost primary's last report on the stream.
  const uint64_t next = inbound_->next_seq();
  *reply.mutable_loss() = LossBoundOf(standby->receiver().status(), next, absl::Now());

  // 1. Everything received is applied (a paused apply too: a promote needs it).
  step(absl::StrCat("applying what was received (through seq ", next - 1, ")"));
  if (r.paused) standby->SetPaused(false);
  const absl::Time apply_deadline = absl::Now() + timeout;  // both waits below together
  const std::string who = absl::StrCat("region ", config_.region);
  if (next > 1 && !standby->apply().WaitForApplied(next - 1, timeout)) {
    if (r.paused) standby->SetPaused(true);
    SetOperationNote("");
    const ApplyStatus apply = standby->apply().status();
    return NothingChanged(
        ApplyWaitError(apply, next - 1, who,
                       absl::StrCat(who, " applied through seq ", apply.applied_seq, " of ",
                                    next - 1, " within the timeout")));
  }
  // ... and durable in the database: with asynchronous commits, a crash of the database just
  // before would have taken back commits that apply counts until it notices.
  if (next > 1 && !standby->apply().WaitForDurable(
                      next - 1, std::max(absl::ZeroDuration(), apply_deadline - absl::Now()))) {
    if (r.paused) standby->SetPaused(true);
    SetOperationNote("");
    const ApplyStatus apply = standby->apply().status();
    return NothingChanged(ApplyWaitError(
        apply, next - 1, who,
        absl::StrCat(who, "'s database holds durably through seq ", apply.durable_seq, " of ",
                     next - 1, " within the timeout", DurableErrorSuffix(apply))));
  }
  const ApplyStatus applied = standby->apply().status();
  for (const auto& [table, stop] : applied.stopped_tables) {
    reply.add_stopped_tables(
        absl::StrCat(table.ToString(), " (stopped at seq ", stop.seq, ": ", stop.reason, ")"));
    const uint64_t kept = next > stop.seq ? next - stop.seq : 0;
    reply.set_kept_records(std::max(reply.kept_records(), kept));
  }
  // The region that shipped here (a rejoin and the quarantine name it), and how far its log was
  // applied, made durable now: the divergence point the old primary's rejoin reads.
  const std::string lost_region =
      !config_.peer.region.empty() ? config_.peer.region : standby->receiver().status().peer_region;
  if (absl::Status s = inbound_->SetCursor(kAppliedCursor, applied.applied_seq); !s.ok()) {
    spdlog::warn("region {}: promote: recording the applied position: {}", config_.region,
                 s.ToString());
  }
  // The bucket: its events received are applied while the lost primary's bucket answers (it
  // may, when only its ferryd is lost), for at most 10 s of the timeout; a promote never waits
  // for a bucket of a lost region. What is left is reported: those objects are not in this
  // region's bucket, and once it captures its own bucket they are lost to it unless the old
  // bucket comes back (docs/objects.md, "Where bodies travel").
  EventPipeline* events;
  {
    absl::MutexLock lock(&pipeline_mu_);
    events = events_.get();
  }
  if (events != nullptr) {
    step(absl::StrCat("applying the bucket's events received (through seq ", next - 1, ")"));
    if (r.paused) events->SetPaused(false);
    if (!events->WaitForApplied(next, std::min(timeout, absl::Seconds(10)))) {
      // Count all of it (CountPending reads a bounded number of records a call).
      for (int i = 0; i < 1000 && events->status().pending_scanned_seq < next; ++i) {
        events->CountPending();
      }
      const EventPipelineStatus e = events->status();
      v1::ObjectsNotApplied* lost = reply.mutable_objects_not_applied();
      lost->set_objects(e.objects_pending);
      lost->set_bytes(e.bytes_pending);
      lost->set_records(next > e.applied_next_seq ? next - e.applied_next_seq : 0);
      lost->set_last_error(e.last_error);
      step(absl::StrCat("the bucket's events could not all be applied: ", e.objects_pending,
                        " object(s), ", e.bytes_pending, " bytes not copied (", e.last_error, ")"));
    }
  }
  StopPipeline(clock_->Now(), /*apply_backlog=*/false);
  step("applied; the standby pipeline stopped");

  // 2. Sequences past what the lost primary may have handed out; the capture's slot. Both are
  // redone by a promote that starts again after a crash before the epoch is raised.
  auto undo = [&](const absl::Status& why) -> absl::Status {
    absl::Status restarted = StartPipeline(Role::kStandby);
    if (!restarted.ok()) {
      absl::MutexLock lock(&pipeline_mu_);
      pipeline_error_ = restarted.ToString();
    }
    SetOperationNote("");
    return absl::Status(why.code(), absl::StrCat("promote ", operation, ": ", why.message(),
                                                 ": nothing changed, still a standby"));
  };
  if (fence_ != nullptr) {
    absl::Status advanced;
    {
      absl::MutexLock io(&fence_mu_);
      advanced = fence_->AdvanceSequences(config_.failover.sequence_gap);
    }
    if (!advanced.ok()) return undo(advanced);
    step(absl::StrCat("sequences advanced by ", config_.failover.sequence_gap));
  }
  // Read after the stop: the receiver may have adopted a higher epoch meanwhile.
  const uint64_t new_epoch = roles_->epoch() + 1;
  if (absl::Status prepared = PrepareCapture(new_epoch); !prepared.ok()) {
    return undo(Annotate(prepared, "preparing the capture"));
  }
  step("capture prepared");

  // 3. The epoch, durably; then primary.
  if (absl::Status begun = roles_->BeginPromote(operation, new_epoch); !begun.ok()) {
    return undo(Annotate(begun, "raising the epoch"));  // not written: still a standby
  }
  if (absl::Status completed = roles_->CompletePromote(operation); !completed.ok()) {
    // The raised epoch is durable: a restart completes the promote (RecoverAfterRestart).
    SetOperationNote(absl::StrCat(operation, ": ", completed.message(), "; restart ferryd"));
    return Annotate(completed, absl::StrCat("promote ", operation, " raised the epoch to ",
                                            new_epoch, "; restart ferryd to complete it"));
  }
  reply.set_epoch(new_epoch);
  spdlog::warn("region {}: promote {}: primary under epoch {}", config_.region, operation,
               new_epoch);
  SettleFence();  // writable before the capture starts: the slot keeps what is written
  absl::Status started = StartPipeline(Role::kPrimary);
  if (!started.ok()) {
    absl::MutexLock lock(&pipeline_mu_);
    pipeline_error_ = started.ToString();
  }
  step(absl::StrCat("primary under epoch ", new_epoch, started.ok() ? "" : " (capture retrying)"));

  // 4. The changes received for tables stopped here never reached this database: kept in the
  // quarantine for an operator to reapply or discard. Written now that the capture's slot
  // exists, so that they replicate like any write of this primary.
  if (!applied.stopped_tables.empty() && quarantine_ != nullptr) {
    absl::StatusOr<uint64_t> kept = KeepStoppedTables(applied.stopped_tables, lost_region);
    step(kept.ok()
             ? absl::StrCat(*kept, " change(s) of the stopped table(s) kept in ferry.quarantine")
             : absl::StrCat("the stopped tables' changes could not be kept (",
                            kept.status().message(), "); they stay in the inbound log"));
    if (kept.ok()) reply.set_quarantined(*kept);
  }
  SetOperationNote("");
  RecordChange("promote", operation, start, new_epoch, config_.region, &reply.loss());
  return reply;
}

}  // namespace ferry
