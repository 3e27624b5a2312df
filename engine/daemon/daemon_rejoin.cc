// Daemon: the failback of a former primary (ferryctl rejoin) and the operator's quarantine verbs;
// docs/operations.md, "Rejoin" and "Quarantine".
//
// On the former primary (fenced because its peer was promoted), each step durable or idempotent,
// so that a rejoin sent again after a failure or a crash goes on from where it stopped:
//   1. BeginRejoin: fenced -> rejoining (no pipeline; the database stays fenced).
//   2. The slot is drained: a marker is committed, the capture runs until it passes it, so the
//      outbound log holds every change this database committed.
//   3. Every record the new primary never applied (after the divergence point, which the new
//      primary's Probe answer gives) is sent to it change by change, with this database's row
//      for the key, and kept in its ferry.quarantine with its own row (RegionControl.Quarantine,
//      idempotent). Then those records leave the outbound log: they are never shipped.
//   4. RejoinAsStandby under the new primary's epoch; the standby pipeline starts (the slot is
//      released) and applies the new primary's stream, conflicts taking the new primary's side.
//   5. The new primary verifies both databases at one cut and repairs this one
//      (RegionControl.RejoinRepair); differing keys no quarantined change explains are reported
//      as anomalies. The recheck must find them equal.
//   6. With a bucket: the new primary compares both buckets (verify --bucket, two passes around a
//      cut) and repairs this region's. The object events this region never shipped were kept in
//      step 3 (kept_event); their versions stay in this bucket (an overwrite or a delete of a
//      versioned bucket makes a version noncurrent, never removes it).
//   7. CompleteRejoin: a replicating standby; apply's conflict policy is the configured one again.
// A region without a database (bucket-only) skips 2 and 5: nothing to drain or compare there.
// Its quarantine is the new primary's file quarantine (engine/daemon/file_quarantine.h).
#include <algorithm>
#include <set>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "consistency/row_hash.h"
#include "engine/base/json_text.h"
#include "engine/base/kill_point.h"
#include "engine/base/status_macros.h"
#include "engine/capture/log_capture_target.h"
#include "engine/daemon/daemon.h"
#include "engine/daemon/event_pipeline.h"
#include "engine/daemon/kept_changes.h"
#include "engine/daemon/standby_pipeline.h"
#include "engine/log/durable_log.h"
#include "engine/log/log_names.h"
#include "engine/region/role_controller.h"
#include "proto/change.pb.h"
#include "spdlog/spdlog.h"

namespace ferry {
namespace {

constexpr int kMaxAnomalies = 100;
// Differing keys a rejoin's repair lists (and matches with the quarantine) at most; past it the
// anomalies are counted as unknown.
constexpr uint32_t kMaxRepairKeys = 200000;

}  // namespace

absl::StatusOr<uint64_t> Daemon::DrainSlot(const std::string& operation, absl::Time deadline) {
  if (fence_ == nullptr || !factories_.source) return outbound_->next_seq();
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Source> source,
                         factories_.source(config_, PipelineContext{.epoch = roles_->epoch()}));
  RoleController* roles = roles_.get();
  LogCaptureTarget target(
      outbound_.get(), config_.region, [roles] { return roles->epoch(); }, clock_);
  FERRY_RETURN_IF_ERROR(target.Load());
  uint64_t marker;
  {
    absl::MutexLock io(&fence_mu_);
    FERRY_ASSIGN_OR_RETURN(marker, fence_->Mark(operation));
  }
  StopSignal stop;
  std::atomic<bool> ended{false};
  absl::Status ran;
  std::thread capture([&] {
    ran = source->Run(target, stop);
    ended = true;
  });
  while (target.CapturedPosition() <= marker && !ended && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));  // the capture appends on its own thread
  }
  const bool ended_by_itself = ended;  // an error, before the deadline
  stop.Stop();
  capture.join();
  if (target.CapturedPosition() <= marker) {
    const std::string short_of =
        absl::StrCat("the capture did not pass the marker at ", source->FormatPosition(marker),
                     " (captured ", source->FormatPosition(target.CapturedPosition()), ")");
    if (ended_by_itself) {
      // Its own error, not a timeout: a longer --timeout would not have helped.
      return absl::Status(ran.ok() ? absl::StatusCode::kInternal : ran.code(),
                          absl::StrCat(short_of, ": the capture ended: ",
                                       ran.ok() ? "without an error" : ran.message()));
    }
    return absl::DeadlineExceededError(absl::StrCat(
        short_of, " within the timeout", ran.ok() ? "" : absl::StrCat(": ", ran.message())));
  }
  return outbound_->next_seq();
}

