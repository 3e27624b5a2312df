// ApplyCutBarrier: the standby pipeline's apply lent to the verifier's service as its CutBarrier
// (consistency/grpc/verify_service.h; the cut itself: ApplyScheduler::FreezeForCut). It refuses
// a cut while apply is paused. The daemon owns it (its verify service outlives the pipelines);
// each standby pipeline Attach()es its apply while it runs and Shutdown()s it before it stops:
// that lifts any cut (a waiting SetCut returns at once) and waits until no call uses the apply.
//
// Thread safety: thread-safe.
#pragma once

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "consistency/grpc/verify_service.h"
#include "engine/apply/apply_scheduler.h"

namespace ferry {

class ApplyCutBarrier final : public consistency::CutBarrier {
 public:
  explicit ApplyCutBarrier(std::string region) : region_(std::move(region)) {}

  // Apply exists from here on (the pipeline starts it after its server).
  void Attach(ApplyScheduler* apply) {
    absl::MutexLock lock(&mu_);
    apply_ = apply;
  }
  void Shutdown() {
    absl::MutexLock lock(&mu_);
    if (apply_ != nullptr) apply_->ReleaseCut();
    apply_ = nullptr;
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return waiting_ == 0; };
    mu_.Await(absl::Condition(&idle));
  }

  absl::Status Freeze() override {
    absl::MutexLock lock(&mu_);
    if (apply_ == nullptr) return NotRunning();
    if (apply_->status().paused) {
      return absl::FailedPreconditionError(
          absl::StrCat("verify refused: apply is paused on ", region_,
                       " (a paused standby cannot reach the cut; ferryctl resume it first)"));
    }
    return apply_->FreezeForCut();
  }
  void SetCut(uint64_t position) override {
    absl::MutexLock lock(&mu_);
    if (apply_ != nullptr) apply_->SetCut(position);
  }
  // Waits without the lock; Shutdown() releases the cut (which ends this wait) and waits for it
  // before the pipeline stops its apply.
  absl::Status WaitForCut(absl::Duration timeout) override {
    ApplyScheduler* apply;
    {
      absl::MutexLock lock(&mu_);
      if (apply_ == nullptr) return NotRunning();
      apply = apply_;
      ++waiting_;
    }
    absl::Status reached = apply->WaitForCut(timeout);
    absl::MutexLock lock(&mu_);
    --waiting_;
    return reached;
  }
  void Release() override {
    absl::MutexLock lock(&mu_);
    if (apply_ != nullptr) apply_->ReleaseCut();
  }
  uint64_t applied_seq() override {
    absl::MutexLock lock(&mu_);
    return apply_ != nullptr ? apply_->status().applied_seq : 0;
  }

 private:
  absl::Status NotRunning() const {
    return absl::FailedPreconditionError(
        absl::StrCat("verify refused: ", region_, " is not a running standby"));
  }

  const std::string region_;
  absl::Mutex mu_;
  ApplyScheduler* apply_ ABSL_GUARDED_BY(mu_) = nullptr;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;  // calls in apply_->WaitForCut
};

}  // namespace ferry
