#include "engine/replication/batch_codec.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "absl/strings/str_cat.h"
#include "engine/log/log_format.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace ferry::replication {

struct BatchEncoder::ZstdContext {
  ZSTD_CCtx* cctx = nullptr;
  // Reused buffers: the serialized RecordList and the compressed blob. A fresh string per batch
  // was zero-filled (and page-faulted in) for every batch, which dominated the shipper's CPU.
  std::string raw;
  std::vector<char> scratch;
  ~ZstdContext() { ZSTD_freeCCtx(cctx); }
};

BatchEncoder::BatchEncoder(int zstd_level)
    : level_(std::clamp(zstd_level, 0, ZSTD_maxCLevel())), ctx_(std::make_unique<ZstdContext>()) {
  if (level_ > 0) ctx_->cctx = ZSTD_createCCtx();
}

BatchEncoder::~BatchEncoder() = default;

uint64_t BatchChecksum(const void* data, size_t size) { return XXH3_64bits(data, size); }

namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedOutputStream;

// Tags of the two messages the blob is made of (proto/replication.proto).
constexpr uint32_t kListRecordsTag =
    WireFormatLite::MakeTag(1, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
constexpr uint32_t kRecordKindTag = WireFormatLite::MakeTag(1, WireFormatLite::WIRETYPE_VARINT);
constexpr uint32_t kRecordPayloadTag =
    WireFormatLite::MakeTag(2, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);

// The size of one Record as protobuf serializes it (zero kind and empty payload omitted).
size_t RecordSize(const LogRecord& r) {
  const uint32_t kind = static_cast<uint32_t>(r.kind);
  size_t n = 0;
  if (kind != 0) n += 1 + CodedOutputStream::VarintSize32(kind);
  if (!r.payload.empty()) {
    n += 1 + CodedOutputStream::VarintSize64(r.payload.size()) + r.payload.size();
  }
  return n;
}

// Writes the RecordList of `records` into `out` (resized to fit): the bytes protobuf would
// write for it, each payload copied once, with no Record message built on the way.
void SerializeRecordList(const std::vector<LogRecord>& records, std::string* out) {
  size_t total = 0;
  for (const LogRecord& r : records) {
    const size_t n = RecordSize(r);
    total += 1 + CodedOutputStream::VarintSize64(n) + n;
  }
  out->resize(total);
  auto* p = reinterpret_cast<uint8_t*>(out->data());
  for (const LogRecord& r : records) {
    p = CodedOutputStream::WriteVarint32ToArray(kListRecordsTag, p);
    p = CodedOutputStream::WriteVarint64ToArray(RecordSize(r), p);
    const uint32_t kind = static_cast<uint32_t>(r.kind);
    if (kind != 0) {
      p = CodedOutputStream::WriteVarint32ToArray(kRecordKindTag, p);
      p = CodedOutputStream::WriteVarint32ToArray(kind, p);
    }
    if (!r.payload.empty()) {
      p = CodedOutputStream::WriteVarint32ToArray(kRecordPayloadTag, p);
      p = CodedOutputStream::WriteVarint64ToArray(r.payload.size(), p);
      std::memcpy(p, r.payload.data(), r.payload.size());
      p += r.payload.size();
    }
  }
}

}  // namespace

absl::StatusOr<ferry::v1::Batch> BatchEncoder::Encode(const std::vector<LogRecord>& records) {
  if (records.empty()) return absl::InvalidArgumentError("cannot encode an empty batch");
  ferry::v1::Batch batch;
  batch.set_first_seq(records.front().seq);
  batch.set_count(static_cast<uint32_t>(records.size()));
  const bool compress = level_ > 0 && ctx_->cctx != nullptr;
  // Uncompressed, the RecordList is written straight into the blob.
  std::string& raw = compress ? ctx_->raw : *batch.mutable_blob();
  SerializeRecordList(records, &raw);
  batch.set_uncompressed_size(raw.size());
  batch.set_checksum(BatchChecksum(raw.data(), raw.size()));
  if (!compress) {
    batch.set_compression(ferry::v1::COMPRESSION_NONE);
    return batch;
  }
  std::vector<char>& out = ctx_->scratch;
  const size_t bound = ZSTD_compressBound(raw.size());
  if (out.size() < bound) out.resize(bound);
  const size_t n =
      ZSTD_compressCCtx(ctx_->cctx, out.data(), out.size(), raw.data(), raw.size(), level_);
  if (ZSTD_isError(n)) {
    return absl::InternalError(absl::StrCat("zstd compression failed: ", ZSTD_getErrorName(n)));
  }
  batch.set_compression(ferry::v1::COMPRESSION_ZSTD);
  batch.set_blob(out.data(), n);
  return batch;
}

