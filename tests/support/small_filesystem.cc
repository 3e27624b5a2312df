#include "tests/support/small_filesystem.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"

namespace ferry::testing {
namespace {

// A mount namespace belongs to a thread, not to a process: unshare() moves only its caller,
// and threads started before it (RocksDB's background threads, for one) would not see the
// mount. So the process moves when this file is loaded, before main() and any thread; a test
// binary links this file only when it uses SmallFilesystem.
std::string EnterPrivateMountNamespace() {
  if (::unshare(CLONE_NEWNS) != 0) {
    return absl::StrCat("cannot make a mount namespace (needs root): ", std::strerror(errno));
  }
  if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return absl::StrCat("cannot make the mounts private: ", std::strerror(errno));
  }
  return "";
}

const std::string& NamespaceError() {
  static const std::string* const error = new std::string(EnterPrivateMountNamespace());
  return *error;
}

[[maybe_unused]] const bool kEnteredAtLoad = !NamespaceError().empty();

}  // namespace

absl::StatusOr<std::unique_ptr<SmallFilesystem>> SmallFilesystem::Create(uint64_t bytes) {
  if (!NamespaceError().empty()) return absl::FailedPreconditionError(NamespaceError());
  std::string dir = "/tmp/ferry-smallfs-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp: ", std::strerror(errno)));
  }
  const std::string options = absl::StrCat("size=", bytes, ",mode=0700");
  if (::mount("ferry-test", dir.c_str(), "tmpfs", 0, options.c_str()) != 0) {
    const int err = errno;
    ::rmdir(dir.c_str());
    return absl::FailedPreconditionError(
        absl::StrCat("cannot mount a tmpfs (needs root): ", std::strerror(err)));
  }
  return std::unique_ptr<SmallFilesystem>(new SmallFilesystem(dir));
}

SmallFilesystem::~SmallFilesystem() {
  ::umount2(path_.c_str(), MNT_DETACH);
  ::rmdir(path_.c_str());
}

uint64_t SmallFilesystem::FreeBytes() const {
  struct statvfs st;
  if (::statvfs(path_.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

absl::StatusOr<uint64_t> SmallFilesystem::Fill(std::string_view name, uint64_t leave) const {
  const std::string file = path_ + "/" + std::string(name);
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", file, ": ", std::strerror(errno)));
  const std::vector<char> chunk(4096, 'f');
  while (FreeBytes() > leave) {
    const uint64_t want = std::min<uint64_t>(chunk.size(), FreeBytes() - leave);
    const ssize_t n = ::write(fd, chunk.data(), want);
    if (n <= 0) break;  // ENOSPC: full
  }
  ::fsync(fd);
  const off_t size = ::lseek(fd, 0, SEEK_END);
  ::close(fd);
  return static_cast<uint64_t>(size);
}

absl::Status SmallFilesystem::Remove(std::string_view name) const {
  const std::string file = path_ + "/" + std::string(name);
  if (::unlink(file.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("unlink ", file, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

uint64_t SmallFilesystem::DirectoryBytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      total += static_cast<uint64_t>(st.st_blocks) * 512;  // allocated, preallocation included
    }
  }
  return total;
}

}  // namespace ferry::testing
