// The scheduler: lifecycle, status, and the reader thread, which runs rounds (load the progress
// from the target, read and dispatch groups until a failure ends the round, roll back, decide
// how to retry). Groups are built by GroupBuilder, ordered by CommitOrder and applied by
// ApplyWorker; ResumeTable is in table_replay.cc, the durable progress and the cursors in
// apply_progress.cc, the verify's cut in verify_cut.cc.
#include "engine/apply/apply_scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/apply/apply_group.h"
#include "engine/apply/apply_worker.h"
#include "engine/apply/commit_order.h"
#include "engine/apply/group_builder.h"
#include "engine/apply/inbound_reader.h"
#include "engine/base/status_macros.h"
#include "engine/base/thread_name.h"
#include "spdlog/spdlog.h"

namespace ferry {
namespace {

bool IsFatal(const absl::Status& s, bool has_fault) {
  switch (s.code()) {
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kOutOfRange:
      return true;
    case absl::StatusCode::kFailedPrecondition:
      return !has_fault;
    default:
      return false;
  }
}

// Apply's retry schedule: backoff_initial, doubled up to backoff_max, no jitter (the tests that
// drive it on a ManualClock see exact delays). backoff_max below backoff_initial means every
// delay is backoff_max.
BackoffOptions RetrySchedule(const ApplyOptions& options) {
  return {.min = std::min(options.backoff_initial, options.backoff_max),
          .max = options.backoff_max,
          .jitter = 0};
}

// The options with every "0 = derive it" field derived, so that options_ stays const.
ApplyOptions WithDefaults(ApplyOptions options) {
  if (options.max_inflight_groups == 0) {
    options.max_inflight_groups = 2 * static_cast<size_t>(options.workers);
  }
  return options;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ApplyScheduler>> ApplyScheduler::Start(const ApplyOptions& options,
                                                                      DurableLog* inbound,
                                                                      Sink* sink) {
  if (inbound == nullptr || sink == nullptr) {
    return absl::InvalidArgumentError("apply: the inbound log and the sink are required");
  }
  if (options.workers < 1 || options.workers > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("apply: workers must be in [1, 64], got ", options.workers));
  }
  if (options.max_group_transactions < 1 || options.max_group_bytes < 1 ||
      options.read_batch_records < 1 || options.clock == nullptr) {
    return absl::InvalidArgumentError("apply: group and read bounds must be positive");
  }
  std::unique_ptr<ApplyScheduler> s(new ApplyScheduler(options, inbound, sink));
  s->reader_ = std::thread([p = s.get()] { p->ReaderLoop(); });
  for (auto& worker : s->apply_workers_) {
    s->workers_.emplace_back([w = worker.get()] { w->Run(); });
  }
  return s;
}

ApplyScheduler::ApplyScheduler(const ApplyOptions& options, DurableLog* inbound, Sink* sink)
    : options_(WithDefaults(options)),
      log_(inbound),
      sink_(sink),
      inbound_(std::make_unique<InboundReader>(
          inbound, InboundReaderOptions{.batch_records = options_.read_batch_records,
                                        .batch_bytes = options_.read_batch_bytes,
                                        .clock = options_.clock})),
      order_(std::make_unique<CommitOrder>(
          CommitOrderLimits{.workers = options_.workers,
                            .max_inflight_groups = options_.max_inflight_groups,
                            .max_inflight_bytes = options_.max_inflight_bytes},
          // The reader may be in its idle wait for the next record: a failure ends it.
          [inbound] { inbound->WakeWaiters(); })),
      builder_(std::make_unique<GroupBuilder>(
          GroupLimits{.max_transactions = options_.max_group_transactions,
                      .max_bytes = options_.max_group_bytes,
                      .max_delay = options_.max_group_delay,
                      .clock = options_.clock},
          sink)),
      backoff_(RetrySchedule(options_), /*seed=*/0),
      retry_log_(options_.clock, absl::Seconds(60)),
      durable_log_(options_.clock, absl::Seconds(60)) {
  retry_delay_ = backoff_.Next();
  stopped_ = std::make_shared<StoppedTables>();
  for (int i = 0; i < options_.workers; ++i) {
    apply_workers_.push_back(std::make_unique<ApplyWorker>(
        i, sink_, inbound_.get(), order_.get(), options_.clock, options_.idle_wait,
        [this, i](const ApplyGroup& group, uint64_t new_conflicts,
                  const std::vector<TableResnapshot>& resnapshotted, absl::Time committed) {
          RecordCommit(i, group, new_conflicts, resnapshotted, committed);
        }));
  }
}

ApplyScheduler::~ApplyScheduler() { Stop(); }

void ApplyScheduler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    cut_stop_ = true;
    cut_changed_.SignalAll();
  }
  if (order_->Stop() && !reader_.joinable()) return;
  if (!stop_notification_.HasBeenNotified()) stop_notification_.Notify();
  // The reader (and a worker streaming a transaction) may be waiting for the next record for up
  // to idle_wait: woken, they see the stop (one that checked for it just before waits not at
  // all: it read the wake-ups before its check).
  log_->WakeWaiters();
  if (reader_.joinable()) reader_.join();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
}

