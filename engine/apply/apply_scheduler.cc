#include "engine/apply/apply_scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/apply/footprint.h"
#include "engine/apply/inbound_reader.h"
#include "engine/base/kill_point.h"
#include "engine/base/status_macros.h"
#include "engine/base/thread_name.h"

namespace ferry {

// A unit of work: consecutive log records applied as one target transaction. Built by the
// reader; after Dispatch() only the worker holding it touches it.
struct ApplyScheduler::Group {
  uint64_t id = 0;
  uint64_t generation = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  uint64_t wait_for = 0;  // may start once this group committed
  bool stream = false;    // a multi-fragment transaction the worker reads from the log
  std::vector<std::pair<uint64_t, v1::Transaction>> txns;
  size_t bytes = 0;
  int64_t commit_time_us = 0;
  absl::Time opened;  // when its first record was read (on the clock)
  GroupContext context;
};

struct ApplyScheduler::Failure {
  absl::Status status;
  std::optional<TableFault> fault;
  uint64_t group_id = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  bool careful = false;
};

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
  for (int i = 0; i < options.workers; ++i) {
    s->workers_.emplace_back([p = s.get(), i] { p->WorkerLoop(i); });
  }
  return s;
}

namespace {

// The options with every "0 = derive it" field derived, so that options_ stays const.
ApplyOptions WithDefaults(ApplyOptions options) {
  if (options.max_inflight_groups == 0) {
    options.max_inflight_groups = 2 * static_cast<size_t>(options.workers);
  }
  return options;
}

}  // namespace

ApplyScheduler::ApplyScheduler(const ApplyOptions& options, DurableLog* inbound, Sink* sink)
    : options_(WithDefaults(options)),
      log_(inbound),
      sink_(sink),
      inbound_(std::make_unique<InboundReader>(
          inbound, InboundReaderOptions{.batch_records = options_.read_batch_records,
                                        .batch_bytes = options_.read_batch_bytes,
                                        .clock = options_.clock})) {
  backoff_ = options_.backoff_initial;
  stopped_ = std::make_shared<StoppedTables>();
}

ApplyScheduler::~ApplyScheduler() { Stop(); }

void ApplyScheduler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_ && !reader_.joinable()) return;
    stop_ = true;
  }
  if (!stop_notification_.HasBeenNotified()) stop_notification_.Notify();
  if (reader_.joinable()) reader_.join();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
}

void ApplyScheduler::Pause() {
  absl::MutexLock lock(&mu_);
  paused_ = true;
}

void ApplyScheduler::Resume() {
  absl::MutexLock lock(&mu_);
  paused_ = false;
}

ApplyStatus ApplyScheduler::status() const {
  ApplyStatus s;
  uint64_t applied;
  {
    absl::MutexLock lock(&mu_);
    s.paused = paused_;
    s.failed = failed_;
    s.last_error = last_error_;
    s.applied_seq = applied = applied_seq_;
    s.durable_seq = std::min(applied_seq_, durable_seq_);
    s.apply_latency = apply_latency_;
    s.stopped_tables = *stopped_;
    s.conflicts = conflicts_base_;
    for (uint64_t c : session_conflicts_) s.conflicts += c;
    s.groups_committed = groups_committed_;
    s.transactions_applied = transactions_applied_;
    s.resets = resets_;
  }
  const uint64_t last = log_->next_seq() - 1;
  s.lag_records = last > applied ? last - applied : 0;
  return s;
}

bool ApplyScheduler::WaitForApplied(uint64_t seq, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto done = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return applied_seq_ >= seq || failed_ || stop_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  return applied_seq_ >= seq;
}

bool ApplyScheduler::FrontReady() const {
  return !queue_.empty() &&
         (!RoundLive(queue_.front()->generation) || next_commit_ - 1 >= queue_.front()->wait_for);
}

bool ApplyScheduler::RoundLive(uint64_t generation) const {
  return !stop_ && generation_ == generation;
}

// ---------------------------------------------------------------------------------------------
// Reader thread.

