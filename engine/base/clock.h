// Time reaches Ferry's engine through Clock, so retries, backoff and lag can be tested with a
// clock the test advances (ManualClock) instead of sleeping.
//
// Example:
//   ManualClock clock(absl::FromUnixSeconds(100));
//   Backoff backoff(&clock, ...);
//   clock.Advance(absl::Seconds(2));
#pragma once

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ferry {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // Blocks until Now() >= deadline, or until `cancel` (when given) is notified. Returns true
  // when the deadline passed, false when cancelled.
  virtual bool SleepUntil(absl::Time deadline, const absl::Notification* cancel) = 0;

  // The process-wide real clock. Thread-safe.
  static Clock* Real();
};

// A clock that moves only when told. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(absl::Time start = absl::UnixEpoch()) : now_(start) {}
  absl::Time Now() const override;
  bool SleepUntil(absl::Time deadline, const absl::Notification* cancel) override;
  void Advance(absl::Duration d);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  absl::CondVar advanced_;
};

}  // namespace ferry