absl::StatusOr<v1::QuarantineKept> Daemon::SendToQuarantine(v1::QuarantineBatch& batch,
                                                            const std::string& operation,
                                                            absl::Time deadline) {
  // This region's row for each row change (an object entry has none: its version is `after`).
  std::vector<v1::QuarantinedChange> changes;
  std::vector<int> at;
  for (int i = 0; i < batch.changes_size(); ++i) {
    if (IsObjectOp(batch.changes(i).op())) continue;
    changes.push_back(batch.changes(i));
    at.push_back(i);
  }
  if (!changes.empty()) {
    absl::StatusOr<std::vector<std::optional<std::string>>> rows;
    {
      absl::MutexLock lock(&quarantine_mu_);
      rows = quarantine_->CurrentRows(changes);
    }
    FERRY_RETURN_IF_ERROR(Annotate(rows.status(), "reading this region's rows"));
    for (size_t i = 0; i < at.size() && i < rows->size(); ++i) {
      if ((*rows)[i].has_value()) batch.mutable_changes(at[i])->set_old_primary_row(*(*rows)[i]);
    }
  }
  batch.set_operation(operation);
  return peer_->Quarantine(batch, deadline);
}

absl::StatusOr<KeptCount> Daemon::QuarantineFrom(uint64_t from, const std::string& operation,
                                                 absl::Time deadline) {
  return CollectKeptChanges(
      *outbound_, from, nullptr,
      [&](v1::QuarantineBatch& batch) -> absl::Status {
        return SendToQuarantine(batch, operation, deadline).status();
      },
      factories_.kept_event);
}

absl::StatusOr<uint64_t> Daemon::KeepAnomalies(const v1::RejoinRepairReply& compared,
                                               const std::string& operation, absl::Time deadline) {
  v1::QuarantineBatch batch;
  for (const v1::QuarantinedChange& key : compared.anomaly_keys()) {
    v1::QuarantinedChange* q = batch.add_changes();
    q->set_table_schema(key.table_schema());
    q->set_table_name(key.table_name());
    q->set_key(key.key());
    q->set_op("anomaly");
    q->set_epoch(roles_->epoch());
    // Named by the key, so that a rejoin that runs again keeps each once.
    q->set_index(
        static_cast<uint32_t>(consistency::HashBytes(absl::StrCat(key.table_schema(), ".",
                                                                  key.table_name(), " ", key.key()))
                                  .low &
                              0x7fffffff));
  }
  FERRY_ASSIGN_OR_RETURN(v1::QuarantineKept kept, SendToQuarantine(batch, operation, deadline));
  return kept.kept() + kept.present();
}

