// Backoff: the one retry schedule of Ferry (the shipper's reconnects, the source's restarts,
// apply's retries of a failed group). Exponential with jitter: attempt k (from 0)
// waits a random duration in [(1 - jitter) * d_k, d_k], where d_k = min(max, min * 2^k).
// Randomness comes from a seedable generator so that tests can check the exact schedule; time is
// not read here at all (the caller sleeps on its injected Clock).
//
// Example:
//   Backoff backoff({.min = absl::Milliseconds(100), .max = absl::Seconds(30)}, /*seed=*/42);
//   clock->SleepUntil(clock->Now() + backoff.Next(), &stop);
//   ... on a healthy connection: backoff.Reset();
#pragma once

#include <cstdint>
#include <random>

#include "absl/time/time.h"

namespace ferry {

struct BackoffOptions {
  absl::Duration min = absl::Milliseconds(100);
  absl::Duration max = absl::Seconds(30);
  // Fraction of each delay that is random, in [0, 1]: 0 waits exactly d_k, 1 waits U[0, d_k].
  double jitter = 0.5;
};

// Not thread-safe: owned by the one thread that retries.
class Backoff {
 public:
  Backoff(const BackoffOptions& options, uint64_t seed);

  // The delay before the next attempt; advances the schedule.
  absl::Duration Next();
  // Back to the first step (after a connection that reached the handshake).
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  const BackoffOptions options_;
  std::mt19937_64 rng_;
  int attempt_ = 0;
};

}  // namespace ferry
