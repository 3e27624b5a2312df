#include "tests/support/temp_dir.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "gtest/gtest.h"

namespace ferry::testing {

TempDir::TempDir(std::string_view prefix, std::string_view parent) {
  std::string pattern = std::string(parent) + "/" + std::string(prefix) + "-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    std::fprintf(stderr, "TempDir: mkdtemp(%s): %s\n", pattern.c_str(), std::strerror(errno));
    std::abort();
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  if (keep_ || ::testing::Test::HasFailure()) {
    std::fprintf(stderr, "TempDir: keeping %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  if (ec) std::fprintf(stderr, "TempDir: removing %s: %s\n", path_.c_str(), ec.message().c_str());
}

std::string TempDir::File(std::string_view name) const { return path_ + "/" + std::string(name); }

std::string TempDir::Write(std::string_view name, std::string_view content, unsigned mode) const {
  const std::string path = File(name);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(content.data(), 1, content.size(), f) != content.size() ||
      std::fclose(f) != 0 || ::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
    std::fprintf(stderr, "TempDir: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
    std::abort();
  }
  return path;
}

}  // namespace ferry::testing