absl::StatusOr<v1::RejoinReply> Daemon::Rejoin(absl::Duration timeout) {
  absl::MutexLock change(&change_mu_);
  if (shut_down_) return absl::FailedPreconditionError("ferryd is shutting down");
  if (quarantine_ == nullptr) {
    return absl::UnimplementedError("this ferryd has no quarantine: rejoin is not supported");
  }
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + timeout;
  const RegionRecord r = roles_->Get();
  const bool as_primary = r.role == Role::kPrimary &&
                          (r.phase == RegionPhase::kFenced || r.phase == RegionPhase::kRejoining);
  const bool as_standby = r.role == Role::kStandby && r.phase == RegionPhase::kRejoining;
  if (!as_primary && !as_standby) {
    return absl::FailedPreconditionError(absl::StrCat(
        "region ", config_.region, " is ", std::string(RoleName(r.role)), " and ",
        std::string(RegionPhaseName(r.phase)),
        ": only a former primary fenced by a promote elsewhere rejoins",
        r.role == Role::kPrimary ? " (this one was never fenced: nothing to rejoin)" : ""));
  }
  const std::string& peer_name = config_.peer.region.empty() ? "the peer" : config_.peer.region;
  absl::StatusOr<v1::RegionInfo> peer =
      peer_->Probe("", std::min(deadline, start + absl::Seconds(10)));
  if (!peer.ok()) {
    return absl::UnavailableError(absl::StrCat("rejoin: ", peer_name, " does not answer (",
                                               peer.status().message(), "): nothing changed"));
  }
  if (peer->role() != "primary" || peer->state() != "replicating" || peer->epoch() < r.epoch) {
    return absl::FailedPreconditionError(absl::StrCat(
        "rejoin: ", peer_name, " is ", peer->role(), " and ", peer->state(), " under epoch ",
        peer->epoch(), " (this region's is ", r.epoch,
        "): a rejoin needs the new primary replicating under an epoch at least as high"));
  }
  const std::string operation =
      !r.operation.empty() ? r.operation
                           : absl::StrFormat("%s%d-%08x", kRejoinOperationPrefix, peer->epoch(),
                                             absl::Uniform<uint32_t>(absl::BitGen()));
  v1::RejoinReply reply;
  reply.set_operation(operation);
  reply.set_new_primary(peer->region());
  reply.set_epoch(peer->epoch());
  auto step = [&](const std::string& what) {
    reply.add_steps(absl::StrFormat("%8.3fs %s", absl::ToDoubleSeconds(absl::Now() - start), what));
    SetOperationNote(absl::StrCat(operation, ": ", what));
  };
  auto failed = [&](const absl::Status& why) {
    SetOperationNote("");
    return absl::Status(why.code(), absl::StrCat("rejoin ", operation, ": ", why.message(),
                                                 " (ferryctl rejoin again goes on from here)"));
  };

  if (as_primary) {
    absl::StatusOr<std::optional<std::string>> ours = outbound_->GetState(kLogIdState);
    if (!ours.ok()) return failed(ours.status());
    const uint64_t point = peer->inbound_applied_seq();
    if (outbound_->next_seq() > 1 && (!ours->has_value() || peer->inbound_log_id() != **ours)) {
      return failed(absl::FailedPreconditionError(
          absl::StrCat(peer_name, "'s inbound log copies log \"", peer->inbound_log_id(),
                       "\", not this region's: what it applied of this region cannot be told")));
    }
    if (absl::Status s = roles_->BeginRejoin(operation); !s.ok()) return failed(s);
    reply.set_divergence_seq(point);
    step(absl::StrCat("rejoining ", peer_name, " (epoch ", peer->epoch(), "); ", peer_name,
                      " applied this region's log through seq ", point));

    // 2. Everything this database committed is in the outbound log.
    absl::StatusOr<uint64_t> end = DrainSlot(operation, deadline);
    if (!end.ok()) return failed(Annotate(end.status(), "draining the slot"));
    step(absl::StrCat("slot drained: the outbound log ends at seq ", *end - 1));

    // 3. Kept on the new primary, then gone from the outbound log.
    // Below the outbound log's start, the peer acknowledged everything (it was trimmed only
    // then), and the promote applied everything it received.
    absl::StatusOr<KeptCount> kept =
        QuarantineFrom(std::max(point + 1, outbound_->first_seq()), operation, deadline);
    if (!kept.ok()) return failed(Annotate(kept.status(), "keeping the changes in the quarantine"));
    reply.set_quarantined(kept->changes);
    reply.set_transactions(kept->transactions);
    reply.set_objects_quarantined(kept->objects);
    step(absl::StrCat(
        kept->changes - kept->objects, " change(s) of ", kept->transactions, " transaction(s) and ",
        kept->objects, " object event(s) kept in ", peer_name, "'s quarantine",
        kept->objects > 0 ? " (the objects' versions stay in this region's bucket)" : "",
        kept->skipped > 0 ? absl::StrCat("; ", kept->skipped, " non-row message(s) not kept") : "",
        kept->partial > 0
            ? absl::StrCat("; ", kept->partial,
                           " change(s) of transaction copies without their end not kept")
            : "",
        kept->other_records > 0
            ? absl::StrCat("; ", kept->other_records,
                           " other event record(s) (heartbeats, reconciles, dead letters) not "
                           "kept")
            : "",
        kept->snapshot_records > 0
            ? absl::StrCat("; ", kept->snapshot_records,
                           " record(s) of a table copy's rows not kept (the comparison keeps the "
                           "rows the peer lacks as anomalies)")
            : ""));
    KillPoint("rejoin.quarantined");
    const uint64_t keep_below = std::max(point + 1, peer->inbound_next_seq());
    if (absl::Status s = outbound_->DropFrom(keep_below); !s.ok()) {
      return failed(Annotate(s, "dropping the quarantined records from the outbound log"));
    }
    KillPoint("rejoin.dropped");

    // 4. The new primary's standby.
    if (absl::Status s = roles_->RejoinAsStandby(operation, peer->epoch()); !s.ok()) {
      return failed(s);
    }
  }
  if (roles_->paused()) {
    // A pause held this region's shipping as primary; as a rejoining standby it must apply.
    if (absl::Status s = roles_->SetPaused(false); !s.ok()) return failed(s);
    {
      absl::MutexLock lock(&pipeline_mu_);
      if (standby_) standby_->SetPaused(false);
      if (events_) events_->SetPaused(false);
    }
    step("the pause lifted: a rejoining standby applies");
  }
  bool running;
  {
    absl::MutexLock lock(&pipeline_mu_);
    running = standby_ != nullptr;
  }
  if (!running) {
    if (absl::Status s = StartPipeline(Role::kStandby); !s.ok()) {
      return failed(Annotate(s, "starting the standby pipeline"));
    }
  }
  step(absl::StrCat("standby of ", peer_name, " under epoch ", roles_->epoch(),
                    ", applying its stream"));
  KillPoint("rejoin.standby");

  // 5. Compared at one cut first: a differing key no kept change explains is an anomaly, and
  // this region's row for it is kept too (op "anomaly") before the repair overwrites it.
  // A region without a database (no verifier here, a bucket): no rows to compare.
  const bool bucket_only = !factories_.verify_peer && factories_.event_sink;
  absl::StatusOr<v1::RejoinRepairReply> compared =
      bucket_only ? v1::RejoinRepairReply()
                  : peer_->RejoinRepair(operation, /*repair=*/false, deadline);
  if (!compared.ok()) return failed(Annotate(compared.status(), "comparing at one cut"));
  if (compared->anomaly_keys_size() > 0) {
    absl::StatusOr<uint64_t> kept = KeepAnomalies(*compared, operation, deadline);
    if (!kept.ok()) return failed(Annotate(kept.status(), "keeping the anomalies"));
    step(absl::StrCat(*kept, " anomal", *kept == 1 ? "y" : "ies",
                      " (differing rows no kept change explains) kept with this region's row"));
  }

  // 6. Repaired at one cut (equal at the comparison's cut already: nothing to repair, and
  // apply keeps them equal from there).
  absl::StatusOr<v1::RejoinRepairReply> repaired = *compared;
  if (compared->differences() > 0) {
    repaired = peer_->RejoinRepair(operation, /*repair=*/true, deadline);
  } else {
    repaired->set_equal_after(true);
  }
  if (!repaired.ok()) return failed(Annotate(repaired.status(), "repairing at one cut"));
  // The differences and anomalies as the comparison before the repair found them.
  reply.set_differences(compared->differences());
  reply.set_repaired_rows(repaired->repaired_rows());
  *reply.mutable_anomalies() = compared->anomalies();
  reply.set_anomaly_count(compared->anomaly_count());
  if (!bucket_only) {
    step(absl::StrCat(peer_name, " verified (", repaired->verify_operation(),
                      "): ", compared->differences(), " differing key(s), ",
                      compared->anomaly_count(), " not explained by a kept change; ",
                      repaired->repaired_rows(), " row(s) repaired here"));
  }
  if (compared->anomaly_count() > 0) {
    spdlog::warn(
        "region {}: rejoin {}: {} differing key(s) no quarantined change explains (kept "
        "as anomalies): {}",
        config_.region, operation, compared->anomaly_count(),
        absl::StrJoin(compared->anomalies(), "; "));
  }
  if (compared->truncated()) {
    step(absl::StrCat("more keys differed than the ", kMaxRepairKeys,
                      " matched with the quarantine: anomalies among the rest are not known"));
  }
  if (!repaired->equal_after()) {
    return failed(absl::AbortedError(
        absl::StrCat("the regions still differ after the repair (apply changed the keys "
                     "meanwhile, or a repair was skipped)")));
  }

  // 6. The bucket, compared and repaired (this region's objects never shipped are kept above,
  // and their versions stay in its bucket).
  if (factories_.event_sink) {
    absl::StatusOr<v1::RejoinRepairReply> bucket =
        peer_->RejoinRepair(operation, /*repair=*/true, deadline, /*bucket=*/true);
    if (!bucket.ok()) return failed(Annotate(bucket.status(), "repairing the bucket"));
    reply.set_bucket_differences(bucket->differences());
    reply.set_bucket_repaired(bucket->repaired_rows());
    step(absl::StrCat(peer_name, " verified the buckets (", bucket->verify_operation(),
                      "): ", bucket->differences(), " differing key(s), ", bucket->repaired_rows(),
                      " repaired in this region's bucket (earlier versions kept)"));
    if (!bucket->equal_after()) {
      return failed(absl::AbortedError("the buckets still differ after the repair"));
    }
  }
  KillPoint("rejoin.repaired");

  // 7. A replicating standby, apply's conflict policy the configured one again.
  StopPipeline(clock_->Now(), /*apply_backlog=*/false);
  if (absl::Status s = roles_->CompleteRejoin(operation); !s.ok()) {
    if (absl::Status started = StartPipeline(Role::kStandby); !started.ok()) {
      absl::MutexLock lock(&pipeline_mu_);
      pipeline_error_ = started.ToString();
    }
    return failed(s);
  }
  if (absl::Status s = StartPipeline(Role::kStandby); !s.ok()) {
    absl::MutexLock lock(&pipeline_mu_);
    pipeline_error_ = s.ToString();
  }
  step(absl::StrCat("rejoined: a replicating standby of ", peer_name));
  spdlog::warn("region {}: rejoin {} complete: standby of {} under epoch {}", config_.region,
               operation, peer_name, roles_->epoch());
  SetOperationNote("");
  return reply;
}

