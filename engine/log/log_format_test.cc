// Tests of the record envelope and key encoding (log_format.md): round trips, and that every
// kind of damage is reported as kDataLoss and never returned as data.
#include "engine/log/log_format.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <string>

#include "absl/status/status.h"

namespace ferry::log_format {
namespace {

constexpr uint64_t kSeq = 0x0102030405060708ull;

TEST(LogFormatTest, KeyRoundTripsAndSortsBySequence) {
  for (uint64_t seq : std::initializer_list<uint64_t>{0, 1, 255, 256, kSeq, ~uint64_t{0}}) {
    const std::string key = EncodeKey(seq);
    ASSERT_EQ(key.size(), 8u);
    auto decoded = DecodeKey(key);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, seq);
  }
  EXPECT_LT(EncodeKey(255), EncodeKey(256));  // big-endian: byte order is numeric order
  EXPECT_LT(EncodeKey(1), EncodeKey(kSeq));
  EXPECT_EQ(EncodeKey(kSeq), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
}

TEST(LogFormatTest, KeyOfWrongLengthIsDataLoss) {
  EXPECT_EQ(DecodeKey("").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeKey("1234567").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeKey("123456789").status().code(), absl::StatusCode::kDataLoss);
}

TEST(LogFormatTest, RecordRoundTripsForEveryKind) {
  for (RecordKind kind :
       {RecordKind::kTransaction, RecordKind::kHeartbeat, RecordKind::kSnapshotRows}) {
    for (const std::string& payload :
         {std::string(), std::string("x"), std::string(1000, 'p'), std::string("\0\xff\x01", 3)}) {
      const std::string value = EncodeRecord(kSeq, kind, payload);
      ASSERT_EQ(value.size(), kHeaderSize + payload.size());
      auto decoded = DecodeRecord(kSeq, value);
      ASSERT_TRUE(decoded.ok()) << decoded.status();
      EXPECT_EQ(decoded->kind, kind);
      EXPECT_EQ(decoded->payload, payload);
    }
  }
}

// The header layout is part of the on-disk format: pin it byte by byte.
TEST(LogFormatTest, HeaderLayoutMatchesTheSpec) {
  const std::string value = EncodeRecord(7, RecordKind::kHeartbeat, "abc");
  EXPECT_EQ(static_cast<uint8_t>(value[0]), kFormatVersion);
  EXPECT_EQ(static_cast<uint8_t>(value[1]), static_cast<uint8_t>(RecordKind::kHeartbeat));
  EXPECT_EQ(value[2], 0);  // flags
  EXPECT_EQ(value[3], 0);
  EXPECT_EQ(value.substr(4, 4), std::string("\x03\x00\x00\x00", 4));  // length, LE
  uint64_t stored = 0;
  for (int i = 0; i < 8; ++i) stored |= uint64_t{static_cast<uint8_t>(value[8 + i])} << (8 * i);
  // checksum = XXH3_64(header[0..8), seed = XXH3_64(payload, seed = seq))
  const uint64_t payload_hash = XXH3_64bits_withSeed("abc", 3, 7);
  EXPECT_EQ(stored, XXH3_64bits_withSeed(value.data(), 8, payload_hash));
  EXPECT_EQ(value.substr(16), "abc");
}

TEST(LogFormatTest, EverySingleBitFlipIsDataLossNeverData) {
  const std::string payload = "a change record payload \x01\x02\x03 with some bytes";
  const std::string value = EncodeRecord(kSeq, RecordKind::kTransaction, payload);
  for (size_t byte = 0; byte < value.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = value;
      damaged[byte] = static_cast<char>(damaged[byte] ^ (1 << bit));
      auto decoded = DecodeRecord(kSeq, damaged);
      ASSERT_FALSE(decoded.ok()) << "flip of bit " << bit << " of byte " << byte << " accepted";
      // The checksum covers the header too, so even a flipped version byte is data loss.
      EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss)
          << "byte " << byte << " bit " << bit << ": " << decoded.status();
    }
  }
}

