// LogLimiter: decides whether an event deserves a log line, so that a cause that repeats (a
// target that stays down, a conflict on every group) does not fill the log while a new cause is
// always written. A line is due when its key differs from the last logged one, or when
// `interval` has passed since the last line; the lines held back meanwhile are counted and
// reported with the next one. Time comes from the injected clock.
//
// Thread safety: thread-safe.
//
// Example:
//   LogLimiter limiter(clock, absl::Seconds(30));
//   if (auto held = limiter.Due(status.ToString())) spdlog::warn("...{}", HeldBackNote(*held));
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/base/clock.h"

namespace ferry {

class LogLimiter {
 public:
  // `clock` must outlive the limiter.
  LogLimiter(Clock* clock, absl::Duration interval) : clock_(clock), interval_(interval) {}

  // nullopt: hold this one back. Otherwise log it, with the number of lines held back since
  // the last one that was logged.
  std::optional<uint64_t> Due(const std::string& key);

 private:
  Clock* const clock_;
  const absl::Duration interval_;
  absl::Mutex mu_;
  std::string last_key_ ABSL_GUARDED_BY(mu_);
  absl::Time last_time_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t held_ ABSL_GUARDED_BY(mu_) = 0;
};

// What ends a line logged after `held` were held back: " (N more like it not logged)", or
// nothing when none were.
std::string HeldBackNote(uint64_t held);

}  // namespace ferry
