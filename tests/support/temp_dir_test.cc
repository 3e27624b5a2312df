#include "tests/support/temp_dir.h"

#include <sys/stat.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace ferry::testing {
namespace {

TEST(TempDirTest, MakesAPrivateDirectoryUnderTheParentAndRemovesIt) {
  TempDir parent("ferry-temp-dir-test");
  std::string path;
  {
    TempDir dir("inner", parent.path());
    path = dir.path();
    EXPECT_TRUE(absl::StartsWith(path, parent.path() + "/inner-")) << path;
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    dir.Write("f", "x");
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(TempDirTest, DefaultsToTmp) {
  TempDir dir("ferry-temp-dir-test");
  EXPECT_TRUE(absl::StartsWith(dir.path(), "/tmp/ferry-temp-dir-test-")) << dir.path();
}

TEST(TempDirTest, KeepLeavesTheDirectory) {
  std::string path;
  {
    TempDir dir("ferry-temp-dir-test");
    path = dir.path();
    dir.Keep();
  }
  EXPECT_TRUE(std::filesystem::exists(path));
  std::filesystem::remove_all(path);
}

}  // namespace
}  // namespace ferry::testing