TEST(LogFormatTest, TruncationAtEveryLengthIsDataLoss) {
  const std::string value = EncodeRecord(kSeq, RecordKind::kTransaction, std::string(40, 'z'));
  for (size_t len = 0; len < value.size(); ++len) {
    auto decoded = DecodeRecord(kSeq, std::string_view(value).substr(0, len));
    ASSERT_FALSE(decoded.ok()) << "truncated to " << len << " bytes accepted";
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << decoded.status();
  }
  // Extra bytes appended are damage too.
  EXPECT_EQ(DecodeRecord(kSeq, value + "x").status().code(), absl::StatusCode::kDataLoss);
}

TEST(LogFormatTest, RecordUnderAnotherSequenceIsDataLoss) {
  const std::string value = EncodeRecord(41, RecordKind::kTransaction, "moved");
  ASSERT_TRUE(DecodeRecord(41, value).ok());
  for (uint64_t other :
       std::initializer_list<uint64_t>{0, 40, 42, 41 + (uint64_t{1} << 32), ~uint64_t{0}}) {
    EXPECT_EQ(DecodeRecord(other, value).status().code(), absl::StatusCode::kDataLoss) << other;
  }
  // An empty payload is bound to its sequence as well.
  EXPECT_EQ(DecodeRecord(2, EncodeRecord(1, RecordKind::kHeartbeat, "")).status().code(),
            absl::StatusCode::kDataLoss);
}

// Builds a value with a valid checksum but arbitrary header fields, as a newer (or buggy)
// writer would produce it.
std::string ForgeRecord(uint64_t seq, uint8_t version, uint8_t kind, std::string_view payload) {
  std::string value = EncodeRecord(seq, RecordKind::kTransaction, payload);
  value[0] = static_cast<char>(version);
  value[1] = static_cast<char>(kind);
  const uint64_t payload_hash = XXH3_64bits_withSeed(payload.data(), payload.size(), seq);
  const uint64_t sum = XXH3_64bits_withSeed(value.data(), 8, payload_hash);
  for (int i = 0; i < 8; ++i) value[8 + i] = static_cast<char>((sum >> (8 * i)) & 0xff);
  return value;
}

TEST(LogFormatTest, ForgeRecordMatchesEncodeRecord) {
  EXPECT_EQ(ForgeRecord(3, kFormatVersion, 2, "p"), EncodeRecord(3, RecordKind::kHeartbeat, "p"));
}

TEST(LogFormatTest, NewerVersionIsFailedPrecondition) {
  auto decoded = DecodeRecord(9, ForgeRecord(9, kFormatVersion + 1, 1, "future"));
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kFailedPrecondition) << decoded.status();
  decoded = DecodeRecord(9, ForgeRecord(9, 0xff, 1, "future"));
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kFailedPrecondition) << decoded.status();
}

TEST(LogFormatTest, VersionZeroIsRefused) {
  EXPECT_FALSE(DecodeRecord(9, ForgeRecord(9, 0, 1, "p")).ok());
}

TEST(LogFormatTest, UnknownKindIsDataLoss) {
  for (uint8_t kind : {uint8_t{0}, uint8_t{kMaxKind + 1}, uint8_t{0xff}}) {
    auto decoded = DecodeRecord(9, ForgeRecord(9, kFormatVersion, kind, "p"));
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << int{kind};
  }
}

TEST(LogFormatTest, U64RoundTripsLittleEndian) {
  for (uint64_t v : std::initializer_list<uint64_t>{0, 1, kSeq, ~uint64_t{0}}) {
    auto decoded = DecodeU64(EncodeU64(v));
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, v);
  }
  EXPECT_EQ(EncodeU64(1), std::string("\x01\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(DecodeU64("1234567").status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace ferry::log_format
