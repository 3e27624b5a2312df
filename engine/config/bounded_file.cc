#include "engine/config/bounded_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "engine/config/value_parsers.h"

namespace ferry::config {

absl::Status ReadRegularFile(const std::string& path, size_t limit, std::string* content,
                             FileInfo* info) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; regular files ignore it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open: ", std::generic_category().message(errno)));
  }
  absl::Status status;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    status = absl::InvalidArgumentError(
        absl::StrCat("cannot stat: ", std::generic_category().message(errno)));
  } else if (!S_ISREG(st.st_mode)) {
    status = absl::InvalidArgumentError(S_ISDIR(st.st_mode) ? "is a directory, not a file"
                                                            : "is not a regular file");
  } else if (static_cast<uint64_t>(st.st_size) > limit) {
    status = absl::InvalidArgumentError(
        absl::StrCat("is ", st.st_size, " bytes, over the ", FormatBytes(limit), " limit"));
  } else {
    if (info != nullptr) info->mode = st.st_mode;
    if (content != nullptr) {
      // Read at most limit + 1 bytes: the file may grow between fstat and read.
      content->clear();
      char buffer[16384];
      while (status.ok()) {
        const ssize_t n = ::read(fd, buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          status = absl::InvalidArgumentError(
              absl::StrCat("cannot read: ", std::generic_category().message(errno)));
        } else if (n == 0) {
          break;
        } else {
          content->append(buffer, static_cast<size_t>(n));
          if (content->size() > limit) {
            status = absl::InvalidArgumentError(
                absl::StrCat("is over the ", FormatBytes(limit), " limit"));
          }
        }
      }
    }
  }
  ::close(fd);
  return status;
}

}  // namespace ferry::config
