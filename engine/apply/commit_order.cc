#include "engine/apply/commit_order.h"

#include <algorithm>
#include <utility>

namespace ferry {

CommitOrder::CommitOrder(const CommitOrderLimits& limits, std::function<void()> round_over)
    : limits_(limits), round_over_(std::move(round_over)) {}

bool CommitOrder::Stop() {
  absl::MutexLock lock(&mu_);
  const bool before = stop_;
  stop_ = true;
  return before;
}

bool CommitOrder::stopping() const {
  absl::MutexLock lock(&mu_);
  return stop_;
}

void CommitOrder::SetPaused(bool paused) {
  absl::MutexLock lock(&mu_);
  paused_ = paused;
}

void CommitOrder::Halt() {
  absl::MutexLock lock(&mu_);
  halted_ = true;
}

void CommitOrder::AwaitCounted(const absl::Condition& condition) {
  if (condition.Eval()) return;
  ++blocked_;
  mu_.Await(condition);
  --blocked_;
}

int CommitOrder::blocked() const {
  absl::MutexLock lock(&mu_);
  return blocked_;
}

CommitOrder::Snapshot CommitOrder::snapshot() const {
  absl::MutexLock lock(&mu_);
  return {.paused = paused_, .failed = halted_, .applied_seq = applied_seq_};
}

bool CommitOrder::WaitForApplied(uint64_t seq, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto done = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return applied_seq_ >= seq || halted_ || stop_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  return applied_seq_ >= seq;
}

std::optional<uint64_t> CommitOrder::HoldAndWaitQuiet() {
  absl::MutexLock lock(&mu_);
  ++holds_;
  // Nothing in flight: a replay then sees a quiet, committed prefix.
  auto quiet = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stop_ || (loaded_ && failure_ == nullptr && busy_workers_ == 0 && queue_.empty() &&
                     dispatched_ + 1 == next_commit_);
  };
  AwaitCounted(absl::Condition(&quiet));
  if (stop_) {
    --holds_;
    return std::nullopt;
  }
  return applied_seq_;
}

void CommitOrder::ReleaseHold() {
  absl::MutexLock lock(&mu_);
  --holds_;
}

void CommitOrder::StartRound(uint64_t applied_seq, uint64_t next_group_id) {
  absl::MutexLock lock(&mu_);
  applied_seq_ = applied_seq;
  next_commit_ = next_group_id;
  dispatched_ = next_group_id - 1;
  inflight_bytes_.clear();
  loaded_ = true;
}

bool CommitOrder::RoundOver() const {
  absl::MutexLock lock(&mu_);
  return stop_ || failure_ != nullptr;
}

bool CommitOrder::WaitForSlot() {
  while (true) {
    std::vector<ApplyGroupPtr> retired;
    {
      absl::MutexLock lock(&mu_);
      auto slot = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        const uint64_t inflight = dispatched_ - (next_commit_ - 1);
        size_t bytes = 0;
        for (const auto& [id, b] : inflight_bytes_) {
          if (id >= next_commit_) bytes += b;
        }
        return stop_ || failure_ != nullptr ||
               (!paused_ && holds_ == 0 && inflight < limits_.max_inflight_groups &&
                (inflight == 0 || bytes < limits_.max_inflight_bytes));
      };
      // Committed groups are freed while waiting too, as soon as the workers retire them.
      auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return slot() || !retired_.empty(); };
      AwaitCounted(absl::Condition(&ready));
      if (retired_.empty()) return !stop_ && failure_ == nullptr;
      retired.swap(retired_);
    }
    // The groups (parsed transactions and plans) are freed here, outside the lock.
  }
}

bool CommitOrder::Idle() const {
  absl::MutexLock lock(&mu_);
  return dispatched_ + 1 == next_commit_;
}

void CommitOrder::Enqueue(ApplyGroupPtr group) {
  absl::MutexLock lock(&mu_);
  group->generation = generation_;
  dispatched_ = group->id;
  while (!inflight_bytes_.empty() && inflight_bytes_.front().first < next_commit_) {
    inflight_bytes_.pop_front();
  }
  inflight_bytes_.emplace_back(group->id, group->bytes);
  queue_.push_back(std::move(group));
}

uint64_t CommitOrder::committed() const {
  absl::MutexLock lock(&mu_);
  return next_commit_ - 1;
}

bool CommitOrder::WouldWait(const ApplyGroup& group) const {
  absl::MutexLock lock(&mu_);
  if (failure_ != nullptr || stop_) return false;
  return group.wait_for >= next_commit_ || busy_workers_ >= limits_.workers;
}

