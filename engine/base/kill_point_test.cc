// KillPoint: a process armed with FERRY_KILL_POINT dies by SIGKILL exactly at the configured pass
// of the named point, and never at another point or an earlier pass. PausePoint: a process armed
// with FERRY_PAUSE_POINT stops at every pass of the named point until a SIGCONT.
#include "engine/base/kill_point.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

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

TEST_F(KillPointDeathTest, APausePointStopsAtEveryPassUntilResumed) {
  EXPECT_EXIT(
      {
        setenv("FERRY_PAUSE_POINT", "test.pause", 1);
        const pid_t paused = fork();
        if (paused == 0) {
          PausePoint("test.elsewhere");  // not armed: passes
          PausePoint("test.pause");
          PausePoint("test.pause");
          _exit(0);
        }
        // The test's side: waitpid reports each stop once; resume it, at most a few times.
        int stops = 0;
        int status = 0;
        while (stops < 5 && waitpid(paused, &status, WUNTRACED) == paused && WIFSTOPPED(status)) {
          ++stops;
          kill(paused, SIGCONT);
        }
        if (stops >= 5) kill(paused, SIGKILL);
        fprintf(stderr, "resumed %d times\n", stops);
        exit(WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0),
      "ferry: pause point test.pause@1 reached\nferry: pause point test.pause@2 reached\n"
      "resumed 2 times");
}

TEST(KillPointTest, UnarmedProcessPassesFreely) {
  // This process has no FERRY_KILL_POINT (CTest does not set it).
  ASSERT_EQ(getenv("FERRY_KILL_POINT"), nullptr);
  ASSERT_EQ(getenv("FERRY_PAUSE_POINT"), nullptr);
  for (int i = 0; i < 1000; ++i) KillPoint("apply.group_committed");
  for (int i = 0; i < 1000; ++i) PausePoint("switchover.marker_applied");
  SUCCEED();
}

}  // namespace
}  // namespace ferry