void ApplyScheduler::ReaderLoop() {
  SetCurrentThreadName("apply-reader");
  uint64_t applied_at_last_failure = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
    }
    if (options_.clock->Now() < backoff_until_) {
      options_.clock->SleepUntil(backoff_until_, &stop_notification_);
      continue;
    }
    absl::Status status = LoadState();
    if (status.ok()) status = ReadAndDispatch();
    // Roll back everything uncommitted: bump the generation and wait until no worker holds a
    // group (workers abort at their next wait point; a worker blocked on a row lock is freed
    // when the later group holding it aborts).
    {
      absl::MutexLock lock(&mu_);
      ++generation_;
      queue_.clear();
      auto idle = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return busy_workers_ == 0; };
      mu_.Await(absl::Condition(&idle));
      if (stop_) break;
      ++resets_;
      if (!status.ok() && IsFatal(status, false)) {
        failed_ = true;
        last_error_ = status.ToString();
        auto stopped = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_; };
        mu_.Await(absl::Condition(&stopped));
        break;
      }
      if (!status.ok()) {
        // LoadState or a log read failed transiently.
        last_error_ = status.ToString();
        backoff_ = std::min(options_.backoff_max, backoff_ * 2);
        backoff_until_ = options_.clock->Now() + backoff_;
        continue;
      }
      if (applied_seq_ > applied_at_last_failure) backoff_ = options_.backoff_initial;
      applied_at_last_failure = applied_seq_;
    }
    HandleFailure();
  }
  // Workers exit on stop_; nothing else to do.
}

absl::Status ApplyScheduler::LoadState() {
  absl::StatusOr<SinkState> state = sink_->LoadState();
  if (!state.ok()) return Annotate(state.status(), "apply: reading progress from the target");
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
  absl::MutexLock lock(&mu_);
  applied_seq_ = applied;
  auto stopped = std::make_shared<StoppedTables>(state->stopped);
  for (const TableStop& s : unpersisted_stops_) stopped->emplace(s.table, s);
  stopped_ = std::move(stopped);
  // Drop unpersisted stops that the target already has (a commit whose reply was lost).
  std::erase_if(unpersisted_stops_,
                [&](const TableStop& s) { return state->stopped.contains(s.table); });
  conflicts_base_ = state->conflicts;
  session_conflicts_.assign(options_.workers, 0);
  next_commit_ = next_group_id_;
  dispatched_ = next_group_id_ - 1;
  inflight_bytes_.clear();
  state_loaded_ = true;
  next_read_ = applied + 1;
  tracker_.Clear();
  known_shapes_.clear();
  unique_keys_.clear();
  return absl::OkStatus();
}

void ApplyScheduler::HandleFailure() {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Failure> f = std::move(failure_);
  if (f == nullptr) return;
  if (f->fault) {
    TableStop stop = *f->fault;
    last_error_ = absl::StrCat("table ", stop.table.ToString(), " stopped at seq ", stop.seq, ": ",
                               stop.reason);
    auto stopped = std::make_shared<StoppedTables>(*stopped_);
    (*stopped)[stop.table] = stop;
    stopped_ = std::move(stopped);
    std::erase_if(unpersisted_stops_, [&](const TableStop& s) { return s.table == stop.table; });
    unpersisted_stops_.push_back(std::move(stop));
    return;
  }
  last_error_ = f->status.ToString();
  if (IsFatal(f->status, false)) {
    failed_ = true;
    auto stopped = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_; };
    mu_.Await(absl::Condition(&stopped));
    return;
  }
  if (f->status.code() == absl::StatusCode::kAborted && !f->careful) {
    // Conflict, error or deadlock in the fast path: the range again, serial and careful, now.
    careful_until_ = std::max(careful_until_, f->last_seq);
    return;
  }
  backoff_ = std::min(options_.backoff_max, std::max(backoff_, options_.backoff_initial));
  backoff_until_ = options_.clock->Now() + backoff_;
  backoff_ = std::min(options_.backoff_max, backoff_ * 2);
  if (f->status.code() == absl::StatusCode::kAborted) {
    careful_until_ = std::max(careful_until_, f->last_seq);
  }
}

const UniqueKeys& ApplyScheduler::UniqueKeysFor(const v1::Relation& relation) {
  static const UniqueKeys kNone;
  const std::string key =
      absl::StrCat(relation.schema(), ".", relation.name(), "#", relation.schema_hash());
  auto it = unique_keys_.find(key);
  if (it != unique_keys_.end()) return it->second;
  absl::StatusOr<UniqueKeys> keys = sink_->UniqueKeysOf(relation);
  // Unknown keys (target away): treat the whole table as one key, which is always safe.
  if (!keys.ok()) return kNone;
  return unique_keys_.emplace(key, *std::move(keys)).first->second;
}