std::optional<uint64_t> CommitOrder::WaitCommitted(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto done = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stop_ || failure_ != nullptr || next_commit_ > id;
  };
  AwaitCounted(absl::Condition(&done));
  if (stop_ || failure_ != nullptr) return std::nullopt;
  return applied_seq_;
}

void CommitOrder::DropRetired() {
  std::vector<ApplyGroupPtr> retired;
  {
    absl::MutexLock lock(&mu_);
    retired.swap(retired_);
  }
  // Freed here, outside the lock.
}

bool CommitOrder::EndRound() {
  absl::MutexLock lock(&mu_);
  // Workers abort at their next wait point; a worker blocked on a row lock is freed when the
  // later group holding it aborts.
  ++generation_;
  queue_.clear();
  auto idle = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return busy_workers_ == 0; };
  AwaitCounted(absl::Condition(&idle));
  return !stop_;
}

std::unique_ptr<GroupFailure> CommitOrder::TakeFailure() {
  absl::MutexLock lock(&mu_);
  return std::move(failure_);
}

void CommitOrder::WaitForStop() {
  absl::MutexLock lock(&mu_);
  auto stopped = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_; };
  AwaitCounted(absl::Condition(&stopped));
}

ApplyGroupPtr CommitOrder::Take() {
  absl::MutexLock lock(&mu_);
  // Groups are taken in log order, and only once what they depend on has committed: a chain of
  // dependent groups then stays on the worker that commits each link (its backend's caches
  // stay warm) instead of rotating through every worker.
  auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_ || FrontReady(); };
  AwaitCounted(absl::Condition(&ready));
  if (stop_) return nullptr;
  ApplyGroupPtr group = std::move(queue_.front());
  queue_.pop_front();
  ++busy_workers_;
  return group;
}

bool CommitOrder::WaitUntilReady(const ApplyGroup& group, bool* first_in_line) {
  absl::MutexLock lock(&mu_);
  auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !Live(group.generation) || next_commit_ - 1 >= group.wait_for;
  };
  AwaitCounted(absl::Condition(&ready));
  if (!Live(group.generation)) {
    --busy_workers_;
    return false;
  }
  *first_in_line = next_commit_ == group.id;
  return true;
}

bool CommitOrder::WaitForTurn(const ApplyGroup& group) {
  absl::MutexLock lock(&mu_);
  auto turn = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !Live(group.generation) || next_commit_ == group.id;
  };
  AwaitCounted(absl::Condition(&turn));
  return Live(group.generation);
}

bool CommitOrder::RoundLive(uint64_t generation) const {
  absl::MutexLock lock(&mu_);
  return Live(generation);
}

ApplyGroupPtr CommitOrder::Committed(ApplyGroupPtr group) {
  absl::MutexLock lock(&mu_);
  if (group->generation == generation_) {
    next_commit_ = group->id + 1;
    applied_seq_ = std::max(applied_seq_, group->last_seq);
  }
  ApplyGroupPtr next;
  if (!stop_ && FrontReady()) {
    // The next group waited for this one: take it now, before an idle worker wakes up.
    next = std::move(queue_.front());
    queue_.pop_front();
    ++busy_workers_;
  }
  --busy_workers_;
  // Freeing a group of 1,000 parsed transactions takes about 2 ms; the reader thread does it,
  // so this worker goes straight on to the next group of the chain (bench/RESULTS.md).
  retired_.push_back(std::move(group));
  return next;
}

void CommitOrder::Release() {
  absl::MutexLock lock(&mu_);
  --busy_workers_;
}

void CommitOrder::ReportFailure(absl::Status status, std::optional<TableFault> fault,
                                const ApplyGroup& group) {
  bool ends_round = false;
  {
    absl::MutexLock lock(&mu_);
    if (group.generation != generation_ || stop_) return;
    if (failure_ != nullptr && failure_->group_id <= group.id) return;
    ends_round = failure_ == nullptr;
    auto f = std::make_unique<GroupFailure>();
    f->status = std::move(status);
    f->fault = std::move(fault);
    f->group_id = group.id;
    f->first_seq = group.first_seq;
    f->last_seq = group.last_seq;
    f->careful = group.context.careful;
    failure_ = std::move(f);
  }
  if (ends_round && round_over_) round_over_();
}

bool CommitOrder::FrontReady() const {
  return !queue_.empty() &&
         (!Live(queue_.front()->generation) || next_commit_ - 1 >= queue_.front()->wait_for);
}

bool CommitOrder::Live(uint64_t generation) const { return !stop_ && generation_ == generation; }

}  // namespace ferry
