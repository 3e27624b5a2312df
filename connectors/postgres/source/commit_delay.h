// CommitDelay: when the capture appends what it has read (postgres.commit_delay_us and
// postgres.commit_siblings, docs/config.md). Every durable append of the outbound log is one
// fdatasync, one stream frame, one synced append on the peer and usually one apply group, so
// under load the capture waits a little for more transactions to share one append (group
// commit, like Postgres's commit_delay). It waits only when the recent rate of captured
// transactions says that at least `siblings` more are likely to arrive within the delay (like
// Postgres's commit_siblings): at a low rate a transaction is appended as soon as it is read.
//
// The rate is measured over windows of `rate_window`: the transactions captured since the
// window began, divided by its length, taken when the window has run out at a call of AppendAt.
// A quiet spell therefore ends in a window with a low rate, and the first transactions after it
// are not held.
//
// Example (the capture loop; the socket has drained and transactions are pending):
//   const absl::Time at = delay.AppendAt(clock->Now(), assembler.stats().transactions);
//   if (at > clock->Now()) stop.SleepUntil(*clock, at); else { Flush(); delay.Appended(now); }
//
// Not thread-safe: one capture loop owns it.
#pragma once

#include <cstdint>

#include "absl/time/time.h"

namespace ferry::pg {

class CommitDelay {
 public:
  struct Options {
    absl::Duration delay = absl::ZeroDuration();  // 0: never wait
    int siblings = 0;                             // 0: wait whatever the rate
    absl::Duration rate_window = absl::Milliseconds(100);
  };

  explicit CommitDelay(const Options& options) : options_(options) {}

  // The socket drained at `now` with transactions pending; `transactions` is the number captured
  // so far (monotone). Returns when to append them: `now` (or earlier) means at once.
  absl::Time AppendAt(absl::Time now, uint64_t transactions);

  // A durable append happened at `now`.
  void Appended(absl::Time now) { last_append_ = now; }

  // Transactions per second over the last complete window (0 before the first one ends).
  double rate() const { return rate_; }

 private:
  const Options options_;
  absl::Time last_append_ = absl::InfinitePast();
  absl::Time window_start_ = absl::InfinitePast();
  uint64_t window_transactions_ = 0;
  double rate_ = 0;
};

}  // namespace ferry::pg
