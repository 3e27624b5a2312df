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
//   6. CompleteRejoin: a replicating standby; apply's conflict policy is the configured one again.
#include <algorithm>
#include <set>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/base/json_text.h"
#include "engine/base/kill_point.h"
#include "engine/base/status_macros.h"
#include "engine/capture/log_capture_target.h"
#include "engine/daemon/daemon.h"
#include "engine/daemon/event_pipeline.h"
#include "engine/daemon/standby_pipeline.h"
#include "engine/log/durable_log.h"
#include "engine/log/log_names.h"
#include "engine/region/role_controller.h"
#include "proto/change.pb.h"
#include "spdlog/spdlog.h"

namespace ferry {
namespace {

constexpr size_t kBatchChanges = 500;
constexpr size_t kBatchBytes = 1 << 20;
constexpr int kMaxAnomalies = 100;

// {"column": "value as text" | null, ...} of `tuple`: the key's columns only, or every column
// the tuple carries (an unchanged TOAST value is left out: the row keeps it).
std::string RowJson(const v1::Relation& rel, const v1::Tuple& tuple, bool key_only) {
  std::vector<std::string> fields;
  for (int i = 0; i < rel.columns_size() && i < tuple.values_size(); ++i) {
    if (key_only && !rel.columns(i).part_of_key()) continue;
    const v1::Value& v = tuple.values(i);
    if (v.kind_case() == v1::Value::kUnchangedToast) continue;
    const std::string value =
        v.kind_case() == v1::Value::kText ? JsonString(v.text())
        : v.kind_case() == v1::Value::kBinary
            ? JsonString(absl::StrCat("\\x", absl::BytesToHexString(v.binary())))
            : std::string("null");
    fields.push_back(absl::StrCat(JsonString(rel.columns(i).name()), ": ", value));
  }
  if (fields.empty()) return "";
  return absl::StrCat("{", absl::StrJoin(fields, ", "), "}");
}

const char* OpName(v1::Operation op) {
  switch (op) {
    case v1::INSERT:
      return "insert";
    case v1::UPDATE:
      return "update";
    case v1::DELETE:
      return "delete";
    case v1::TRUNCATE:
      return "truncate";
    default:
      return nullptr;
  }
}

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
  stop.Stop();
  capture.join();
  if (target.CapturedPosition() <= marker) {
    return absl::DeadlineExceededError(
        absl::StrCat("draining the slot: the capture did not pass the marker at ",
                     source->FormatPosition(marker), " (captured ",
                     source->FormatPosition(target.CapturedPosition()), ")",
                     ran.ok() ? "" : absl::StrCat(": ", ran.message())));
  }
  return outbound_->next_seq();
}

absl::StatusOr<Daemon::Quarantined> Daemon::QuarantineFrom(uint64_t from,
                                                           const std::string& operation,
                                                           absl::Time deadline) {
  Quarantined done;
  v1::QuarantineBatch batch;
  batch.set_operation(operation);
  size_t batch_bytes = 0;
  std::set<std::pair<uint32_t, uint64_t>> transactions;
  auto flush = [&]() -> absl::Status {
    if (batch.changes_size() == 0) return absl::OkStatus();
    std::vector<v1::QuarantinedChange> changes(batch.changes().begin(), batch.changes().end());
    absl::StatusOr<std::vector<std::optional<std::string>>> rows;
    {
      absl::MutexLock lock(&quarantine_mu_);
      rows = quarantine_->CurrentRows(changes);
    }
    FERRY_RETURN_IF_ERROR(Annotate(rows.status(), "reading this region's rows"));
    for (int i = 0; i < batch.changes_size(); ++i) {
      if ((*rows)[i].has_value()) batch.mutable_changes(i)->set_old_primary_row(*(*rows)[i]);
    }
    FERRY_ASSIGN_OR_RETURN(v1::QuarantineKept kept, peer_->Quarantine(batch, deadline));
    done.changes += kept.kept() + kept.present();
    batch.clear_changes();
    batch_bytes = 0;
    return absl::OkStatus();
  };
  for (uint64_t seq = from; seq < outbound_->next_seq();) {
    FERRY_ASSIGN_OR_RETURN(std::vector<LogRecord> records, outbound_->Read(seq, 256, 8 << 20));
    if (records.empty()) break;
    for (const LogRecord& record : records) {
      seq = record.seq + 1;
      if (record.kind != RecordKind::kTransaction) continue;
      v1::Transaction txn;
      if (!txn.ParseFromString(record.payload)) {
        return absl::DataLossError(
            absl::StrCat("outbound record ", record.seq, " is not a transaction"));
      }
      uint32_t index = 0;  // the kept change's place in its record
      absl::flat_hash_map<uint32_t, const v1::Relation*> relations;
      for (const v1::Relation& r : txn.relations()) relations[r.relation_id()] = &r;
      for (int i = 0; i < txn.changes_size(); ++i) {
        const v1::Change& change = txn.changes(i);
        const char* op = OpName(change.op());
        auto rel = relations.find(change.relation_id());
        if (op == nullptr || rel == relations.end()) {
          ++done.skipped;  // a message (a schema change, sequences): not a row
          continue;
        }
        std::vector<uint32_t> targets = {change.relation_id()};
        if (change.op() == v1::TRUNCATE) {
          targets.assign(change.truncate_relation_ids().begin(),
                         change.truncate_relation_ids().end());
        }
        for (uint32_t id : targets) {
          auto target = relations.find(id);
          if (target == relations.end()) continue;
          v1::QuarantinedChange* q = batch.add_changes();
          q->set_epoch(txn.epoch());
          q->set_log_seq(record.seq);
          q->set_index(index++);
          q->set_source_xid(txn.source_xid());
          q->set_commit_position(txn.source_position());
          q->set_commit_time_us(txn.commit_time_us());
          q->set_table_schema(target->second->schema());
          q->set_table_name(target->second->name());
          q->set_op(op);
          if (change.op() != v1::TRUNCATE) {
            const bool old_key = change.old_tuple().values_size() > 0;
            q->set_key(RowJson(*target->second, old_key ? change.old_tuple() : change.new_tuple(),
                               /*key_only=*/true));
            if (change.op() != v1::DELETE) {
              q->set_after(RowJson(*target->second, change.new_tuple(), /*key_only=*/false));
            }
          }
          batch_bytes += q->ByteSizeLong();
          transactions.insert({txn.source_xid(), txn.source_position()});
        }
        if (static_cast<size_t>(batch.changes_size()) >= kBatchChanges ||
            batch_bytes >= kBatchBytes) {
          FERRY_RETURN_IF_ERROR(flush());
        }
      }
    }
  }
  FERRY_RETURN_IF_ERROR(flush());
  done.transactions = transactions.size();
  return done;
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
    absl::StatusOr<Quarantined> kept = QuarantineFrom(point + 1, operation, deadline);
    if (!kept.ok()) return failed(Annotate(kept.status(), "keeping the changes in the quarantine"));
    reply.set_quarantined(kept->changes);
    reply.set_transactions(kept->transactions);
    step(absl::StrCat(kept->changes, " change(s) of ", kept->transactions,
                      " transaction(s) kept in ", peer_name, "'s ferry.quarantine",
                      kept->skipped > 0
                          ? absl::StrCat(" (", kept->skipped, " non-row message(s) not kept)")
                          : ""));
    KillPoint("rejoin.quarantined");
    const uint64_t keep_below = std::max(point + 1, peer->inbound_next_seq());
    if (absl::Status s = outbound_->DropFrom(keep_below); !s.ok()) {
      return failed(Annotate(s, "dropping the quarantined records from the outbound log"));
    }

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

  // 5. Repaired at one cut.
  absl::StatusOr<v1::RejoinRepairReply> repaired = peer_->RejoinRepair(operation, deadline);
  if (!repaired.ok()) return failed(Annotate(repaired.status(), "repairing at one cut"));
  reply.set_differences(repaired->differences());
  reply.set_repaired_rows(repaired->repaired_rows());
  *reply.mutable_anomalies() = repaired->anomalies();
  reply.set_anomaly_count(repaired->anomaly_count());
  step(absl::StrCat(peer_name, " verified (", repaired->verify_operation(),
                    "): ", repaired->differences(), " differing key(s), ",
                    repaired->repaired_rows(), " row(s) repaired here, ", repaired->anomaly_count(),
                    " not explained by the quarantine"));
  if (repaired->anomaly_count() > 0) {
    spdlog::warn("region {}: rejoin {}: {} differing key(s) no quarantined change explains: {}",
                 config_.region, operation, repaired->anomaly_count(),
                 absl::StrJoin(repaired->anomalies(), "; "));
  }
  if (!repaired->equal_after()) {
    return failed(absl::AbortedError(
        absl::StrCat("the regions still differ after the repair (apply changed the keys "
                     "meanwhile, or a repair was skipped)")));
  }
  KillPoint("rejoin.repaired");

  // 6. A replicating standby, apply's conflict policy the configured one again.
  StopPipeline(clock_->Now(), /*apply_backlog=*/false);
  if (absl::Status s = roles_->CompleteRejoin(operation); !s.ok()) return failed(s);
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
                                                              absl::Duration timeout) {
  v1::VerifyRequest request;
  request.set_repair(true);
  request.set_max_keys(10000);
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
      explained = quarantine_->Explains(config_.peer.region, keys);
    }
    if (!explained.ok())
      return Annotate(explained.status(), "matching the keys with the quarantine");
    for (size_t i = 0; i < keys.size(); ++i) {
      if ((*explained)[i]) continue;
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
