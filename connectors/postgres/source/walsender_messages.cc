#include "connectors/postgres/source/walsender_messages.h"

#include "absl/strings/str_format.h"
#include "connectors/postgres/common/lsn.h"

namespace ferry::pg {
namespace {

uint64_t ReadU64(absl::string_view b, size_t at) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(b[at + i]);
  return v;
}

void AppendU64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

constexpr size_t kXLogDataHeader = 1 + 8 + 8 + 8;
constexpr size_t kKeepaliveSize = 1 + 8 + 8 + 1;

}  // namespace

absl::StatusOr<WalSenderMessage> DecodeWalSenderMessage(absl::string_view b) {
  if (b.empty()) return absl::DataLossError("empty replication CopyData message at offset 0");
  switch (b[0]) {
    case 'w': {
      if (b.size() < kXLogDataHeader) {
        return absl::DataLossError(absl::StrFormat(
            "truncated XLogData ('w') message: header needs %d bytes, got %d (offset %d)",
            kXLogDataHeader, b.size(), b.size()));
      }
      XLogData d;
      d.start_lsn = ReadU64(b, 1);
      d.wal_end = ReadU64(b, 9);
      d.send_time_us = static_cast<int64_t>(ReadU64(b, 17)) + kPostgresEpochUnixMicros;
      d.payload = b.substr(kXLogDataHeader);
      return d;
    }
    case 'k': {
      if (b.size() != kKeepaliveSize) {
        return absl::DataLossError(absl::StrFormat(
            "malformed primary keepalive ('k') message: %d bytes instead of %d (offset %d)",
            b.size(), kKeepaliveSize, std::min(b.size(), kKeepaliveSize)));
      }
      PrimaryKeepalive k;
      k.wal_end = ReadU64(b, 1);
      k.send_time_us = static_cast<int64_t>(ReadU64(b, 9)) + kPostgresEpochUnixMicros;
      k.reply_requested = b[17] != 0;
      return k;
    }
    default:
      return absl::DataLossError(
          absl::StrFormat("unknown replication CopyData message kind 0x%02x at offset 0",
                          static_cast<uint8_t>(b[0])));
  }
}

std::string EncodeStandbyStatusUpdate(uint64_t written, uint64_t flushed, uint64_t applied,
                                      int64_t now_unix_us, bool reply_requested) {
  std::string out;
  out.reserve(34);
  out.push_back('r');
  AppendU64(&out, written);
  AppendU64(&out, flushed);
  AppendU64(&out, applied);
  AppendU64(&out, static_cast<uint64_t>(now_unix_us - kPostgresEpochUnixMicros));
  out.push_back(reply_requested ? 1 : 0);
  return out;
}

}  // namespace ferry::pg
