// The scheduler's progress: how much of what apply committed the target holds durably (read by
// the reader's poll and by WaitForDurable, which a promote and a switchover wait in), the
// stopped tables' hold on the inbound log, and the cursors apply writes to it.
#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/apply/apply_scheduler.h"
#include "engine/apply/commit_order.h"
#include "engine/base/log_limiter.h"
#include "spdlog/spdlog.h"

namespace ferry {

std::string DurableErrorSuffix(const ApplyStatus& status) {
  if (status.durable_error.empty()) return "";
  return absl::StrCat(" (the last reading of it failed: ", status.durable_error, ")");
}

absl::Status ApplyWaitError(const ApplyStatus& status, uint64_t seq, const std::string& who,
                            const std::string& timed_out) {
  if (!status.failed || status.applied_seq >= seq) return absl::DeadlineExceededError(timed_out);
  return absl::FailedPreconditionError(absl::StrCat(who, "'s apply stopped for good after seq ",
                                                    status.applied_seq, ": ", status.last_error));
}

bool ApplyScheduler::WaitForDurable(uint64_t seq, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  auto reached = [this, seq]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return durable_seq_ >= seq; };
  absl::Time read_after = absl::InfinitePast();
  while (true) {
    // Read here rather than wait for the reader's next poll (durable_poll apart); after a
    // failed read (the target away) the next try waits a little.
    if (absl::Now() >= read_after && !ReadDurableProgress().ok()) {
      read_after = absl::Now() + kDurableRetry;
    }
    {
      // In slices, to see a halt or a stop (CommitOrder's, not under mu_) between them.
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithDeadline(absl::Condition(&reached),
                                std::min(deadline, absl::Now() + kDurableWaitSlice))) {
        return true;
      }
      // Halted, a target crash is never mended: what it took back is not applied again.
      if (halted_ && crashed_round_ == durable_round_) return false;
    }
    // A halt ends the wait only while seq is not applied: what is applied still becomes
    // durable (the target flushes its asynchronous commits by itself).
    const CommitOrder::Snapshot order = order_->snapshot();
    if ((order.failed && order.applied_seq < seq) || order_->stopping() ||
        absl::Now() >= deadline) {
      return false;
    }
  }
}

absl::Status ApplyScheduler::ReadDurableProgress() {
  uint64_t round;
  {
    absl::MutexLock lock(&mu_);
    round = durable_round_;
  }
  const uint64_t applied = order_->snapshot().applied_seq;
  absl::StatusOr<std::optional<uint64_t>> durable = sink_->DurableSeq();
  absl::MutexLock lock(&mu_);
  // A reading taken across a round's start may count another upstream log: dropped.
  if (round != durable_round_) return absl::OkStatus();
  if (durable.status().code() == absl::StatusCode::kAborted) {
    // The target crashed since the round began: the reader ends the round, and the next one
    // applies again what the crash took back, even when nothing new arrives.
    if (crashed_round_ != round) {
      spdlog::warn("apply: {}", std::string(durable.status().message()));
      // A halted apply keeps the error that stopped it (ApplyWaitError reports it).
      if (!halted_) last_error_ = durable.status().ToString();
      crashed_round_ = round;
    }
    durable_error_ = durable.status().ToString();  // what a wait that times out now reports
    return absl::OkStatus();
  }
  if (!durable.ok()) {
    durable_error_ = durable.status().ToString();
    if (std::optional<uint64_t> held = durable_log_.Due(durable_error_)) {
      spdlog::warn("apply: reading the target's durable progress failed: {}{}", durable_error_,
                   HeldBackNote(*held));
    }
    return durable.status();
  }
  durable_error_.clear();
  durable_seq_ = std::max(durable_seq_, durable->value_or(applied));
  return absl::OkStatus();
}

void ApplyScheduler::CheckStoppedTables(uint64_t safe_below) {
  std::shared_ptr<const StoppedTables> stopped;
  {
    absl::MutexLock lock(&mu_);
    stopped = stopped_;
    // Forget tables no longer stopped (resumed): a later stop starts from scratch.
    std::erase_if(stopped_logs_,
                  [&](const auto& entry) { return !stopped->contains(entry.first); });
  }
  const uint64_t first = log_->first_seq();
  const uint64_t bound = options_.stopped_table_retention_bytes;
  for (const auto& [table, stop] : *stopped) {
    {
      absl::MutexLock lock(&mu_);
      auto it = stopped_logs_.find(table);
      if (it != stopped_logs_.end() && it->second.needs_resnapshot) continue;
    }
    StoppedTableLog entry;
    if (stop.seq < first) {
      entry.needs_resnapshot = true;
      entry.cause = "log_trimmed";
      entry.reason = absl::StrCat("the inbound log it needs, from seq ", stop.seq,
                                  ", was trimmed (the log starts at ", first, ")");
    } else {
      entry.retained_bytes = log_->ApproximateBytes(stop.seq, std::max(safe_below, stop.seq));
      if (entry.retained_bytes > bound) {
        entry.needs_resnapshot = true;
        entry.cause = "retention_bytes";
        entry.reason =
            absl::StrCat("it held ", entry.retained_bytes, " bytes of inbound log from seq ",
                         stop.seq, ", over apply.stopped_table_retention_bytes (", bound,
                         "): released, the log is trimmed past its stop");
        entry.retained_bytes = 0;
      }
    }
    if (entry.needs_resnapshot) {
      spdlog::error(
          "apply: table {} (stopped at inbound seq {}: {}) needs a re-snapshot: {}; "
          "resume-table cannot replay it; the other tables go on",
          table.ToString(), stop.seq, stop.reason, entry.reason);
    }
    absl::MutexLock lock(&mu_);
    stopped_logs_[table] = std::move(entry);
  }
}

bool ApplyScheduler::MaybeWriteCursors() {
  uint64_t applied = order_->snapshot().applied_seq;
  // What the target would keep after a crash of its own; polled, it costs a query.
  const absl::Time now = options_.clock->Now();
  if (now - durable_polled_ >= options_.durable_poll) {
    durable_polled_ = now;
    (void)ReadDurableProgress();  // a failed poll is only one that did not answer
  }
  uint64_t safe_below;
  {
    absl::MutexLock lock(&mu_);
    // A crash found by this poll or by a WaitForDurable's (ReadDurableProgress).
    if (crashed_round_ == durable_round_) return false;
    safe_below = std::min(applied, durable_seq_) + 1;
  }
  if (now - stopped_checked_at_ >= options_.durable_poll) {
    stopped_checked_at_ = now;
    CheckStoppedTables(safe_below);
  }
  uint64_t retain = safe_below;
  {
    absl::MutexLock lock(&mu_);
    // A table that needs a re-snapshot no longer holds the log back.
    for (const auto& [table, stop] : *stopped_) {
      auto it = stopped_logs_.find(table);
      if (it == stopped_logs_.end() || !it->second.needs_resnapshot) {
        retain = std::min(retain, stop.seq);
      }
    }
  }
  if (applied <= cursor_written_ && retain == retain_written_) return true;
  // Bookkeeping only (the target holds the real progress): at most one synced log write per
  // cursor_interval, not one per group when small groups trickle in.
  const absl::Time write_now = options_.clock->Now();
  if (write_now - cursors_written_at_ < options_.cursor_interval) return true;
  cursors_written_at_ = write_now;
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
  return true;
}

}  // namespace ferry