bool ApplyScheduler::WaitForSlot() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto slot = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        const uint64_t inflight = dispatched_ - (next_commit_ - 1);
        size_t bytes = 0;
        for (const auto& [id, b] : inflight_bytes_) {
          if (id >= next_commit_) bytes += b;
        }
        return stop_ || failure_ != nullptr ||
               (!paused_ && replaying_ == 0 && inflight < options_.max_inflight_groups &&
                (inflight == 0 || bytes < options_.max_inflight_bytes));
      };
      // Committed groups are freed while waiting too, as soon as the workers retire them.
      auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return slot() || !retired_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (retired_.empty()) return !stop_ && failure_ == nullptr;
    }
    DropRetiredGroups();
  }
}

void ApplyScheduler::DropRetiredGroups() {
  std::vector<GroupPtr> retired;
  {
    absl::MutexLock lock(&mu_);
    retired.swap(retired_);
  }
  // The groups (parsed transactions and plans) are freed here, outside the lock.
}

absl::Status ApplyScheduler::Dispatch(GroupPtr group) {
  if (!WaitForSlot()) return absl::AbortedError("round over");
  absl::MutexLock lock(&mu_);
  group->generation = generation_;
  group->context.first_seq = group->first_seq;
  group->context.stopped = stopped_;
  // Unpersisted stops ride with exactly one group at a time: the first group after the reset
  // that found them starts at or before their seq, so the stop is committed no later than the
  // progress that passes it.
  if (!unpersisted_stops_.empty() && dispatched_ + 1 == next_commit_) {
    group->context.new_stops = unpersisted_stops_;
  }
  dispatched_ = group->id;
  while (!inflight_bytes_.empty() && inflight_bytes_.front().first < next_commit_) {
    inflight_bytes_.pop_front();
  }
  inflight_bytes_.emplace_back(group->id, group->bytes);
  queue_.push_back(std::move(group));
  return absl::OkStatus();
}

void ApplyScheduler::MaybeWriteCursors() {
  uint64_t applied, retain;
  {
    absl::MutexLock lock(&mu_);
    applied = applied_seq_;
  }
  // What the target would keep after a crash of its own; polled, it costs a query.
  const absl::Time now = options_.clock->Now();
  if (now - durable_polled_ >= options_.durable_poll) {
    durable_polled_ = now;
    absl::StatusOr<std::optional<uint64_t>> durable = sink_->DurableSeq();
    if (durable.ok()) {
      absl::MutexLock lock(&mu_);
      durable_seq_ = durable->value_or(applied);
    }
  }
  {
    absl::MutexLock lock(&mu_);
    retain = std::min(applied, durable_seq_) + 1;
    for (const auto& [table, stop] : *stopped_) retain = std::min(retain, stop.seq);
  }
  if (applied <= cursor_written_ && retain == retain_written_) return;
  // Bookkeeping only (the target holds the real progress): at most one synced log write per
  // cursor_interval, not one per group when small groups trickle in.
  const absl::Time real_now = absl::Now();
  if (real_now - cursors_written_at_ < options_.cursor_interval) return;
  cursors_written_at_ = real_now;
  applied = std::max(applied, cursor_written_);  // never moves back
  AppendRequest req;
  req.cursors.push_back({options_.applied_cursor, applied});
  req.cursors.push_back({options_.retain_cursor, retain});
  absl::StatusOr<uint64_t> r = log_->Append(std::move(req));
  if (r.ok()) {
    cursor_written_ = applied;
    retain_written_ = retain;
  }
  // A failed cursor write is harmless: the target holds the real progress.
}

