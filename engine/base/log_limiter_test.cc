// LogLimiter on a clock the test advances: a new cause is always due, a repeated one only after
// the interval, and the held-back count is reported with the next line.
#include "engine/base/log_limiter.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(LogLimiterTest, NewCausesAreDueRepeatsOnlyAfterTheInterval) {
  ManualClock clock(absl::FromUnixSeconds(100));
  LogLimiter limiter(&clock, absl::Seconds(30));
  EXPECT_EQ(limiter.Due("target down"), std::optional<uint64_t>(0));
  EXPECT_EQ(limiter.Due("target down"), std::nullopt);
  clock.Advance(absl::Seconds(10));
  EXPECT_EQ(limiter.Due("target down"), std::nullopt);
  EXPECT_EQ(limiter.Due("deadlock"), std::optional<uint64_t>(2));  // a new cause, at once
  EXPECT_EQ(limiter.Due("deadlock"), std::nullopt);
  clock.Advance(absl::Seconds(30));
  EXPECT_EQ(limiter.Due("deadlock"), std::optional<uint64_t>(1));  // the interval passed
  EXPECT_EQ(limiter.Due("target down"), std::optional<uint64_t>(0));
}

TEST(LogLimiterTest, TheNoteSaysHowManyWereHeldBackAndIsEmptyForNone) {
  EXPECT_EQ(HeldBackNote(0), "");
  EXPECT_EQ(HeldBackNote(1), " (1 more like it not logged)");
  EXPECT_EQ(HeldBackNote(12), " (12 more like it not logged)");
}

}  // namespace
}  // namespace ferry
