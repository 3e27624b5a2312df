// DataDirLock: one ferryd per data_dir. Held (flock on data_dir/ferryd.lock, with the holder's
// pid written in it) from start to exit; the kernel releases it when the process dies, SIGKILL
// included, so a crash never leaves a stale lock behind.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(DataDirLock lock, DataDirLock::Acquire(config.data_dir));
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace ferry {

class DataDirLock {
 public:
  // Creates data_dir when missing and takes the lock. kFailedPrecondition when another process
  // holds it (the message names the data_dir and that process' pid); kUnavailable when the
  // lock file cannot be opened.
  [[nodiscard]] static absl::StatusOr<DataDirLock> Acquire(const std::string& data_dir);

  DataDirLock(DataDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  DataDirLock& operator=(DataDirLock&& other) noexcept;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  ~DataDirLock();  // releases

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace ferry
