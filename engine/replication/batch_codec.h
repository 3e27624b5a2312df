// The batch codec of the replication stream: log records <-> ferry.v1.Batch (proto/replication.md).
//
// EncodeBatch serializes records as a ferry.v1.RecordList, checksums it (XXH3_64bits) and
// compresses it with zstd when asked. DecodeBatch checks everything a peer could get wrong or
// forge before a single record is accepted: the declared size against a limit (zstd bombs), the
// actual decompressed size, the checksum, the count and every record's kind and size.
//
// Example:
//   BatchEncoder encoder(/*zstd_level=*/3);
//   FERRY_ASSIGN_OR_RETURN(ferry::v1::Batch batch, encoder.Encode(records));
//   ...
//   FERRY_ASSIGN_OR_RETURN(DecodedBatch decoded, DecodeBatch(batch, limits));
//   // decoded.records[i].bytes() is valid while decoded.content lives
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/log/durable_log.h"
#include "proto/replication.pb.h"

namespace ferry::replication {

// Compresses batches. Not thread-safe: one encoder per sending thread (it reuses a zstd context).
class BatchEncoder {
 public:
  // zstd_level 0: no compression; otherwise a zstd level (1..19, larger values are clamped).
  explicit BatchEncoder(int zstd_level);
  ~BatchEncoder();
  BatchEncoder(const BatchEncoder&) = delete;
  BatchEncoder& operator=(const BatchEncoder&) = delete;

  // `records` must be non-empty and contiguous. kInternal when zstd fails.
  [[nodiscard]] absl::StatusOr<ferry::v1::Batch> Encode(const std::vector<LogRecord>& records);

 private:
  struct ZstdContext;
  const int level_;
  std::unique_ptr<ZstdContext> ctx_;
};

struct DecodeLimits {
  // A batch whose uncompressed content is (or claims to be) larger is refused.
  size_t max_uncompressed_bytes = size_t{64} << 20;
  // A record whose payload is larger is refused (the inbound log's max_record_bytes).
  size_t max_record_bytes = size_t{64} << 20;
};

// A decoded batch. Its records borrow their bytes (NewRecord::borrowed) from `content`, the
// batch's uncompressed RecordList, which moves with it: they stay valid as long as it lives.
// Records protobuf had to parse (framing the batch encoder does not write) own their payloads.
struct DecodedBatch {
  std::unique_ptr<const std::string> content;
  std::vector<NewRecord> records;
};

// Decodes and verifies a batch. Errors name the cause and the batch's first_seq:
// kInvalidArgument for a malformed batch (count, size limit, unknown kind or compression),
// kDataLoss for bytes that fail the checksum or do not decompress. Accepts and refuses exactly
// what protobuf's parse of the RecordList does, and gives the same records. Thread-safe.
[[nodiscard]] absl::StatusOr<DecodedBatch> DecodeBatch(const ferry::v1::Batch& batch,
                                                       const DecodeLimits& limits);

// XXH3_64bits, as the batch checksum uses it.
uint64_t BatchChecksum(const void* data, size_t size);

}  // namespace ferry::replication
