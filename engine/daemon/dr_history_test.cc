// DrHistory: the last change of direction and the last verify survive reopening the log (a
// restart), and a value that does not parse is ignored rather than shown or fatal.
#include "engine/daemon/dr_history.h"

#include <gtest/gtest.h>

#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

TEST(DrHistoryTest, EventsSurviveAReopen) {
  ::ferry::testing::TempDir dir("ferry-dr-history");
  {
    auto log = DurableLog::Open({.path = dir.File("log")});
    ASSERT_TRUE(log.ok()) << log.status();
    DrHistory history(log->get());
    history.Load();
    EXPECT_EQ(history.last_change().kind(), "");  // none yet
    v1::DrEvent change;
    change.set_kind("switchover");
    change.set_operation("reverse-2-0000beef");
    change.set_duration_seconds(0.75);
    change.set_epoch(3);
    history.RecordChange(change);
    v1::VerifyOutcome verify;
    verify.set_result("different");
    verify.set_differences(4);
    verify.set_remaining(4);
    history.RecordVerify(verify);
    EXPECT_EQ(history.last_change().operation(), "reverse-2-0000beef");
  }
  auto log = DurableLog::Open({.path = dir.File("log")});
  ASSERT_TRUE(log.ok()) << log.status();
  DrHistory again(log->get());
  again.Load();
  EXPECT_EQ(again.last_change().kind(), "switchover");
  EXPECT_EQ(again.last_change().epoch(), 3u);
  EXPECT_DOUBLE_EQ(again.last_change().duration_seconds(), 0.75);
  EXPECT_EQ(again.last_verify().result(), "different");
  EXPECT_EQ(again.last_verify().remaining(), 4u);
}

TEST(DrHistoryTest, AValueThatDoesNotParseIsIgnored) {
  ::ferry::testing::TempDir dir("ferry-dr-history");
  auto log = DurableLog::Open({.path = dir.File("log")});
  ASSERT_TRUE(log.ok()) << log.status();
  AppendRequest garbage;
  garbage.state.emplace_back(kDrLastChangeState, std::string("\xff\xff\xff\x01", 4));
  ASSERT_TRUE((*log)->Append(std::move(garbage)).ok());
  DrHistory history(log->get());
  history.Load();
  EXPECT_EQ(history.last_change().kind(), "");
}

}  // namespace
}  // namespace ferry
