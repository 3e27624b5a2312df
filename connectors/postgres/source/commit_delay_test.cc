#include "connectors/postgres/source/commit_delay.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <utility>

namespace ferry::pg {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'000'000);

// Feeds `n` transactions evenly over `length` (one AppendAt per transaction, each followed by an
// append when not held), starting at `*now` with `*count` captured so far.
void Steady(CommitDelay& delay, absl::Time* now, uint64_t* count, int n, absl::Duration length) {
  for (int i = 0; i < n; ++i) {
    *now += length / n;
    ++*count;
    if (delay.AppendAt(*now, *count) <= *now) delay.Appended(*now);
  }
}

TEST(CommitDelayTest, NoDelayNeverWaits) {
  CommitDelay delay({.delay = absl::ZeroDuration(), .siblings = 0});
  delay.Appended(kStart);
  EXPECT_EQ(delay.AppendAt(kStart + absl::Microseconds(10), 1), kStart + absl::Microseconds(10));
  // Not even when the clock went back behind the append.
  EXPECT_EQ(delay.AppendAt(kStart - absl::Seconds(5), 2), kStart - absl::Seconds(5));
}

// A clock that goes back (the wall clock stepped) never stretches a wait past the delay from
// now; without the cap, a step of a minute would hold the transaction (and the status the
// walsender waits for) for a minute and 6 ms.
TEST(CommitDelayTest, AClockThatGoesBackWaitsAtMostTheDelay) {
  CommitDelay delay({.delay = absl::Milliseconds(6), .siblings = 0});
  delay.Appended(kStart);
  const absl::Time back = kStart - absl::Minutes(1);
  EXPECT_EQ(delay.AppendAt(back, 1), back + absl::Milliseconds(6));
}

TEST(CommitDelayTest, WithoutSiblingsItWaitsOutTheDelayAfterAnAppend) {
  CommitDelay delay({.delay = absl::Milliseconds(6), .siblings = 0});
  // Nothing appended yet: at once.
  EXPECT_EQ(delay.AppendAt(kStart, 1), kStart);
  delay.Appended(kStart);
  EXPECT_EQ(delay.AppendAt(kStart + absl::Milliseconds(1), 2), kStart + absl::Milliseconds(6));
  // Past the delay: at once.
  EXPECT_EQ(delay.AppendAt(kStart + absl::Milliseconds(7), 3), kStart + absl::Milliseconds(7));
}

// With a 6 ms delay and 4 siblings: `n` transactions evenly over 200 ms, an append, and one more
// transaction read 0.5 ms later. Returns the measured rate and how long that one is held.
std::pair<double, absl::Duration> AfterSteadyLoad(int n) {
  CommitDelay delay({.delay = absl::Milliseconds(6), .siblings = 4});
  absl::Time now = kStart;
  uint64_t count = 0;
  Steady(delay, &now, &count, n, absl::Milliseconds(200));
  delay.Appended(now);
  const absl::Time next = now + absl::Microseconds(500);
  return {delay.rate(), delay.AppendAt(next, count + 1) - next};
}

// 2,000 transactions a second: 12 expected per delay, more than 4 siblings, so the next one
// waits out the rest of the delay after the append.
TEST(CommitDelayTest, AHighRateWaits) {
  const auto [rate, held] = AfterSteadyLoad(400);
  EXPECT_NEAR(rate, 2000, 50);
  EXPECT_EQ(held, absl::Microseconds(5500));
}

// 300 transactions a second: 1.8 expected per delay, fewer than 4 siblings, so a transaction is
// appended as soon as it is read even moments after the previous append.
TEST(CommitDelayTest, ALowRateDoesNotWait) {
  const auto [rate, held] = AfterSteadyLoad(60);
  EXPECT_NEAR(rate, 300, 20);
  EXPECT_EQ(held, absl::ZeroDuration());
}

// Until a first window has been measured the rate is unknown and nothing is held.
TEST(CommitDelayTest, NothingIsHeldBeforeTheRateIsKnown) {
  CommitDelay delay({.delay = absl::Milliseconds(6), .siblings = 4});
  delay.Appended(kStart);
  EXPECT_EQ(delay.AppendAt(kStart + absl::Microseconds(100), 1000),
            kStart + absl::Microseconds(100));
  EXPECT_EQ(delay.rate(), 0);
}

// A burst, then a minute of quiet: the window that spans the quiet has a low rate, so the first
// transaction after it is not held.
TEST(CommitDelayTest, AQuietSpellEndsTheWaiting) {
  CommitDelay delay({.delay = absl::Milliseconds(6), .siblings = 4});
  absl::Time now = kStart;
  uint64_t count = 0;
  Steady(delay, &now, &count, 400, absl::Milliseconds(200));
  ASSERT_GT(delay.rate(), 1000);
  now += absl::Minutes(1);
  delay.Appended(now - absl::Microseconds(1));  // say, a heartbeat's append
  EXPECT_EQ(delay.AppendAt(now, count + 1), now);
  EXPECT_LT(delay.rate(), 10);
}

// A count below the window's start (the guard for a new source's count) or a time before it (a
// clock that went back) begins a new window and keeps the rate it had, instead of a rate made
// of a wrapped difference or a negative length.
TEST(CommitDelayTest, ACountOrClockThatGoesBackStartsANewWindow) {
  CommitDelay delay({.delay = absl::Milliseconds(6), .siblings = 4});
  absl::Time now = kStart;
  uint64_t count = 1'000'000;
  Steady(delay, &now, &count, 40, absl::Milliseconds(200));
  ASSERT_NEAR(delay.rate(), 200, 20);
  now += absl::Milliseconds(150);
  delay.Appended(now);
  EXPECT_EQ(delay.AppendAt(now + absl::Microseconds(500), 3), now + absl::Microseconds(500));
  EXPECT_NEAR(delay.rate(), 200, 20);
  now += absl::Milliseconds(150);
  EXPECT_EQ(delay.AppendAt(now, 4), now);
  EXPECT_NEAR(delay.rate(), 1 / 0.1495, 0.01);
  // The clock goes back a second: no negative window, the rate stays, and the next window is
  // measured from there (not only once the clock has passed the old window's start again).
  const absl::Time back = now - absl::Seconds(1);
  EXPECT_EQ(delay.AppendAt(back, 5), back);
  EXPECT_NEAR(delay.rate(), 1 / 0.1495, 0.01);
  EXPECT_EQ(delay.AppendAt(back + absl::Milliseconds(100), 25), back + absl::Milliseconds(100));
  EXPECT_NEAR(delay.rate(), 200, 1);
}

}  // namespace
}  // namespace ferry::pg