void ApplyScheduler::HaltForGood(const absl::Status& why) {
  {
    absl::MutexLock lock(&mu_);
    last_error_ = why.ToString();
    halted_ = true;
    // A verify waiting for its cut would otherwise wait out its deadline.
    cut_stop_ = true;
    cut_changed_.SignalAll();
  }
  order_->Halt();
  order_->WaitForStop();
}

void ApplyScheduler::Pause() { order_->SetPaused(true); }

void ApplyScheduler::Resume() { order_->SetPaused(false); }

ApplyStatus ApplyScheduler::status() const {
  const CommitOrder::Snapshot order = order_->snapshot();
  ApplyStatus s;
  s.paused = order.paused;
  s.failed = order.failed;
  s.applied_seq = order.applied_seq;
  {
    absl::MutexLock lock(&mu_);
    s.last_error = last_error_;
    s.durable_seq = std::min(order.applied_seq, durable_seq_);
    s.apply_latency = apply_latency_;
    s.stopped_tables = *stopped_;
    for (const auto& [table, stop] : *stopped_) {
      auto it = stopped_logs_.find(table);
      s.stopped_table_logs[table] = it != stopped_logs_.end() ? it->second : StoppedTableLog{};
    }
    s.conflicts = conflicts_base_;
    for (uint64_t c : session_conflicts_) s.conflicts += c;
    s.groups_committed = groups_committed_;
    s.transactions_applied = transactions_applied_;
    s.resets = resets_;
    s.log_id = log_id_;
    s.identity_mismatch = identity_mismatch_;
    s.target_log_id = target_log_id_;
    s.target_applied_seq = target_applied_seq_;
    s.durable_error = durable_error_;
  }
  const uint64_t last = log_->next_seq() - 1;
  s.lag_records = last > order.applied_seq ? last - order.applied_seq : 0;
  return s;
}

bool ApplyScheduler::WaitForApplied(uint64_t seq, absl::Duration timeout) const {
  return order_->WaitForApplied(seq, timeout);
}

// ---------------------------------------------------------------------------------------------
// Reader thread.

void ApplyScheduler::ReaderLoop() {
  SetCurrentThreadName("apply-reader");
  uint64_t applied_at_last_failure = 0;
  while (true) {
    // Read before the check: a Stop() between the check and a wait below ends the wait.
    const uint64_t wakeups = inbound_->wakeups();
    if (order_->stopping()) break;
    if (options_.clock->Now() < backoff_until_) {
      options_.clock->SleepUntil(backoff_until_, &stop_notification_);
      continue;
    }
    if (log_->first_seq() == log_->next_seq() && InboundLogId().empty()) {
      // A new inbound log: no record, no upstream log yet. Nothing to apply, and no log to bind
      // the target's progress to: wait for the receiver's first stream.
      inbound_->WaitForRecord(log_->next_seq(), options_.idle_wait, wakeups);
      continue;
    }
    absl::Status status = LoadState();
    if (status.ok()) status = ReadAndDispatch();
    builder_->Reset();  // the group being collected goes with the round
    // Roll back everything uncommitted.
    if (!order_->EndRound()) break;  // Stop()
    {
      absl::MutexLock lock(&mu_);
      ++resets_;
      if (!status.ok()) last_error_ = status.ToString();
    }
    if (!status.ok() && IsFatal(status, false)) {
      spdlog::error("apply: stopped for good: {}", status.ToString());
      HaltForGood(status);
      break;
    }
    if (!status.ok()) {
      // LoadState or a log read failed transiently: the next step first, then wait it.
      retry_delay_ = backoff_.Next();
      backoff_until_ = options_.clock->Now() + retry_delay_;
      if (std::optional<uint64_t> held = retry_log_.Due(status.ToString())) {
        spdlog::warn("apply: cannot start, retrying in {}: {}{}",
                     absl::FormatDuration(retry_delay_), status.ToString(), HeldBackNote(*held));
      }
      continue;
    }
    const uint64_t applied = order_->snapshot().applied_seq;
    if (applied > applied_at_last_failure) {
      backoff_.Reset();  // progress since the last failure: start the schedule over
      retry_delay_ = backoff_.Next();
    }
    applied_at_last_failure = applied;
    HandleFailure();
  }
  // Workers exit on Stop(); nothing else to do.
}

