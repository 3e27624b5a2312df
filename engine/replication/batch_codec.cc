#include "engine/replication/batch_codec.h"

#include <zstd.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "absl/strings/str_cat.h"
#include "engine/log/log_format.h"

namespace ferry::replication {

struct BatchEncoder::ZstdContext {
  ZSTD_CCtx* cctx = nullptr;
  // Reused output buffer, sized to the compress bound once: a fresh string per batch was
  // zero-filled (and page-faulted in) for every batch, which dominated the shipper's CPU.
  std::vector<char> scratch;
  ~ZstdContext() { ZSTD_freeCCtx(cctx); }
};

BatchEncoder::BatchEncoder(int zstd_level)
    : level_(std::clamp(zstd_level, 0, ZSTD_maxCLevel())), ctx_(std::make_unique<ZstdContext>()) {
  if (level_ > 0) ctx_->cctx = ZSTD_createCCtx();
}

BatchEncoder::~BatchEncoder() = default;

uint64_t BatchChecksum(const void* data, size_t size) { return XXH3_64bits(data, size); }

absl::StatusOr<ferry::v1::Batch> BatchEncoder::Encode(const std::vector<LogRecord>& records) {
  if (records.empty()) return absl::InvalidArgumentError("cannot encode an empty batch");
  ferry::v1::RecordList list;
  list.mutable_records()->Reserve(static_cast<int>(records.size()));
  for (const LogRecord& r : records) {
    ferry::v1::Record* out = list.add_records();
    out->set_kind(static_cast<uint32_t>(r.kind));
    out->set_payload(r.payload);
  }
  std::string raw;
  if (!list.SerializeToString(&raw)) return absl::InternalError("cannot serialize a RecordList");

  ferry::v1::Batch batch;
  batch.set_first_seq(records.front().seq);
  batch.set_count(static_cast<uint32_t>(records.size()));
  batch.set_uncompressed_size(raw.size());
  batch.set_checksum(BatchChecksum(raw.data(), raw.size()));
  if (level_ == 0 || ctx_->cctx == nullptr) {
    batch.set_compression(ferry::v1::COMPRESSION_NONE);
    batch.set_blob(std::move(raw));
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
