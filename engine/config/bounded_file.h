// Reading the small files a config names (the config itself, secret files, TLS files) with a
// size cap, without following a FIFO into a hang and without trusting the size fstat reports.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "absl/status/status.h"

namespace ferry::config {

struct FileInfo {
  mode_t mode = 0;  // st_mode of the file that was read
};

// Opens `path`, which must be a regular file of at most `limit` bytes, and when `content` is not
// null reads it into *content; when `info` is not null fills it. On failure returns
// kInvalidArgument whose message is only the reason ("cannot open: No such file or directory",
// "is a directory, not a file", "is 2000000 bytes, over the 1MiB limit"), for the caller to
// prefix with the file's role and name.
[[nodiscard]] absl::Status ReadRegularFile(const std::string& path, size_t limit,
                                           std::string* content, FileInfo* info);

}  // namespace ferry::config