std::string ApplyScheduler::InboundLogId() const {
  absl::StatusOr<std::optional<std::string>> id = log_->GetState(kPeerLogIdState);
  return id.ok() && id->has_value() ? **id : std::string();
}

absl::Status ApplyScheduler::LoadState() {
  UpstreamLog upstream;
  upstream.log_id = InboundLogId();
  upstream.first_seq = log_->first_seq();
  upstream.next_seq = log_->next_seq();
  round_log_id_ = upstream.log_id;
  absl::StatusOr<SinkState> state = sink_->LoadState(upstream);
  if (!state.ok()) return Annotate(state.status(), "apply: reading progress from the target");
  {
    absl::MutexLock lock(&mu_);
    log_id_ = upstream.log_id;
    identity_mismatch_ = state->log_id != upstream.log_id;
    target_log_id_ = state->log_id;
    target_applied_seq_ = state->applied_seq;
  }
  if (state->log_id != upstream.log_id) {
    // Never trust progress counted in another log: its seqs mean other records here.
    auto name = [](const std::string& id) { return id.empty() ? std::string("unrecorded") : id; };
    return absl::FailedPreconditionError(absl::StrCat(
        "apply: identity mismatch: the target's progress (seq ", state->applied_seq,
        ") counts upstream log ", name(state->log_id), ", but the inbound log copies log ",
        name(upstream.log_id),
        "; nothing is applied. If the peer region's log was re-created (a re-seed), empty or "
        "re-create the target database, then run `ferryctl reseed ",
        name(state->log_id),
        "` on this region (docs/operations.md, Re-seeding a region); otherwise this region is "
        "connected to the wrong peer or target"));
  }
  absl::StatusOr<std::optional<uint64_t>> cursor = log_->GetCursor(options_.applied_cursor);
  if (!cursor.ok()) return Annotate(cursor.status(), "apply: reading the applied cursor");
  // Resume from the target's progress only: the cursor may be ahead of it (groups with nothing
  // to write in the target, such as heartbeats, only move the cursor), and it must never make
  // us skip data (a target restored from a backup, or a fresh target). It stays monotone.
  const uint64_t applied = state->applied_seq;
  cursor_written_ = std::max(cursor_written_, cursor->value_or(0));
  if (log_->first_seq() > applied + 1) {
    return absl::DataLossError(absl::StrCat("apply: the inbound log was trimmed to seq ",
                                            log_->first_seq(), " but the target applied only ",
                                            applied));
  }
  {
    absl::MutexLock lock(&mu_);
    auto stopped = std::make_shared<StoppedTables>(state->stopped);
    for (const TableStop& s : unpersisted_stops_) stopped->emplace(s.table, s);
    stopped_ = std::move(stopped);
    // Drop unpersisted stops that the target already has (a commit whose reply was lost).
    std::erase_if(unpersisted_stops_,
                  [&](const TableStop& s) { return state->stopped.contains(s.table); });
    conflicts_base_ = state->conflicts;
    session_conflicts_.assign(options_.workers, 0);
  }
  {
    // A durable progress past the target's (of another upstream log) means nothing now.
    absl::MutexLock lock(&mu_);
    durable_seq_ = std::min(durable_seq_, applied);
    ++durable_round_;
  }
  order_->StartRound(applied, builder_->next_group_id());
  next_read_ = applied + 1;
  builder_->Reset();
  return absl::OkStatus();
}

