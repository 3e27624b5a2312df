// DataDirLock: a second holder of the same data_dir is refused with a message that says so and
// names the holder; the lock is free again once released.
#include "engine/daemon/data_dir_lock.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

TEST(DataDirLockTest, SecondHolderIsRefusedByName) {
  ::ferry::testing::TempDir dir("ferry-lock-test");
  const std::string data_dir = dir.File("data");
  {
    auto first = DataDirLock::Acquire(data_dir);
    ASSERT_TRUE(first.ok()) << first.status();
    // flock is per open file description: a second open in this process conflicts as another
    // process would.
    auto second = DataDirLock::Acquire(data_dir);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(second.status().message().find("is in use by another ferryd"), std::string::npos)
        << second.status();
    EXPECT_NE(second.status().message().find(absl::StrCat("pid ", getpid())), std::string::npos)
        << second.status();
  }
  EXPECT_TRUE(DataDirLock::Acquire(data_dir).ok());  // released with the first holder
}

}  // namespace
}  // namespace ferry
