#include "engine/base/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace ferry {
namespace {

absl::Status ErrnoError(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

absl::Status ReplaceFileContents(const std::string& path, absl::string_view text) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return ErrnoError(absl::StrCat("create ", tmp));
  // write() may take part of the text (a disk filling up): go on until all of it is written or
  // it fails (a full disk then says ENOSPC).
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = ErrnoError(absl::StrCat("write ", tmp));
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    absl::Status s = ErrnoError(absl::StrCat("fsync ", tmp));
    ::close(fd);
    return s;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError(absl::StrCat("rename ", tmp));
  return absl::OkStatus();
}

absl::Status SyncParentDirectory(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return ErrnoError(absl::StrCat("open ", dir));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoError(absl::StrCat("fsync ", dir));
  return absl::OkStatus();
}

}  // namespace ferry