absl::Status ApplyScheduler::ReadAndDispatch() {
  GroupPtr group;
  auto new_group = [&](uint64_t first_seq) {
    group = std::make_shared<Group>();
    group->id = next_group_id_++;
    group->first_seq = first_seq;
    group->opened = options_.clock->Now();
    if (first_seq <= careful_until_) {
      group->context.careful = true;
      group->wait_for = group->id - 1;  // serial
    }
  };
  auto flush = [&]() -> bool {
    if (group == nullptr) return true;
    GroupPtr g = std::move(group);
    group = nullptr;
    if (!g->context.careful && !g->txns.empty()) g->context.plan = sink_->Plan(g->txns);
    return Dispatch(std::move(g)).ok();
  };
  auto committed_group = [&]() {
    absl::MutexLock lock(&mu_);
    return next_commit_ - 1;
  };
  // A group that is not full goes out when the log has nothing more, unless it could not start
  // now anyway: it depends on a group still in flight, or every worker is busy. Then it keeps
  // collecting, so groups grow with the load; idle or lightly loaded, a group goes out at once
  // (no timer adds latency).
  auto would_wait = [&]() {
    absl::MutexLock lock(&mu_);
    if (failure_ != nullptr || stop_) return false;
    return group->wait_for >= next_commit_ || busy_workers_ >= options_.workers;
  };
  auto keep_collecting = [&]() {
    return group != nullptr && !group->context.careful &&
           group->txns.size() < options_.max_group_transactions &&
           group->bytes < options_.max_group_bytes &&
           options_.clock->Now() - group->opened < options_.max_group_delay && would_wait();
  };
  auto lookup = [&](const v1::Relation& r) -> const UniqueKeys& { return UniqueKeysFor(r); };

  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_ || failure_ != nullptr) return absl::OkStatus();
    }
    MaybeWriteCursors();
    FERRY_ASSIGN_OR_RETURN(std::vector<LogRecord> records,
                           inbound_->Read(next_read_, InboundReader::Batch::kGroups));
    if (records.empty()) {
      if (keep_collecting()) {
        // Until a record arrives or (checked again soon) the groups in flight committed.
        inbound_->WaitForRecord(next_read_, options_.collect_wait);
        continue;
      }
      if (!flush()) return absl::OkStatus();
      DropRetiredGroups();
      inbound_->WaitForRecord(next_read_, options_.idle_wait);
      continue;
    }
    bool restart_read = false;
    for (const LogRecord& raw : records) {
      FERRY_ASSIGN_OR_RETURN(InboundRecord record, InboundReader::Decode(raw));
      if (record.heartbeat) {
        if (group == nullptr) new_group(record.seq);
        group->last_seq = record.seq;
        next_read_ = record.seq + 1;
        continue;
      }
      v1::Transaction& txn = record.txn;
      if (txn.fragment() != 0) {
        return absl::DataLossError(absl::StrCat(
            "apply: inbound record ", record.seq, " is fragment ", txn.fragment(),
            " of a transaction whose fragment 0 precedes the applied progress or is missing"));
      }
      if (!txn.last_fragment()) {
        // A large transaction: its own group, streamed by the worker, after everything before
        // it committed; nothing after it is read until it committed.
        if (!flush()) return absl::OkStatus();
        new_group(record.seq);
        GroupPtr stream = std::move(group);
        group = nullptr;
        stream->stream = true;
        stream->wait_for = stream->id - 1;
        Footprint barrier;
        barrier.barrier = true;
        tracker_.Add(stream->id, barrier, committed_group());
        const uint64_t id = stream->id;
        if (!Dispatch(std::move(stream)).ok()) return absl::OkStatus();
        absl::MutexLock lock(&mu_);
        auto done = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return stop_ || failure_ != nullptr || next_commit_ > id;
        };
        mu_.Await(absl::Condition(&done));
        if (stop_ || failure_ != nullptr) return absl::OkStatus();
        next_read_ = applied_seq_ + 1;
        known_shapes_.clear();  // the stream may have changed shapes
        restart_read = true;
        break;
      }
      Footprint fp = ComputeFootprint(txn, lookup);
      for (const v1::Relation& r : txn.relations()) {
        auto [it, inserted] = known_shapes_.try_emplace(r.relation_id(), r.schema_hash());
        if (inserted || it->second != r.schema_hash()) {
          fp.barrier = true;  // new or changed shape: the session may run DDL
          it->second = r.schema_hash();
        }
      }
      const bool careful_now = record.seq <= careful_until_;
      if (group != nullptr &&
          (group->txns.size() >= options_.max_group_transactions ||
           group->bytes >= options_.max_group_bytes || group->context.careful != careful_now)) {
        if (!flush()) return absl::OkStatus();
      }
      if (group == nullptr) new_group(record.seq);
      const uint64_t dep = tracker_.Add(group->id, fp, committed_group());
      group->wait_for = std::max(group->wait_for, dep);
      group->bytes += record.bytes;
      group->last_seq = record.seq;
      group->commit_time_us = txn.commit_time_us();
      group->txns.emplace_back(record.seq, std::move(txn));
      next_read_ = record.seq + 1;
    }
    if (restart_read) continue;
    if (next_read_ >= inbound_->next_seq() && !keep_collecting()) {
      if (!flush()) return absl::OkStatus();
    }
    if (tracker_.size() > 100000) tracker_.Forget(committed_group());
  }
}

