#include "engine/base/clock.h"

#include "absl/synchronization/notification.h"

namespace ferry {
namespace {

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  bool SleepUntil(absl::Time deadline, const absl::Notification* cancel) override {
    if (cancel == nullptr) {
      absl::SleepFor(deadline - absl::Now());
      return true;
    }
    return !cancel->WaitForNotificationWithDeadline(deadline);
  }
};

}  // namespace

Clock* Clock::Real() {
  static RealClock* clock = new RealClock();
  return clock;
}

absl::Time ManualClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

bool ManualClock::SleepUntil(absl::Time deadline, const absl::Notification* cancel) {
  absl::MutexLock lock(&mu_);
  // Advance() wakes sleepers; the cancel notification cannot, so it is polled with a short
  // real timeout. Only tests use ManualClock.
  while (now_ < deadline && (cancel == nullptr || !cancel->HasBeenNotified())) {
    advanced_.WaitWithTimeout(&mu_, absl::Milliseconds(5));
  }
  return now_ >= deadline;
}

void ManualClock::Advance(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  now_ += d;
  advanced_.SignalAll();
}

}  // namespace ferry
