// The verify's cut in the apply scheduler (apply_scheduler.h, FreezeForCut): the standby's
// half of a consistent cut (docs/verify.md). The reader thread holds before the first
// transaction at or after the cut, once every dispatched group committed; the verifier takes
// its snapshot of the target then and releases the hold. Records are in source commit order
// in the inbound log, so everything before that transaction is exactly what the source
// committed before the cut.
#include "absl/strings/str_cat.h"
#include "engine/apply/apply_scheduler.h"
#include "engine/apply/commit_order.h"
#include "engine/apply/group_builder.h"

namespace ferry {

absl::Status ApplyScheduler::CutUnreachableLocked() const {
  return absl::FailedPreconditionError(absl::StrCat("apply stopped for good on this standby (",
                                                    last_error_, "): it cannot reach a cut"));
}

absl::Status ApplyScheduler::FreezeForCut() {
  absl::MutexLock lock(&mu_);
  if (halted_) return CutUnreachableLocked();
  if (cut_.has_value()) return absl::FailedPreconditionError("a verify's cut is already set");
  cut_ = Cut{};
  cut_changed_.SignalAll();
  return absl::OkStatus();
}

void ApplyScheduler::SetCut(uint64_t position) {
  absl::MutexLock lock(&mu_);
  if (!cut_.has_value()) return;
  cut_->position = position;
  cut_->reached = false;
  cut_changed_.SignalAll();
}

absl::Status ApplyScheduler::WaitForCut(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (cut_.has_value() && !cut_->reached && !cut_stop_) {
    if (cut_changed_.WaitWithDeadline(&mu_, deadline)) break;
  }
  if (cut_.has_value() && cut_->reached && !cut_stop_) return absl::OkStatus();
  if (halted_) return CutUnreachableLocked();
  return absl::DeadlineExceededError(
      "the standby's apply did not reach the cut in time (is it stopped, paused or far behind?)");
}

void ApplyScheduler::ReleaseCut() {
  absl::MutexLock lock(&mu_);
  cut_.reset();
  cut_changed_.SignalAll();
}

bool ApplyScheduler::PassCut(uint64_t position) {
  auto must_hold = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return cut_.has_value() && (cut_->position == 0 || position >= cut_->position);
  };
  {
    absl::MutexLock lock(&mu_);
    if (!must_hold()) return true;
  }
  // Everything before this transaction goes out and commits first.
  if (!Flush()) return false;
  if (builder_->next_group_id() > 1 &&
      !order_->WaitCommitted(builder_->next_group_id() - 1).has_value()) {
    return false;
  }
  absl::MutexLock lock(&mu_);
  while (must_hold() && !cut_stop_) {
    if (cut_->position != 0 && !cut_->reached) {
      cut_->reached = true;
      cut_changed_.SignalAll();
    }
    cut_changed_.Wait(&mu_);
  }
  return !cut_stop_;
}

}  // namespace ferry