namespace {

// One decompression context per thread, reused. ZSTD_decompress makes and frees one per call,
// and making one probes the CPU with `cpuid`, which on a virtual machine exits to the
// hypervisor: measured at 2.3% of a standby ferryd's CPU at 2,000 transactions/s
// (bench/side_by_side/FINDINGS.md). Each ZSTD_decompressDCtx starts a fresh frame.
ZSTD_DCtx* ThreadDecompressionContext() {
  struct Holder {
    ZSTD_DCtx* dctx = ZSTD_createDCtx();
    ~Holder() { ZSTD_freeDCtx(dctx); }
  };
  thread_local Holder holder;
  return holder.dctx;
}

}  // namespace

absl::StatusOr<std::vector<NewRecord>> DecodeBatch(const ferry::v1::Batch& batch,
                                                   const DecodeLimits& limits) {
  const std::string where = absl::StrCat("batch at sequence ", batch.first_seq(), ": ");
  if (batch.count() == 0) return absl::InvalidArgumentError(where + "count is 0");
  if (batch.first_seq() == 0) return absl::InvalidArgumentError(where + "first_seq is 0");
  if (batch.uncompressed_size() > limits.max_uncompressed_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "uncompressed size ", batch.uncompressed_size(),
                     " exceeds the limit of ", limits.max_uncompressed_bytes));
  }
  std::string raw;
  const std::string* content = &batch.blob();
  switch (batch.compression()) {
    case ferry::v1::COMPRESSION_NONE:
      break;
    case ferry::v1::COMPRESSION_ZSTD: {
      // Decompress into exactly the declared size: a frame that expands further fails with
      // "destination buffer is too small" instead of allocating (zstd bomb protection).
      raw.resize(batch.uncompressed_size());
      ZSTD_DCtx* dctx = ThreadDecompressionContext();  // null only when out of memory
      const size_t n =
          dctx != nullptr
              ? ZSTD_decompressDCtx(dctx, raw.data(), raw.size(), batch.blob().data(),
                                    batch.blob().size())
              : ZSTD_decompress(raw.data(), raw.size(), batch.blob().data(), batch.blob().size());
      if (ZSTD_isError(n)) {
        return absl::DataLossError(
            absl::StrCat(where, "zstd decompression failed: ", ZSTD_getErrorName(n)));
      }
      raw.resize(n);
      content = &raw;
      break;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(where, "unknown compression ", static_cast<int>(batch.compression())));
  }
  if (content->size() != batch.uncompressed_size()) {
    return absl::DataLossError(absl::StrCat(where, "content is ", content->size(),
                                            " bytes, the batch declares ",
                                            batch.uncompressed_size()));
  }
  const uint64_t checksum = BatchChecksum(content->data(), content->size());
  if (checksum != batch.checksum()) {
    return absl::DataLossError(absl::StrCat(where, "checksum mismatch (computed ", checksum,
                                            ", the batch declares ", batch.checksum(), ")"));
  }
  // Parsed by protobuf, each payload then moved out: one copy. A hand-written reader was no
  // faster (bench/stream --stage_costs).
  ferry::v1::RecordList list;
  if (!list.ParseFromString(*content)) {
    return absl::DataLossError(where + "content is not a RecordList");
  }
  if (static_cast<uint64_t>(list.records_size()) != batch.count()) {
    return absl::InvalidArgumentError(absl::StrCat(where, "holds ", list.records_size(),
                                                   " records, the batch declares ", batch.count()));
  }
  std::vector<NewRecord> out;
  out.reserve(list.records_size());
  for (int i = 0; i < list.records_size(); ++i) {
    ferry::v1::Record* r = list.mutable_records(i);
    if (r->kind() == 0 || r->kind() > log_format::kMaxKind) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "record ", batch.first_seq() + i, " has unknown kind ", r->kind()));
    }
    if (r->payload().size() > limits.max_record_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "record ", batch.first_seq() + i, " of ", r->payload().size(),
                       " bytes exceeds the limit of ", limits.max_record_bytes));
    }
    out.push_back(NewRecord{static_cast<RecordKind>(r->kind()), std::move(*r->mutable_payload())});
  }
  return out;
}

}  // namespace ferry::replication