void ApplyScheduler::HandleFailure() {
  std::unique_ptr<GroupFailure> f = order_->TakeFailure();
  if (f == nullptr) return;
  if (f->fault) {
    TableStop stop = *f->fault;
    spdlog::error(
        "apply: table {} stopped at inbound seq {}: {} (its later changes are kept; "
        "ferryctl resume-table {} once the cause is fixed)",
        stop.table.ToString(), stop.seq, stop.reason, stop.table.ToString());
    absl::MutexLock lock(&mu_);
    last_error_ = absl::StrCat("table ", stop.table.ToString(), " stopped at seq ", stop.seq, ": ",
                               stop.reason);
    auto stopped = std::make_shared<StoppedTables>(*stopped_);
    (*stopped)[stop.table] = stop;
    stopped_ = std::move(stopped);
    std::erase_if(unpersisted_stops_, [&](const TableStop& s) { return s.table == stop.table; });
    unpersisted_stops_.push_back(std::move(stop));
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    last_error_ = f->status.ToString();
  }
  if (IsFatal(f->status, false)) {
    spdlog::error("apply: stopped for good at inbound seqs {}-{}: {}", f->first_seq, f->last_seq,
                  f->status.ToString());
    HaltForGood(f->status);
    return;
  }
  if (f->status.code() == absl::StatusCode::kAborted && !f->careful) {
    // Conflict, error or deadlock in the fast path: the range again, serial and careful, now.
    builder_->CarefulThrough(f->last_seq);
    return;
  }
  if (std::optional<uint64_t> held = retry_log_.Due(f->status.ToString())) {
    spdlog::warn("apply: retrying inbound seqs {}-{} in {}: {}{}", f->first_seq, f->last_seq,
                 absl::FormatDuration(retry_delay_), f->status.ToString(), HeldBackNote(*held));
  }
  // Wait the current step, then move to the next one.
  backoff_until_ = options_.clock->Now() + retry_delay_;
  retry_delay_ = backoff_.Next();
  if (f->status.code() == absl::StatusCode::kAborted) builder_->CarefulThrough(f->last_seq);
}

absl::Status ApplyScheduler::ReadAndDispatch() {
  while (true) {
    const uint64_t wakeups = inbound_->wakeups();  // before the check, as in ReaderLoop
    if (order_->RoundOver()) return absl::OkStatus();
    if (!MaybeWriteCursors()) return absl::OkStatus();  // the round ends
    FERRY_ASSIGN_OR_RETURN(std::vector<LogRecord> records,
                           inbound_->Read(next_read_, InboundReader::Batch::kGroups));
    if (!records.empty() && InboundLogId() != round_log_id_) {
      // The receiver took a stream of another log since the round began (it records the id
      // before appending any record of it): bind the target to it again before applying any.
      spdlog::warn("apply: the inbound log now copies upstream log {} (was {}): reloading",
                   InboundLogId(), round_log_id_.empty() ? "unrecorded" : round_log_id_);
      return absl::OkStatus();
    }
    if (records.empty()) {
      if (KeepCollecting()) {
        // Until a record arrives or (checked again soon) the groups in flight committed.
        inbound_->WaitForRecord(next_read_, options_.collect_wait, wakeups);
        continue;
      }
      if (!Flush()) return absl::OkStatus();
      order_->DropRetired();
      inbound_->WaitForRecord(next_read_, options_.idle_wait, wakeups);
      continue;
    }
    bool restart_read = false;
    for (const LogRecord& raw : records) {
      FERRY_ASSIGN_OR_RETURN(InboundRecord record, InboundReader::Decode(raw, &catalog_));
      if (record.heartbeat) {
        builder_->AddHeartbeat(record.seq);
        next_read_ = record.seq + 1;
        continue;
      }
      const v1::Transaction& txn = record.txn;
      if (txn.fragment() != 0) {
        return absl::DataLossError(absl::StrCat(
            "apply: inbound record ", record.seq, " is fragment ", txn.fragment(),
            " of a transaction whose fragment 0 precedes the applied progress or is missing"));
      }
      if (!PassCut(txn.source_position())) return absl::OkStatus();
      if (!txn.last_fragment()) {
        // A large transaction: its own group, streamed by the worker, after everything before
        // it committed; nothing after it is read until it committed.
        if (!Flush()) return absl::OkStatus();
        std::shared_ptr<ApplyGroup> stream = builder_->Stream(record.seq, order_->committed());
        const uint64_t id = stream->id;
        if (!Dispatch(std::move(stream)).ok()) return absl::OkStatus();
        const std::optional<uint64_t> applied = order_->WaitCommitted(id);
        if (!applied.has_value()) return absl::OkStatus();
        next_read_ = *applied + 1;
        builder_->ForgetShapes();  // the stream may have changed shapes
        restart_read = true;
        break;
      }
      const Footprint footprint = builder_->FootprintOf(txn);
      if (builder_->MustClose(record.seq, footprint) && !Flush()) return absl::OkStatus();
      next_read_ = record.seq + 1;
      builder_->Add(std::move(record), footprint, order_->committed());
    }
    if (restart_read) continue;
    if (next_read_ >= inbound_->next_seq() && !KeepCollecting()) {
      if (!Flush()) return absl::OkStatus();
    }
    builder_->ForgetCommitted(order_->committed());
  }
}

