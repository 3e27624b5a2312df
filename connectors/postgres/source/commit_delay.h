// CommitDelay: when the capture appends what it has read (postgres.commit_delay_us and
// postgres.commit_siblings, docs/config.md). Every durable append of the outbound log is one
// fdatasync, one stream frame, one synced append on the peer and usually one apply group, so
// under load the capture waits a little for more transactions to share one append (group
// commit, like Postgres's commit_delay). It waits only when the recent rate of captured
// transactions says that at least `siblings` are likely to arrive within the delay (loosely like
// Postgres's commit_siblings, which counts open transactions instead): at a low rate a
// transaction is appended as soon as it is read.
//
// The rate is that of the last completed window: the transactions captured between two calls
// of AppendAt at least `rate_window` apart, divided by the time between them. A quiet spell
// therefore ends in a window with a low rate. The first transaction after a quiet spell longer
// than the delay is never held (the last append is too old); after a shorter one, the previous
// window's rate may still hold a few, each by at most the delay. No transaction waits more than
// the delay from the moment it is read, even if the clock goes back.
//
// `Appended` is told of the appends the capture makes when the socket drains; an append made
// elsewhere (a keepalive that asks for a reply, a full batch) only makes the next wait shorter
// than it could be, never longer.
//
// Example (the capture loop; the socket has drained and transactions are pending):
//   const absl::Time now = clock->Now();
//   const absl::Time at = delay.AppendAt(now, assembler.stats().transactions);
//   if (at > now) { stop.SleepUntil(*clock, at); continue; }  // then read what came meanwhile
//   delay.Appended(now);
//   Flush();
//
// Not thread-safe: one capture loop owns it.
#pragma once

#include <cstdint>

#include "absl/time/time.h"

namespace ferry::pg {

class CommitDelay {
 public:
  struct Options {
    absl::Duration delay = absl::ZeroDuration();           // 0: never wait
    int siblings = 0;                                      // 0: wait whatever the rate
    absl::Duration rate_window = absl::Milliseconds(100);  // shortest window the rate is taken over
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
