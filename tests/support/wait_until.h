// WaitUntil: polls a condition a test waits for (a state it can read, never a sleep standing in
// for synchronisation) until it holds or a timeout passes. Header-only, so that the test
// libraries that do not link ferry::testing (the stream's) can use it too.
//
// Example:
//   ASSERT_TRUE(ferry::testing::WaitUntil([&] { return shipper->status().connected; }));
#pragma once

#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ferry::testing {

// Polls `done` every `interval` until it returns true (true), or until `timeout` has passed
// (false).
inline bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(30),
                      absl::Duration interval = absl::Milliseconds(5)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(interval);
  }
  return true;
}

}  // namespace ferry::testing
