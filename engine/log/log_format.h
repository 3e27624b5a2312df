// Constants of the durable log's on-disk format. The prose spec is log_format.md beside this
// file; the two change together.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ferry {

// The kinds of records; the numbers are the RecordKind enum of proto/change.proto.
enum class RecordKind : uint8_t {
  kUnspecified = 0,
  kTransaction = 1,   // payload: ferry.v1.Transaction (one fragment)
  kHeartbeat = 2,     // payload: ferry.v1.Heartbeat
  kSnapshotRows = 3,  // payload: ferry.v1.Transaction of snapshot INSERTs
  kSourceEvent = 4,   // payload: ferry.v1.SourceEvent (not a transaction; e.g. an object event)
};

namespace log_format {

// Version of the record envelope. A reader refuses records with a larger version.
inline constexpr uint8_t kFormatVersion = 1;
inline constexpr size_t kHeaderSize = 16;
inline constexpr uint8_t kMaxKind = 4;

// Column families of the RocksDB database.
inline constexpr char kRecordsFamily[] = "records";
inline constexpr char kMetaFamily[] = "meta";
// Keys in the meta family.
inline constexpr char kFormatKey[] = "format_version";
inline constexpr char kTrimmedBelowKey[] = "trimmed_below";
inline constexpr char kCursorPrefix[] = "cursor/";
inline constexpr char kStatePrefix[] = "state/";

// The record key: the sequence number as 8 big-endian bytes, so keys sort by sequence.
std::string EncodeKey(uint64_t seq);
// kDataLoss when the key is not 8 bytes.
absl::StatusOr<uint64_t> DecodeKey(std::string_view key);

// The record value: header then payload (see log_format.md).
std::string EncodeRecord(uint64_t seq, RecordKind kind, std::string_view payload);
// The header alone, for writers that store header and payload without joining them first.
std::array<char, kHeaderSize> EncodeHeader(uint64_t seq, RecordKind kind, std::string_view payload);

struct DecodedRecord {
  RecordKind kind;
  std::string_view payload;  // points into the value passed to DecodeRecord
};
// kDataLoss when the value is truncated, its checksum does not match (for this seq) or the
// kind is unknown; kFailedPrecondition when its version is newer than this build reads.
absl::StatusOr<DecodedRecord> DecodeRecord(uint64_t seq, std::string_view value);

std::string EncodeU64(uint64_t v);
absl::StatusOr<uint64_t> DecodeU64(std::string_view bytes);

}  // namespace log_format
}  // namespace ferry
