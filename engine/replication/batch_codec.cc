#include "engine/replication/batch_codec.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "absl/strings/str_cat.h"
#include "engine/base/zstd_context.h"
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
using google::protobuf::io::CodedInputStream;
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

// Splits a RecordList in the batch encoder's framing (each Record: its kind if not 0, then its
// payload if not empty, nothing else; every varint minimal and under 2^28) into records
// borrowing their payloads from `content`. False for any other framing, which is left to
// protobuf: the canonical encoding has one parse, so every input this accepts gives protobuf's
// records. A kind the log does not have is left to protobuf too (it is refused there, by value).
bool SplitCanonicalRecordList(std::string_view content, std::vector<NewRecord>* out) {
  CodedInputStream in(reinterpret_cast<const uint8_t*>(content.data()),
                      static_cast<int>(content.size()));
  const auto position = [&in] { return static_cast<size_t>(in.CurrentPosition()); };
  const auto read_canonical = [&in, &position](uint32_t* value) {
    const size_t at = position();
    if (!in.ReadVarint32(value)) return false;
    const size_t n = position() - at;
    return n <= 4 && n == CodedOutputStream::VarintSize32(*value);
  };
  while (position() < content.size()) {
    uint32_t length = 0;
    if (!in.ExpectTag(kListRecordsTag) || !read_canonical(&length) ||
        length > content.size() - position()) {
      return false;
    }
    const size_t end = position() + length;
    NewRecord record;
    if (position() < end && in.ExpectTag(kRecordKindTag)) {
      uint32_t kind = 0;
      if (!read_canonical(&kind) || kind == 0 || kind > log_format::kMaxKind) return false;
      record.kind = static_cast<RecordKind>(kind);
    }
    record.borrowed = content.substr(position(), 0);
    if (position() < end && in.ExpectTag(kRecordPayloadTag)) {
      uint32_t size = 0;
      if (!read_canonical(&size) || size == 0 || position() + size != end) return false;
      record.borrowed = content.substr(position(), size);
      in.Skip(static_cast<int>(size));
    }
    if (position() != end) return false;
    out->push_back(std::move(record));
  }
  return true;
}

}  // namespace

absl::StatusOr<DecodedBatch> DecodeBatch(const ferry::v1::Batch& batch,
                                         const DecodeLimits& limits) {
  const std::string where = absl::StrCat("batch at sequence ", batch.first_seq(), ": ");
  if (batch.count() == 0) return absl::InvalidArgumentError(where + "count is 0");
  if (batch.first_seq() == 0) return absl::InvalidArgumentError(where + "first_seq is 0");
  if (batch.uncompressed_size() > limits.max_uncompressed_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "uncompressed size ", batch.uncompressed_size(),
                     " exceeds the limit of ", limits.max_uncompressed_bytes));
  }
  // The records borrow from this buffer: the blob is copied whole when it is not compressed
  // (one copy, as protobuf's parse made one of every payload).
  auto content = std::make_unique<std::string>();
  switch (batch.compression()) {
    case ferry::v1::COMPRESSION_NONE:
      *content = batch.blob();
      break;
    case ferry::v1::COMPRESSION_ZSTD: {
      // Decompress into exactly the declared size: a frame that expands further fails with
      // "destination buffer is too small" instead of allocating (zstd bomb protection).
      content->resize(batch.uncompressed_size());
      ZSTD_DCtx* dctx = ThreadDecompressionContext();  // null only when out of memory
      const size_t n = dctx != nullptr
                           ? ZSTD_decompressDCtx(dctx, content->data(), content->size(),
                                                 batch.blob().data(), batch.blob().size())
                           : ZSTD_decompress(content->data(), content->size(), batch.blob().data(),
                                             batch.blob().size());
      if (ZSTD_isError(n)) {
        return absl::DataLossError(
            absl::StrCat(where, "zstd decompression failed: ", ZSTD_getErrorName(n)));
      }
      content->resize(n);
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
  DecodedBatch out;
  // Room for the declared count, but never more than the content's size in records: a count a
  // peer inflates cannot make this allocate more than the batch it sent.
  out.records.reserve(std::min<uint64_t>(batch.count(), content->size() / sizeof(NewRecord)));
  // Protobuf cannot parse 2 GiB or more; neither is the encoder's framing read there.
  const bool canonical = content->size() <= static_cast<size_t>(std::numeric_limits<int>::max()) &&
                         SplitCanonicalRecordList(*content, &out.records);
  if (!canonical) {
    // Framing the encoder does not write (another encoder's, or a hostile peer's): protobuf
    // parses it, each payload then moved out.
    out.records.clear();
    ferry::v1::RecordList list;
    if (!list.ParseFromString(*content)) {
      return absl::DataLossError(where + "content is not a RecordList");
    }
    if (static_cast<uint64_t>(list.records_size()) != batch.count()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "holds ", list.records_size(), " records, the batch declares ", batch.count()));
    }
    for (int i = 0; i < list.records_size(); ++i) {
      ferry::v1::Record& r = *list.mutable_records(i);
      // Checked before the narrowing to RecordKind (a uint8_t): kind 257 is not kind 1.
      if (r.kind() == 0 || r.kind() > log_format::kMaxKind) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "record ", batch.first_seq() + i, " has unknown kind ", r.kind()));
      }
      out.records.push_back(NewRecord{.kind = static_cast<RecordKind>(r.kind()),
                                      .payload = std::move(*r.mutable_payload())});
    }
  }
  if (out.records.size() != batch.count()) {
    return absl::InvalidArgumentError(absl::StrCat(where, "holds ", out.records.size(),
                                                   " records, the batch declares ", batch.count()));
  }
  for (size_t i = 0; i < out.records.size(); ++i) {
    const NewRecord& r = out.records[i];
    const auto kind = static_cast<uint32_t>(r.kind);
    if (kind == 0 || kind > log_format::kMaxKind) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "record ", batch.first_seq() + i, " has unknown kind ", kind));
    }
    if (r.bytes().size() > limits.max_record_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "record ", batch.first_seq() + i, " of ", r.bytes().size(),
                       " bytes exceeds the limit of ", limits.max_record_bytes));
    }
  }
  out.content = std::move(content);
  return out;
}

}  // namespace ferry::replication
