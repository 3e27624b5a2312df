#include "engine/replication/batch_codec.h"

#include <gtest/gtest.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

// The largest single allocation this test binary made since it was last reset: a declared count
// must not make the decoder allocate more than the batch it came with. Not inlined: GCC would
// otherwise see free() of what it takes for the standard operator new's memory.
std::atomic<size_t> largest_allocation{0};

[[gnu::noinline]] void* operator new(size_t n) {
  size_t seen = largest_allocation.load(std::memory_order_relaxed);
  while (n > seen && !largest_allocation.compare_exchange_weak(seen, n)) {
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace ferry::replication {
namespace {

std::vector<LogRecord> Records(uint64_t first, int n) {
  std::vector<LogRecord> out;
  for (int i = 0; i < n; ++i) {
    out.push_back({first + i, RecordKind::kTransaction, std::string(100 + i, 'x')});
  }
  return out;
}

TEST(BatchCodecTest, RoundTripsWithAndWithoutCompression) {
  for (int level : {0, 1, 3}) {
    BatchEncoder encoder(level);
    auto batch = encoder.Encode(Records(5, 20));
    ASSERT_TRUE(batch.ok()) << batch.status();
    EXPECT_EQ(batch->first_seq(), 5u);
    EXPECT_EQ(batch->count(), 20u);
    EXPECT_EQ(batch->compression(),
              level == 0 ? ferry::v1::COMPRESSION_NONE : ferry::v1::COMPRESSION_ZSTD);
    if (level > 0) {
      EXPECT_LT(batch->blob().size(), batch->uncompressed_size());
    }
    auto decoded = DecodeBatch(*batch, {});
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_EQ(decoded->records.size(), 20u);
    EXPECT_EQ(decoded->records[3].bytes(), std::string(103, 'x'));
    EXPECT_EQ(decoded->records[3].kind, RecordKind::kTransaction);
  }
}

TEST(BatchCodecTest, RefusesFlippedBit) {
  for (int level : {0, 3}) {
    BatchEncoder encoder(level);
    auto batch = encoder.Encode(Records(1, 10));
    ASSERT_TRUE(batch.ok());
    std::string blob = batch->blob();
    blob[blob.size() / 2] ^= 0x01;
    batch->set_blob(blob);
    auto decoded = DecodeBatch(*batch, {});
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << decoded.status();
  }
}

TEST(BatchCodecTest, RefusesWrongChecksum) {
  BatchEncoder encoder(3);
  auto batch = encoder.Encode(Records(1, 10));
  ASSERT_TRUE(batch.ok());
  batch->set_checksum(batch->checksum() + 1);
  auto decoded = DecodeBatch(*batch, {});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(decoded.status().message().find("checksum mismatch"), std::string::npos);
}

TEST(BatchCodecTest, RefusesCountMismatch) {
  BatchEncoder encoder(0);
  auto batch = encoder.Encode(Records(1, 10));
  ASSERT_TRUE(batch.ok());
  batch->set_count(11);
  EXPECT_EQ(DecodeBatch(*batch, {}).status().code(), absl::StatusCode::kInvalidArgument);
  batch->set_count(0);
  EXPECT_EQ(DecodeBatch(*batch, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BatchCodecTest, RefusesDeclaredSizeAboveLimit) {
  BatchEncoder encoder(3);
  auto batch = encoder.Encode(Records(1, 10));
  ASSERT_TRUE(batch.ok());
  auto decoded = DecodeBatch(*batch, {.max_uncompressed_bytes = batch->uncompressed_size() - 1});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(decoded.status().message().find("exceeds the limit"), std::string::npos);
}

// A small frame that expands to 1 GiB, declared as 1 KiB: refused without allocating the GiB.
TEST(BatchCodecTest, RefusesZstdBomb) {
  const std::string zeros(size_t{64} << 20, '\0');
  std::string frame(ZSTD_compressBound(zeros.size()), '\0');
  const size_t n = ZSTD_compress(frame.data(), frame.size(), zeros.data(), zeros.size(), 1);
  ASSERT_FALSE(ZSTD_isError(n));
  frame.resize(n);
  ferry::v1::Batch batch;
  batch.set_first_seq(1);
  batch.set_count(1);
  batch.set_compression(ferry::v1::COMPRESSION_ZSTD);
  batch.set_blob(frame);
  batch.set_uncompressed_size(1024);
  auto decoded = DecodeBatch(batch, {});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << decoded.status();
  // Declared honestly, it is above the limit.
  batch.set_uncompressed_size(zeros.size());
  decoded = DecodeBatch(batch, {.max_uncompressed_bytes = 1 << 20});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument) << decoded.status();
}

// The decoder reuses one zstd context per thread: a frame that failed half-way (a bomb stopped
// at its declared size, a truncated frame) leaves nothing behind that the next batch would see.
TEST(BatchCodecTest, AFailedFrameDoesNotSpoilTheThreadsNextDecode) {
  BatchEncoder encoder(3);
  auto good = encoder.Encode(Records(1, 50));
  ASSERT_TRUE(good.ok()) << good.status();
  ferry::v1::Batch truncated = *good;
  truncated.set_blob(good->blob().substr(0, good->blob().size() / 2));
  ferry::v1::Batch short_declared = *good;
  short_declared.set_uncompressed_size(good->uncompressed_size() / 3);
  for (const ferry::v1::Batch* bad : {&truncated, &short_declared}) {
    EXPECT_EQ(DecodeBatch(*bad, {}).status().code(), absl::StatusCode::kDataLoss);
    auto decoded = DecodeBatch(*good, {});
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_EQ(decoded->records.size(), 50u);
    EXPECT_EQ(decoded->records[49].bytes(), std::string(149, 'x'));
  }
}

TEST(BatchCodecTest, RefusesUnknownKindAndOversizedRecord) {
  BatchEncoder encoder(0);
  std::vector<LogRecord> records = Records(1, 2);
  records[1].kind = static_cast<RecordKind>(9);
  auto batch = encoder.Encode(records);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(DecodeBatch(*batch, {}).status().code(), absl::StatusCode::kInvalidArgument);
  batch = encoder.Encode(Records(1, 2));
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(DecodeBatch(*batch, {.max_record_bytes = 50}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BatchCodecTest, RefusesUnknownCompression) {
  BatchEncoder encoder(0);
  auto batch = encoder.Encode(Records(1, 2));
  ASSERT_TRUE(batch.ok());
  batch->set_compression(static_cast<ferry::v1::Compression>(7));
  EXPECT_EQ(DecodeBatch(*batch, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

// The RecordList of `records` as protobuf's generated code serializes it.
std::string SerializedByProtobuf(const std::vector<LogRecord>& records) {
  ferry::v1::RecordList list;
  for (const LogRecord& r : records) {
    ferry::v1::Record* out = list.add_records();
    out->set_kind(static_cast<uint32_t>(r.kind));
    out->set_payload(r.payload);
  }
  return list.SerializeAsString();
}

// The encoder writes the RecordList itself: its bytes must be the ones protobuf writes, so that
// every peer, whatever writes its batches, reads them.
TEST(BatchCodecTest, WritesTheRecordListProtobufWrites) {
  std::vector<LogRecord> records = Records(7, 30);
  records[4].payload.clear();                         // an empty payload is omitted
  records[5].payload.assign(size_t{300} << 10, 'p');  // a multi-byte length
  records[6].kind = RecordKind::kHeartbeat;
  BatchEncoder encoder(0);
  auto batch = encoder.Encode(records);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->blob(), SerializedByProtobuf(records));
  auto decoded = DecodeBatch(*batch, {});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->records.size(), records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(decoded->records[i].kind, records[i].kind) << i;
    EXPECT_EQ(decoded->records[i].bytes(), records[i].payload) << i;
  }
}

// A kind of 0 is omitted as protobuf omits it (such a record is refused by the decoder).
TEST(BatchCodecTest, WritesAZeroKindAsProtobufDoes) {
  std::vector<LogRecord> records = Records(1, 2);
  records[1].kind = RecordKind::kUnspecified;
  auto batch = BatchEncoder(0).Encode(records);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->blob(), SerializedByProtobuf(records));
}

// The compressing encoder keeps its buffer between batches: a small batch after a large one
// carries only its own records.
TEST(BatchCodecTest, AReusedEncoderCarriesOnlyEachBatchsRecords) {
  BatchEncoder encoder(3);
  std::vector<LogRecord> large = Records(1, 200);
  for (LogRecord& r : large) r.payload.append(4000, 'y');
  std::vector<LogRecord> small = Records(201, 3);
  for (const auto* records : {&large, &small, &large}) {
    auto batch = encoder.Encode(*records);
    ASSERT_TRUE(batch.ok()) << batch.status();
    auto decoded = DecodeBatch(*batch, {});
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_EQ(decoded->records.size(), records->size());
    for (size_t i = 0; i < records->size(); ++i) {
      EXPECT_EQ(decoded->records[i].bytes(), (*records)[i].payload) << i;
    }
  }
}

ferry::v1::Batch BatchOf(const std::string& content, uint32_t count) {
  ferry::v1::Batch batch;
  batch.set_first_seq(1);
  batch.set_count(count);
  batch.set_compression(ferry::v1::COMPRESSION_NONE);
  batch.set_blob(content);
  batch.set_uncompressed_size(content.size());
  batch.set_checksum(BatchChecksum(content.data(), content.size()));
  return batch;
}

// Hostile contents with a valid checksum: each is refused whole, with no record accepted.
TEST(BatchCodecTest, RefusesMalformedRecordLists) {
  const std::string good = BatchEncoder(0).Encode(Records(1, 3))->blob();
  struct Case {
    std::string name;
    std::string content;
    uint32_t count;
    absl::StatusCode code;
  };
  const std::vector<Case> cases = {
      {"cut inside a record", good.substr(0, good.size() - 10), 3, absl::StatusCode::kDataLoss},
      {"a record longer than the content", std::string("\x0a\x7f\x08\x01", 4), 1,
       absl::StatusCode::kDataLoss},
      {"a payload longer than its record", std::string("\x0a\x05\x08\x01\x12\x09x", 7), 1,
       absl::StatusCode::kDataLoss},
      {"a truncated varint", std::string("\x0a\xff\xff", 3), 1, absl::StatusCode::kDataLoss},
      {"field number 0", std::string("\x00\x01", 2), 1, absl::StatusCode::kDataLoss},
      {"an end-group tag", std::string("\x0c", 1), 1, absl::StatusCode::kDataLoss},
      {"more records than declared", good, 2, absl::StatusCode::kInvalidArgument},
      {"fewer records than declared", good, 4, absl::StatusCode::kInvalidArgument},
      {"a record without a kind", std::string("\x0a\x03\x12\x01x", 5), 1,
       absl::StatusCode::kInvalidArgument},
      {"a payload declared over 4 GiB", std::string("\x0a\x06\x12\xff\xff\xff\xff\x7f", 8), 1,
       absl::StatusCode::kDataLoss},
  };
  for (const Case& c : cases) {
    auto decoded = DecodeBatch(BatchOf(c.content, c.count), {});
    EXPECT_EQ(decoded.status().code(), c.code) << c.name << ": " << decoded.status();
  }
}

// What protobuf's generated parser makes of `content`: the records, or nullopt when it refuses
// the bytes. The reference the decoder's own reading of the encoder's framing must match.
struct Parsed {
  uint32_t kind;
  std::string payload;
  bool operator==(const Parsed&) const = default;
};
std::optional<std::vector<Parsed>> ParsedByProtobuf(const std::string& content) {
  ferry::v1::RecordList list;
  if (!list.ParseFromString(content)) return std::nullopt;
  std::vector<Parsed> out;
  for (const ferry::v1::Record& r : list.records()) out.push_back({r.kind(), r.payload()});
  return out;
}

// Decodes `content` as an uncompressed batch of as many records as protobuf finds in it, and
// checks the outcome against protobuf's: the same records, or a refusal where protobuf refuses
// (or finds a record of a kind the log does not have).
void ExpectDecodedAsProtobufParses(const std::string& content, const std::string& what) {
  const std::optional<std::vector<Parsed>> expected = ParsedByProtobuf(content);
  const uint32_t count = expected.has_value() ? std::max<size_t>(expected->size(), 1) : 1;
  auto decoded = DecodeBatch(BatchOf(content, count), {});
  if (!expected.has_value()) {
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << what;
    return;
  }
  bool valid = !expected->empty();
  for (const Parsed& r : *expected) valid = valid && r.kind >= 1 && r.kind <= log_format::kMaxKind;
  if (!valid) {
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument) << what;
    return;
  }
  ASSERT_TRUE(decoded.ok()) << what << ": " << decoded.status();
  std::vector<Parsed> got;
  for (const NewRecord& r : decoded->records) {
    got.push_back({static_cast<uint32_t>(r.kind), std::string(r.bytes())});
  }
  EXPECT_EQ(got, *expected) << what;
}

// The decoder reads the encoder's framing itself, its records borrowing their bytes from the
// batch's content, and leaves any other framing to protobuf: either way the records are
// protobuf's, and what protobuf refuses is refused.
TEST(BatchCodecTest, DecodesEveryFramingAsProtobufDoes) {
  const std::string good = BatchEncoder(0).Encode(Records(1, 3))->blob();
  const std::vector<std::pair<std::string, std::string>> framings = {
      {"the encoder's", good},
      {"a kind after the payload", std::string("\x0a\x05\x12\x01x\x08\x01", 7)},
      {"the payload twice (the last wins)", std::string("\x0a\x08\x08\x01\x12\x01x\x12\x01y", 10)},
      {"the kind twice (the last wins)", std::string("\x0a\x04\x08\x02\x08\x01", 6)},
      {"an unknown field in a record", std::string("\x0a\x07\x08\x01\x18\x05\x12\x01x", 9)},
      {"an unknown field in the list", std::string("\x10\x01\x0a\x05\x08\x01\x12\x01x", 9)},
      {"a two-byte kind", std::string("\x0a\x06\x08\x81\x00\x12\x01x", 8)},
      {"a kind over 32 bits (protobuf truncates it)",
       std::string("\x0a\x09\x08\x81\x80\x80\x80\x10\x12\x01x", 11)},
      {"a kind of 0 written out", std::string("\x0a\x05\x08\x00\x12\x01x", 7)},
      {"an empty payload written out", std::string("\x0a\x04\x08\x01\x12\x00", 6)},
      {"a record length not minimal", std::string("\x0a\x85\x00\x08\x01\x12\x01x", 8)},
      {"a payload length not minimal", std::string("\x0a\x06\x08\x01\x12\x81\x00x", 8)},
      {"a five-byte record length", std::string("\x0a\x85\x80\x80\x80\x00\x08\x01\x12\x01x", 11)},
      {"a six-byte record length",
       std::string("\x0a\x85\x80\x80\x80\x80\x00\x08\x01\x12\x01x", 12)},
      {"a record in a group", std::string("\x0b\x08\x01\x0c", 4)},
      {"a record as a varint", std::string("\x08\x01", 2)},
      {"an empty record", std::string("\x0a\x00", 2)},
      {"a record without a payload", std::string("\x0a\x02\x08\x01", 4)},
      {"a payload past its record", std::string("\x0a\x04\x08\x01\x12\x02xy", 8)},
      {"a record past the content", std::string("\x0a\x09\x08\x01\x12\x01x", 7)},
      {"a kind cut off", std::string("\x0a\x01\x08", 3)},
      {"a trailing byte", good + std::string("\x0a", 1)},
      {"nothing", std::string()},
  };
  for (const auto& [what, content] : framings) ExpectDecodedAsProtobufParses(content, what);
  for (size_t n = 0; n < good.size(); ++n) {
    ExpectDecodedAsProtobufParses(good.substr(0, n), "cut at " + std::to_string(n));
  }
  // Seeded random bytes flipped in real batches, the checksum recomputed: every outcome is
  // protobuf's.
  std::mt19937 rng(1234);
  std::vector<LogRecord> records = Records(1, 12);
  records[3].payload.assign(300, 'q');  // a two-byte length
  records[5].kind = RecordKind::kHeartbeat;
  const std::string base = BatchEncoder(0).Encode(records)->blob();
  for (int i = 0; i < 3000; ++i) {
    std::string content = base;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f) {
      content[rng() % content.size()] = static_cast<char>(rng() % 256);
    }
    ExpectDecodedAsProtobufParses(content, "random case " + std::to_string(i));
  }
}

// The decoded records point into the batch's content, not at copies, and stay valid as the
// batch moves (a one-record batch's content is small enough for a string's inline buffer).
TEST(BatchCodecTest, RecordsBorrowFromTheBatchAndMoveWithIt) {
  for (int n : {1, 20}) {
    std::vector<LogRecord> records = Records(1, n);
    if (n == 1) records[0].payload = "ab";
    for (int level : {0, 3}) {
      auto decoded = DecodeBatch(*BatchEncoder(level).Encode(records), {});
      ASSERT_TRUE(decoded.ok()) << decoded.status();
      DecodedBatch moved = *std::move(decoded);
      ASSERT_EQ(moved.records.size(), records.size());
      const std::string_view content = *moved.content;
      for (size_t i = 0; i < records.size(); ++i) {
        ASSERT_TRUE(moved.records[i].borrowed.has_value()) << i;
        const std::string_view bytes = moved.records[i].bytes();
        EXPECT_GE(bytes.data(), content.data()) << i;
        EXPECT_LE(bytes.data() + bytes.size(), content.data() + content.size()) << i;
        EXPECT_EQ(bytes, records[i].payload) << i;
      }
    }
  }
}

// A count far above what the content can hold is refused without reserving room for it.
TEST(BatchCodecTest, RefusesAHugeDeclaredCountWithoutAllocatingForIt) {
  std::vector<LogRecord> records = Records(1, 1);
  records[0].payload.assign(size_t{1} << 20, 'x');
  const ferry::v1::Batch one = BatchOf(BatchEncoder(0).Encode(records)->blob(), 0xffffffffu);
  // The second has an unknown field after the record: protobuf parses it.
  const ferry::v1::Batch other = BatchOf(one.blob() + std::string("\x10\x01", 2), 0xffffffffu);
  for (const ferry::v1::Batch* batch : {&one, &other}) {
    largest_allocation = 0;
    auto decoded = DecodeBatch(*batch, {});
    const size_t largest = largest_allocation.load();
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument) << decoded.status();
    EXPECT_LE(largest, 2 * batch->blob().size());
  }
}

}  // namespace
}  // namespace ferry::replication