// ---------------------------------------------------------------------------------------------
// Workers.

void ApplyScheduler::ReportFailure(absl::Status status, std::optional<TableFault> fault,
                                   const Group& group) {
  absl::MutexLock lock(&mu_);
  if (group.generation != generation_ || stop_) return;
  if (failure_ != nullptr && failure_->group_id <= group.id) return;
  auto f = std::make_unique<Failure>();
  f->status = std::move(status);
  f->fault = std::move(fault);
  f->group_id = group.id;
  f->first_seq = group.first_seq;
  f->last_seq = group.last_seq;
  f->careful = group.context.careful;
  failure_ = std::move(f);
}

absl::Status ApplyScheduler::ExecuteGroup(SinkSession& session, Group& group, bool commit) {
  FERRY_RETURN_IF_ERROR(session.Begin(group.context));
  for (const auto& [seq, txn] : group.txns) FERRY_RETURN_IF_ERROR(session.Apply(seq, txn));
  if (commit) KillPoint("apply.before_commit");
  return commit ? session.PrepareAndCommit(group.last_seq, group.commit_time_us)
                : session.Prepare();
}

absl::Status ApplyScheduler::ExecuteStream(SinkSession& session, Group& group) {
  group.context.streamed = true;
  FERRY_RETURN_IF_ERROR(session.Begin(group.context));
  uint64_t seq = group.first_seq;
  bool started = false;
  uint32_t expect = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (!RoundLive(group.generation)) return absl::AbortedError("apply round ended");
    }
    FERRY_ASSIGN_OR_RETURN(std::vector<LogRecord> records,
                           inbound_->Read(seq, InboundReader::Batch::kStream));
    if (records.empty()) {
      inbound_->WaitForRecord(seq, options_.idle_wait);
      continue;
    }
    for (const LogRecord& raw : records) {
      seq = raw.seq + 1;
      FERRY_ASSIGN_OR_RETURN(InboundRecord record, InboundReader::Decode(raw));
      if (record.heartbeat) continue;
      const v1::Transaction& txn = record.txn;
      if (txn.fragment() == 0) {
        if (started) {
          // The source restarted and sends the transaction again: discard what we have.
          session.Abort();
          FERRY_RETURN_IF_ERROR(session.Begin(group.context));
        }
        started = true;
        expect = 0;
      }
      if (!started || txn.fragment() != expect) {
        return absl::DataLossError(absl::StrCat("apply: inbound record ", record.seq,
                                                " is fragment ", txn.fragment(), ", expected ",
                                                expect));
      }
      ++expect;
      const bool last = txn.last_fragment();
      const int64_t commit_time = txn.commit_time_us();
      FERRY_RETURN_IF_ERROR(session.Apply(record.seq, txn));
      if (last) {
        group.last_seq = record.seq;
        group.commit_time_us = commit_time;
        return session.Prepare();
      }
    }
  }
}