// --- The new primary's side ----------------------------------------------------------------

absl::StatusOr<v1::QuarantineKept> Daemon::KeepQuarantined(const v1::QuarantineBatch& batch) {
  if (quarantine_ == nullptr) return absl::UnimplementedError("this ferryd has no quarantine");
  const RegionRecord r = roles_->Get();
  if (r.role != Role::kPrimary || r.phase != RegionPhase::kReplicating) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, " is not the replicating primary"));
  }
  std::vector<v1::QuarantinedChange> changes(batch.changes().begin(), batch.changes().end());
  absl::StatusOr<QuarantineStore::Kept> kept;
  {
    absl::MutexLock lock(&quarantine_mu_);
    kept = quarantine_->Keep(batch.region(), changes);
  }
  if (!kept.ok()) return kept.status();
  spdlog::warn(
      "region {}: rejoin {}: kept {} change(s) of region {} in the quarantine ({} kept "
      "before)",
      config_.region, batch.operation(), kept->kept, batch.region(), kept->present);
  v1::QuarantineKept reply;
  reply.set_kept(kept->kept);
  reply.set_present(kept->present);
  return reply;
}

absl::StatusOr<v1::RejoinRepairReply> Daemon::RepairForRejoin(const std::string& operation,
                                                              const std::string& region,
                                                              bool repair, bool bucket,
                                                              absl::Duration timeout) {
  v1::VerifyRequest request;
  request.set_bucket(bucket);
  request.set_repair(repair);
  request.set_max_keys(kMaxRepairKeys);
  request.set_timeout_ms(static_cast<uint32_t>(
      std::min<int64_t>(absl::ToInt64Milliseconds(timeout), int64_t{UINT32_MAX})));
  v1::RejoinRepairReply reply;
  std::vector<v1::QuarantinedChange> keys;  // every differing key, to match with the quarantine
  bool rechecked = false, recheck_equal = false;
  absl::Status verified = Verify(
      request,
      [&](const v1::VerifyEvent& event) {
        if (reply.verify_operation().empty()) reply.set_verify_operation(event.operation());
        if (event.has_table()) {
          const v1::VerifyTableResult& t = event.table();
          reply.set_repaired_rows(reply.repaired_rows() + t.repaired_rows());
          if (bucket) return;  // object keys: nothing of the quarantine explains them
          const size_t dot = t.table().find('.');
          for (const auto* list : {&t.missing(), &t.extra(), &t.changed()}) {
            for (const v1::VerifyKey& key : *list) {
              std::vector<std::string> fields;
              for (int c = 0; c < key.values_size() && c < t.key_columns_size(); ++c) {
                fields.push_back(
                    absl::StrCat(JsonString(t.key_columns(c)), ": ", JsonString(key.values(c))));
              }
              v1::QuarantinedChange q;
              q.set_table_schema(t.table().substr(0, dot));
              q.set_table_name(dot == std::string::npos ? "" : t.table().substr(dot + 1));
              q.set_key(absl::StrCat("{", absl::StrJoin(fields, ", "), "}"));
              keys.push_back(std::move(q));
            }
          }
        }
        if (event.has_summary()) {
          reply.set_differences(event.summary().differences());
          reply.set_truncated(event.summary().truncated());
          rechecked = event.summary().rechecked();
          recheck_equal = event.summary().recheck_equal();
        }
      },
      [] { return false; });
  if (!verified.ok()) return verified;
  reply.set_equal_after(reply.differences() == 0 || (rechecked && recheck_equal));
  if (!keys.empty()) {
    absl::StatusOr<std::vector<bool>> explained;
    {
      absl::MutexLock lock(&quarantine_mu_);
      explained = quarantine_->Explains(region, keys);
    }
    if (!explained.ok())
      return Annotate(explained.status(), "matching the keys with the quarantine");
    for (size_t i = 0; i < keys.size(); ++i) {
      if ((*explained)[i]) continue;
      *reply.add_anomaly_keys() = keys[i];
      reply.set_anomaly_count(reply.anomaly_count() + 1);
      if (reply.anomalies_size() < kMaxAnomalies) {
        reply.add_anomalies(
            absl::StrCat(keys[i].table_schema(), ".", keys[i].table_name(), " ", keys[i].key()));
      }
    }
  }
  spdlog::warn(
      "region {}: rejoin {}: verified and repaired region {}: {} difference(s), {} "
      "anomalies",
      config_.region, operation, config_.peer.region, reply.differences(), reply.anomaly_count());
  return reply;
}

absl::StatusOr<v1::QuarantineReply> Daemon::Quarantine(const v1::QuarantineRequest& request) {
  if (quarantine_ == nullptr) return absl::UnimplementedError("this ferryd has no quarantine");
  const bool decision = request.verb() == "reapply" || request.verb() == "discard";
  const RegionRecord r = roles_->Get();
  if (decision && (r.role != Role::kPrimary || r.phase != RegionPhase::kReplicating)) {
    return absl::FailedPreconditionError(
        absl::StrCat("quarantine ", request.verb(), ": region ", config_.region, " is ",
                     std::string(RoleName(r.role)), " and ", std::string(RegionPhaseName(r.phase)),
                     ": decisions are taken on the replicating primary (its writes replicate)"));
  }
  absl::MutexLock lock(&quarantine_mu_);
  return quarantine_->Decide(request);
}

}  // namespace ferry