// A group that is not full goes out when the log has nothing more, unless it could not start
// now anyway: it depends on a group still in flight, or every worker is busy. Then it keeps
// collecting, so groups grow with the load; idle or lightly loaded, a group goes out at once
// (no timer adds latency).
bool ApplyScheduler::KeepCollecting() const {
  return builder_->MayGrow() && order_->WouldWait(*builder_->open());
}

bool ApplyScheduler::Flush() {
  std::shared_ptr<ApplyGroup> group = builder_->Close();
  return group == nullptr || Dispatch(std::move(group)).ok();
}

absl::Status ApplyScheduler::Dispatch(std::shared_ptr<ApplyGroup> group) {
  if (!order_->WaitForSlot()) return absl::AbortedError("round over");
  // Unpersisted stops ride with exactly one group at a time: the first group after the reset
  // that found them starts at or before their seq, so the stop is committed no later than the
  // progress that passes it. Only this thread dispatches, so Idle() holds until the Enqueue.
  const bool idle = order_->Idle();
  {
    absl::MutexLock lock(&mu_);
    group->context.stopped = stopped_;
    if (!unpersisted_stops_.empty() && idle) group->context.new_stops = unpersisted_stops_;
  }
  order_->Enqueue(std::move(group));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Workers' bookkeeping.

void ApplyScheduler::RecordCommit(int worker, const ApplyGroup& group, uint64_t new_conflicts,
                                  const std::vector<TableResnapshot>& resnapshotted,
                                  absl::Time committed) {
  if (options_.table_counts != nullptr) {
    // Outside mu_: counting walks the group's changes.
    TableCountDelta delta = group.streamed_counts;
    for (const auto& [seq, txn] : group.txns) CountTransaction(txn, delta);
    if (group.context.stopped != nullptr) {
      for (const auto& [table, stop] : *group.context.stopped) delta.erase(table.ToString());
    }
    for (const TableStop& stop : group.context.new_stops) delta.erase(stop.table.ToString());
    options_.table_counts->Add(delta);
  }
  absl::MutexLock lock(&mu_);
  if (!resnapshotted.empty()) {
    // The sink cleared these stops in the group's transaction (unless the table stopped again
    // after its re-snapshot): later groups apply the tables again.
    auto stopped = std::make_shared<StoppedTables>(*stopped_);
    for (const TableResnapshot& r : resnapshotted) {
      spdlog::info("apply: table {} re-snapshotted at seq {}", r.table.ToString(), r.seq);
      auto it = stopped->find(r.table);
      if (it != stopped->end() && it->second.seq <= r.seq) {
        stopped->erase(it);
        stopped_logs_.erase(r.table);  // a table that needed a re-snapshot has had it
      }
      std::erase_if(unpersisted_stops_,
                    [&](const TableStop& s) { return s.table == r.table && s.seq <= r.seq; });
    }
    stopped_ = std::move(stopped);
  }
  if (!group.context.new_stops.empty()) {
    std::erase_if(unpersisted_stops_, [&](const TableStop& s) {
      for (const TableStop& c : group.context.new_stops) {
        if (c.table == s.table && c.seq == s.seq) return true;
      }
      return false;
    });
  }
  if (static_cast<size_t>(worker) < session_conflicts_.size()) {
    session_conflicts_[worker] += new_conflicts;
  }
  if (new_conflicts > 0) {
    if (std::optional<uint64_t> held = retry_log_.Due("conflict")) {
      spdlog::warn(
          "apply: {} conflict(s) resolved in the group up to inbound seq {} (details in "
          "the target's ferry.conflicts){}",
          new_conflicts, group.last_seq, HeldBackNote(*held));
    }
  }
  ++groups_committed_;
  transactions_applied_ += group.transactions();
  if (group.commit_time_us != 0) {
    apply_latency_ = committed - absl::FromUnixMicros(group.commit_time_us);
    if (options_.on_group_committed) {
      options_.on_group_committed(apply_latency_, group.transactions());
    }
  }
}

}  // namespace ferry