void ApplyScheduler::WorkerLoop(int worker) {
  SetCurrentThreadName(absl::StrCat("apply-w", worker));
  std::unique_ptr<SinkSession> session;
  uint64_t conflicts_seen = 0;
  GroupPtr next;  // taken over from this worker's own commit (see below)
  while (true) {
    GroupPtr group = std::move(next);
    next = nullptr;
    if (group == nullptr) {
      absl::MutexLock lock(&mu_);
      // Groups are taken in log order, and only once what they depend on has committed: a
      // chain of dependent groups then stays on the worker that commits each link (its
      // backend's caches stay warm) instead of rotating through every worker.
      auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_ || FrontReady(); };
      mu_.Await(absl::Condition(&ready));
      if (stop_) break;
      group = std::move(queue_.front());
      queue_.pop_front();
      ++busy_workers_;
    }
    auto release = [&] {
      absl::MutexLock lock(&mu_);
      --busy_workers_;
    };
    if (session == nullptr) {
      absl::StatusOr<std::unique_ptr<SinkSession>> opened = sink_->OpenSession(worker);
      if (!opened.ok()) {
        ReportFailure(opened.status(), std::nullopt, *group);
        release();
        continue;
      }
      session = *std::move(opened);
      conflicts_seen = session->conflicts_committed();
    }
    bool first_in_line = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return !RoundLive(group->generation) || next_commit_ - 1 >= group->wait_for;
      };
      mu_.Await(absl::Condition(&ready));
      if (!RoundLive(group->generation)) {
        --busy_workers_;
        continue;
      }
      first_in_line = next_commit_ == group->id;
    }
    auto fail = [&](absl::Status status) {
      std::optional<TableFault> fault;
      if (status.code() == absl::StatusCode::kFailedPrecondition) fault = session->fault();
      session->Abort();
      ReportFailure(std::move(status), std::move(fault), *group);
      release();
    };
    if (first_in_line && !group->stream) {
      // Every group before it committed: the sink may send the work and the commit together
      // (one round trip instead of two, which is most of a group's latency at low rates).
      // Committing after its round ended is still safe: the reader reloads the progress only
      // once no worker holds a group.
      if (absl::Status status = ExecuteGroup(*session, *group, /*commit=*/true); !status.ok()) {
        fail(std::move(status));
        continue;
      }
    } else {
      absl::Status status =
          group->stream ? ExecuteStream(*session, *group) : ExecuteGroup(*session, *group, false);
      if (!status.ok()) {
        fail(std::move(status));
        continue;
      }
      bool my_turn;
      {
        absl::MutexLock lock(&mu_);
        auto turn = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return !RoundLive(group->generation) || next_commit_ == group->id;
        };
        mu_.Await(absl::Condition(&turn));
        my_turn = RoundLive(group->generation);
      }
      if (!my_turn) {
        session->Abort();
        release();
        continue;
      }
      KillPoint("apply.before_commit");
      status = session->Commit(group->last_seq, group->commit_time_us);
      if (!status.ok()) {
        fail(std::move(status));
        continue;
      }
    }
    KillPoint("apply.group_committed");  // in the target, not yet in applied_seq_
    const uint64_t conflicts = session->conflicts_committed();
    const absl::Time now = options_.clock->Now();
    absl::MutexLock lock(&mu_);
    if (group->generation == generation_) {
      next_commit_ = group->id + 1;
      applied_seq_ = std::max(applied_seq_, group->last_seq);
    }
    if (!group->context.new_stops.empty()) {
      std::erase_if(unpersisted_stops_, [&](const TableStop& s) {
        for (const TableStop& c : group->context.new_stops) {
          if (c.table == s.table && c.seq == s.seq) return true;
        }
        return false;
      });
    }
    if (static_cast<size_t>(worker) < session_conflicts_.size()) {
      session_conflicts_[worker] += conflicts - conflicts_seen;
    }
    conflicts_seen = conflicts;
    ++groups_committed_;
    if (!stop_ && FrontReady()) {
      // The next group waited for this one: take it now, before an idle worker wakes up.
      next = std::move(queue_.front());
      queue_.pop_front();
      ++busy_workers_;
    }
    transactions_applied_ += group->stream ? 1 : group->txns.size();
    if (group->commit_time_us != 0) {
      apply_latency_ = now - absl::FromUnixMicros(group->commit_time_us);
      if (options_.on_group_committed) {
        options_.on_group_committed(apply_latency_, group->stream ? 1 : group->txns.size());
      }
    }
    --busy_workers_;
    // Freeing a group of 1,000 parsed transactions takes about 2 ms; the reader does it, so
    // this worker goes straight on to the next group of the chain (bench/RESULTS.md).
    retired_.push_back(std::move(group));
  }
  if (session != nullptr) session->Abort();
}

// ---------------------------------------------------------------------------------------------
// ResumeTable.

