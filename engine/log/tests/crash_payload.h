// The record payloads of the crash test: written by log_crash_writer, checked by crash_test.
// "ROUND:WRITER:COUNTER:INDEX:COUNT:" then `filler` bytes derived from those numbers, so that a
// record with any byte changed or moved does not parse.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ferry::log_testing {

inline std::string CrashPayload(int round, int writer, uint64_t counter, int index, int count,
                                size_t filler) {
  std::string p = absl::StrCat(round, ":", writer, ":", counter, ":", index, ":", count, ":");
  const uint64_t mix = counter * 7919 + static_cast<uint64_t>(round * 131 + writer * 17 + index);
  for (size_t i = 0; i < filler; ++i) p.push_back(static_cast<char>('A' + (mix + i) % 26));
  return p;
}

struct CrashRecord {
  int round = 0, writer = 0;
  uint64_t counter = 0;
  int index = 0, count = 0;
};

// nullopt unless `payload` is exactly what CrashPayload produces for its numbers.
inline std::optional<CrashRecord> ParseCrashPayload(const std::string& payload) {
  std::vector<absl::string_view> parts = absl::StrSplit(payload, absl::MaxSplits(':', 5));
  if (parts.size() != 6) return std::nullopt;
  CrashRecord r;
  if (!absl::SimpleAtoi(parts[0], &r.round) || !absl::SimpleAtoi(parts[1], &r.writer) ||
      !absl::SimpleAtoi(parts[2], &r.counter) || !absl::SimpleAtoi(parts[3], &r.index) ||
      !absl::SimpleAtoi(parts[4], &r.count)) {
    return std::nullopt;
  }
  if (CrashPayload(r.round, r.writer, r.counter, r.index, r.count, parts[5].size()) != payload) {
    return std::nullopt;
  }
  return r;
}

}  // namespace ferry::log_testing
