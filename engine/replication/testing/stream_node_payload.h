// The deterministic records of stream_node and its crash test: record `seq` always has this
// kind and payload, so a test can check an inbound log against an oracle without the outbound one.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/log/log_format.h"

namespace ferry::replication {

inline RecordKind StreamNodeKind(uint64_t seq) {
  return seq % 17 == 0 ? RecordKind::kHeartbeat : RecordKind::kTransaction;
}

inline std::string StreamNodePayload(uint64_t seq) {
  std::string payload = absl::StrCat("record-", seq, "-");
  payload.append(static_cast<size_t>((seq * 7919) % 400), static_cast<char>('a' + seq % 26));
  return payload;
}

}  // namespace ferry::replication