absl::Status ApplyScheduler::ResumeTable(const TableName& table) {
  TableStop stop;
  uint64_t until;
  {
    absl::MutexLock lock(&mu_);
    auto it = stopped_->find(table);
    if (it == stopped_->end()) {
      return absl::NotFoundError(absl::StrCat("table ", table.ToString(), " is not stopped"));
    }
    if (failed_) return absl::FailedPreconditionError("apply has failed: " + last_error_);
    stop = it->second;
    ++replaying_;
    // Wait until nothing is in flight, so the replay sees a quiet, committed prefix.
    auto quiet = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return stop_ || (state_loaded_ && failure_ == nullptr && busy_workers_ == 0 &&
                       queue_.empty() && dispatched_ + 1 == next_commit_);
    };
    mu_.Await(absl::Condition(&quiet));
    if (stop_) {
      --replaying_;
      return absl::CancelledError("apply is stopping");
    }
    until = applied_seq_;
  }
  absl::Status status = ReplayTable(stop, until);
  absl::MutexLock lock(&mu_);
  --replaying_;
  auto stopped = std::make_shared<StoppedTables>(*stopped_);
  if (status.ok()) {
    stopped->erase(table);
    std::erase_if(unpersisted_stops_, [&](const TableStop& s) { return s.table == table; });
  } else {
    (*stopped)[table].reason = absl::StrCat("resume failed: ", status.message());
  }
  stopped_ = std::move(stopped);
  return status;
}

absl::Status ApplyScheduler::ReplayTable(const TableStop& stop, uint64_t until_seq) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<SinkSession> session,
                         sink_->OpenSession(options_.workers));
  GroupContext context;
  context.first_seq = stop.seq;
  context.stopped = std::make_shared<StoppedTables>();
  context.careful = true;
  context.only_table = stop.table;
  absl::Status status = session->Begin(context);
  // Fragments of the current transaction, kept until it is complete (a restarted transaction
  // discards them). Only the stopped table's part of one transaction is held.
  std::vector<std::pair<uint64_t, v1::Transaction>> chain;
  uint64_t seq = stop.seq;
  while (status.ok() && seq <= until_seq) {
    absl::StatusOr<std::vector<LogRecord>> records =
        inbound_->Read(seq, InboundReader::Batch::kReplay, until_seq);
    if (!records.ok()) {
      status = records.status();
      break;
    }
    if (records->empty()) break;
    for (const LogRecord& raw : *records) {
      seq = raw.seq + 1;
      absl::StatusOr<InboundRecord> record = InboundReader::Decode(raw);
      if (!record.ok()) {
        status = record.status();
        break;
      }
      if (record->heartbeat) continue;
      const v1::Transaction& txn = record->txn;
      if (txn.fragment() == 0) chain.clear();
      // Keep only what concerns the table.
      v1::Transaction kept;
      kept.set_origin_region(txn.origin_region());
      kept.set_source_position(txn.source_position());
      kept.set_commit_time_us(txn.commit_time_us());
      kept.set_fragment(txn.fragment());
      kept.set_last_fragment(txn.last_fragment());
      std::vector<uint32_t> ids;
      for (const auto& r : txn.relations()) {
        if (r.schema() == stop.table.schema && r.name() == stop.table.name) {
          *kept.add_relations() = r;
          ids.push_back(r.relation_id());
        }
      }
      for (const auto& c : txn.changes()) {
        bool mine = std::find(ids.begin(), ids.end(), c.relation_id()) != ids.end();
        for (uint32_t t : c.truncate_relation_ids()) {
          mine = mine || std::find(ids.begin(), ids.end(), t) != ids.end();
        }
        if (mine) *kept.add_changes() = c;
      }
      chain.emplace_back(record->seq, std::move(kept));
      if (txn.last_fragment()) {
        for (auto& [s, part] : chain) {
          // Apply as one complete transaction per fragment boundary.
          status = session->Apply(s, part);
          if (!status.ok()) break;
        }
        chain.clear();
        if (!status.ok()) break;
      }
    }
  }
  if (status.ok()) status = session->Prepare();
  if (status.ok()) status = session->Commit(0, 0);
  if (!status.ok()) {
    if (status.code() == absl::StatusCode::kFailedPrecondition && session->fault()) {
      status = absl::FailedPreconditionError(session->fault()->reason);
    }
    session->Abort();
    return Annotate(status, absl::StrCat("resuming ", stop.table.ToString()));
  }
  return absl::OkStatus();
}

}  // namespace ferry
