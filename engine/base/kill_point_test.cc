// KillPoint: a process armed with FERRY_KILL_POINT dies by SIGKILL exactly at the configured pass
// of the named point, and never at another point or an earlier pass.
#include "engine/base/kill_point.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

namespace ferry {
namespace {

// Each death test runs in a fresh child ("threadsafe" style re-executes the binary), so the
// variable set in the statement is what the child's first KillPoint call reads.
class KillPointDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(KillPointDeathTest, DiesAtTheNthPassOfTheNamedPoint) {
  EXPECT_EXIT(
      {
        setenv("FERRY_KILL_POINT", "test.step@3", 1);
        KillPoint("test.step");
        KillPoint("test.other");
        KillPoint("test.step");
        fprintf(stderr, "passed twice\n");
        KillPoint("test.step");
        fprintf(stderr, "survived the third pass\n");
        exit(0);
      },
      ::testing::KilledBySignal(SIGKILL), "passed twice\nferry: kill point test.step@3 reached");
}

TEST_F(KillPointDeathTest, WithoutCountDiesAtTheFirstPass) {
  EXPECT_EXIT(
      {
        setenv("FERRY_KILL_POINT", "test.step", 1);
        KillPoint("test.step");
        exit(0);
      },
      ::testing::KilledBySignal(SIGKILL), "kill point test.step@1 reached");
}

TEST_F(KillPointDeathTest, OtherPointsAndMalformedSpecsNeverKill) {
  EXPECT_EXIT(
      {
        setenv("FERRY_KILL_POINT", "test.step@0", 1);  // malformed: N >= 1
        for (int i = 0; i < 5; ++i) KillPoint("test.step");
        exit(7);
      },
      ::testing::ExitedWithCode(7), "is not NAME or NAME@N");
  EXPECT_EXIT(
      {
        setenv("FERRY_KILL_POINT", "test.step@2", 1);
        for (int i = 0; i < 5; ++i) KillPoint("test.elsewhere");
        KillPoint("test.step");
        exit(7);
      },
      ::testing::ExitedWithCode(7), "");
}

TEST(KillPointTest, UnarmedProcessPassesFreely) {
  // This process has no FERRY_KILL_POINT (CTest does not set it).
  ASSERT_EQ(getenv("FERRY_KILL_POINT"), nullptr);
  for (int i = 0; i < 1000; ++i) KillPoint("apply.group_committed");
  SUCCEED();
}

}  // namespace
}  // namespace ferry
