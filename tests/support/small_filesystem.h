// SmallFilesystem: a real file system of a fixed, small size for tests of a full disk.
//
// A tmpfs of `bytes` mounted on a fresh directory under /tmp, in a mount namespace of the test
// process's own (a binary that links small_filesystem.cc calls unshare(CLONE_NEWNS) when it is
// loaded, before any thread exists, and makes every mount private), so the mount is invisible
// to the rest of the machine and disappears with the process even when a test crashes. Child
// processes the test starts inherit the namespace.
// Mounting needs root (CAP_SYS_ADMIN): Create() fails with kFailedPrecondition otherwise, and a
// test then skips with that message (GTEST_SKIP), never pretending it ran.
//
// Example:
//   auto fs = SmallFilesystem::Create(16 << 20);
//   if (!fs.ok()) GTEST_SKIP() << fs.status();
//   auto log = DurableLog::Open({.path = (*fs)->path() + "/log"});
//   ASSERT_TRUE((*fs)->Fill("ballast", 0).ok());   // take every free byte
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ferry::testing {

class SmallFilesystem {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SmallFilesystem>> Create(uint64_t bytes);
  ~SmallFilesystem();  // unmounts and removes the directory
  SmallFilesystem(const SmallFilesystem&) = delete;
  SmallFilesystem& operator=(const SmallFilesystem&) = delete;

  // The mount point, without a trailing slash.
  const std::string& path() const { return path_; }
  // Bytes an unprivileged writer can still write (statvfs f_bavail * f_frsize).
  uint64_t FreeBytes() const;
  // Grows the file `name` (under path()) until at most `leave` bytes are free, or the disk is
  // full. Returns the file's size.
  [[nodiscard]] absl::StatusOr<uint64_t> Fill(std::string_view name, uint64_t leave) const;
  // Removes the file `name`, freeing its space.
  [[nodiscard]] absl::Status Remove(std::string_view name) const;
  // Bytes allocated to the regular files under `dir` (recursively, preallocated blocks
  // included): what the directory occupies on its file system.
  static uint64_t DirectoryBytes(const std::string& dir);

 private:
  explicit SmallFilesystem(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace ferry::testing
