// The streaming replication protocol's CopyData messages around pgoutput (Postgres manual,
// "Streaming Replication Protocol"). Pure encode/decode, big-endian.
//
//   server -> client  'w' XLogData:        Int64 start LSN, Int64 server WAL end,
//                                          Int64 send time, Byte[n] payload (one pgoutput message)
//   server -> client  'k' Primary keepalive: Int64 server WAL end, Int64 send time,
//                                          Byte1 reply requested (1 = reply now)
//   client -> server  'r' Standby status:  Int64 written+1, Int64 flushed+1, Int64 applied+1,
//                                          Int64 send time, Byte1 reply requested
// Times are microseconds since 2000-01-01 UTC on the wire; these functions take and return Unix
// microseconds.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::pg {

struct XLogData {
  uint64_t start_lsn = 0;
  uint64_t wal_end = 0;
  int64_t send_time_us = 0;
  absl::string_view payload;  // points into the decoded buffer
};

struct PrimaryKeepalive {
  uint64_t wal_end = 0;
  int64_t send_time_us = 0;
  bool reply_requested = false;
};

using WalSenderMessage = std::variant<XLogData, PrimaryKeepalive>;

// kDataLoss for an unknown kind or a wrong length, naming the kind and the offset.
[[nodiscard]] absl::StatusOr<WalSenderMessage> DecodeWalSenderMessage(absl::string_view copy_data);

// The 'r' message. Postgres reads the three positions as "up to and including"; callers pass
// the positions themselves (the flush position Ferry reports is the captured position).
std::string EncodeStandbyStatusUpdate(uint64_t written, uint64_t flushed, uint64_t applied,
                                      int64_t now_unix_us, bool reply_requested);

}  // namespace ferry::pg
