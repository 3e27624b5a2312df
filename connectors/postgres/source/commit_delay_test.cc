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

// The count is the source's, which starts again from zero when the capture restarts: a count
// below the window's start begins a new window instead of a huge rate.
TEST(CommitDelayTest, ACountThatGoesBackStartsANewWindow) {
  CommitDelay delay({.delay = absl::Milliseconds(6), .siblings = 4});
  absl::Time now = kStart;
  uint64_t count = 1'000'000;
  Steady(delay, &now, &count, 40, absl::Milliseconds(200));
  now += absl::Milliseconds(150);
  EXPECT_EQ(delay.AppendAt(now, 3), now);
  now += absl::Milliseconds(150);
  EXPECT_EQ(delay.AppendAt(now, 4), now);
  EXPECT_NEAR(delay.rate(), 1 / 0.15, 0.1);
}

}  // namespace
}  // namespace ferry::pg
