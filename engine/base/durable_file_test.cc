// ReplaceFileContents and SyncParentDirectory on real file systems: a replacement is whole, and
// one that cannot be written (a full disk, a missing directory) fails with kUnavailable and
// leaves the old content in place.
#include "engine/base/durable_file.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/small_filesystem.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

std::string Contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(DurableFileTest, ReplacesTheContentWhole) {
  testing::TempDir dir("ferry-durable-file-test");
  const std::string path = dir.File("state");
  ASSERT_TRUE(ReplaceFileContents(path, "first\n").ok());
  ASSERT_TRUE(SyncParentDirectory(path).ok());
  EXPECT_EQ(Contents(path), "first\n");
  ASSERT_TRUE(ReplaceFileContents(path, "second, longer\n").ok());
  EXPECT_EQ(Contents(path), "second, longer\n");
  ASSERT_TRUE(ReplaceFileContents(path, "").ok());
  EXPECT_EQ(Contents(path), "");
}

TEST(DurableFileTest, AMissingDirectoryIsUnavailable) {
  testing::TempDir dir("ferry-durable-file-test");
  const std::string path = dir.File("gone/state");
  EXPECT_EQ(ReplaceFileContents(path, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(SyncParentDirectory(path).code(), absl::StatusCode::kUnavailable);
}

TEST(DurableFileTest, AFullDiskLeavesTheOldContent) {
  auto fs = testing::SmallFilesystem::Create(1 << 20);
  if (!fs.ok()) GTEST_SKIP() << fs.status();
  const std::string path = (*fs)->path() + "/state";
  ASSERT_TRUE(ReplaceFileContents(path, "old\n").ok());
  ASSERT_TRUE((*fs)->Fill("ballast", 0).ok());
  const absl::Status s = ReplaceFileContents(path, std::string(256 << 10, 'n'));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find(std::strerror(ENOSPC)), std::string::npos) << s;
  EXPECT_EQ(Contents(path), "old\n");
}

}  // namespace
}  // namespace ferry
