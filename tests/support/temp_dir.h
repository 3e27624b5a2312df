// TempDir: a fresh directory under /tmp (or another parent) for the life of a test object.
//
// The destructor removes the directory and everything in it, unless the current test has
// failed (::testing::Test::HasFailure()): then the directory is kept for inspection and its
// path is printed to stderr.
//
// Example:
//   TempDir dir("ferry-log");
//   auto log = Log::Open(dir.File("log"));
#pragma once

#include <string>
#include <string_view>

namespace ferry::testing {

class TempDir {
 public:
  // Creates PARENT/PREFIX-XXXXXX (mode 0700). Creating a directory in /tmp is not expected to
  // fail on a test machine, so a failure aborts the process with a message (also when `parent`
  // does not exist).
  explicit TempDir(std::string_view prefix = "ferry-test", std::string_view parent = "/tmp");
  ~TempDir();

  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Absolute path, without a trailing slash.
  const std::string& path() const { return path_; }
  // path() + "/" + name; creates nothing.
  std::string File(std::string_view name) const;
  // Writes `content` to File(name) with permission bits `mode`; returns that path. Aborts the
  // test process with a message when the file cannot be written (as the constructor does).
  std::string Write(std::string_view name, std::string_view content, unsigned mode = 0600) const;
  // Keep the directory even when the test passes (for debugging).
  void Keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

}  // namespace ferry::testing
