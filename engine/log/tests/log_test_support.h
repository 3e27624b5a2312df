// Small helpers shared by the durable log's fault tests: a scratch directory, reading a whole
// log, and a reproducible random seed.
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/log/durable_log.h"

namespace ferry::log_testing {

// A fresh directory under /tmp, removed with everything in it on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = "/tmp/ferry-log-fault-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::cerr << "mkdtemp failed\n";
      abort();
    }
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Every record from first_seq() to next_seq(), read in chunks; fails as Read() fails.
inline absl::StatusOr<std::vector<LogRecord>> ReadAll(const DurableLog& log) {
  std::vector<LogRecord> all;
  uint64_t from = log.first_seq();
  const uint64_t next = log.next_seq();
  while (from < next) {
    auto chunk = log.Read(from, 1000, 4 << 20);
    if (!chunk.ok()) return chunk.status();
    if (chunk->empty()) break;
    from = chunk->back().seq + 1;
    for (auto& r : *chunk) all.push_back(std::move(r));
  }
  return all;
}

// The seed of a randomized test: FERRY_TEST_SEED when set (to replay a failure), otherwise a
// fresh one. Printed either way, so that a failure names what reproduces it.
inline uint64_t TestSeed(const char* test_name) {
  uint64_t seed;
  if (const char* env = getenv("FERRY_TEST_SEED"); env != nullptr && *env != '\0') {
    seed = std::stoull(env);
  } else {
    seed = (uint64_t{std::random_device{}()} << 32) | std::random_device{}();
  }
  std::cout << test_name << ": seed " << seed << " (replay with FERRY_TEST_SEED=" << seed << ")\n";
  return seed;
}

}  // namespace ferry::log_testing
