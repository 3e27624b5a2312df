#include "engine/log/log_format.h"

#include <xxhash.h>

#include "absl/strings/str_cat.h"

namespace ferry::log_format {
namespace {

void PutFixed32(char* dst, uint32_t v) {
  for (int i = 0; i < 4; ++i) dst[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void PutFixed64(char* dst, uint64_t v) {
  for (int i = 0; i < 8; ++i) dst[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t GetFixed32(const char* src) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(src[i])) << (8 * i);
  return v;
}
uint64_t GetFixed64(const char* src) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(src[i])) << (8 * i);
  return v;
}

// XXH3-64 of the first 8 header bytes and the payload, seeded with the sequence number so that a
// record stored under the wrong key does not verify.
uint64_t Checksum(uint64_t seq, const char* header8, std::string_view payload) {
  const uint64_t payload_hash = XXH3_64bits_withSeed(payload.data(), payload.size(), seq);
  return XXH3_64bits_withSeed(header8, 8, payload_hash);
}

}  // namespace

std::string EncodeKey(uint64_t seq) {
  std::string key(8, '\0');
  for (int i = 0; i < 8; ++i) key[i] = static_cast<char>((seq >> (8 * (7 - i))) & 0xff);
  return key;
}

absl::StatusOr<uint64_t> DecodeKey(std::string_view key) {
  if (key.size() != 8) {
    return absl::DataLossError(absl::StrCat("log record key has ", key.size(), " bytes, want 8"));
  }
  uint64_t seq = 0;
  for (char c : key) seq = (seq << 8) | static_cast<uint8_t>(c);
  return seq;
}

std::array<char, kHeaderSize> EncodeHeader(uint64_t seq, RecordKind kind,
                                           std::string_view payload) {
  std::array<char, kHeaderSize> header{};
  char* h = header.data();
  h[0] = static_cast<char>(kFormatVersion);
  h[1] = static_cast<char>(kind);
  // h[2..4): flags, reserved, 0
  PutFixed32(h + 4, static_cast<uint32_t>(payload.size()));
  PutFixed64(h + 8, Checksum(seq, h, payload));
  return header;
}

std::string EncodeRecord(uint64_t seq, RecordKind kind, std::string_view payload) {
  const std::array<char, kHeaderSize> header = EncodeHeader(seq, kind, payload);
  std::string value;
  value.reserve(kHeaderSize + payload.size());
  value.append(header.data(), header.size());
  value.append(payload);
  return value;
}

absl::StatusOr<DecodedRecord> DecodeRecord(uint64_t seq, std::string_view value) {
  if (value.size() < kHeaderSize) {
    return absl::DataLossError(
        absl::StrCat("log record ", seq, ": truncated header (", value.size(), " bytes)"));
  }
  const char* h = value.data();
  const uint8_t version = static_cast<uint8_t>(h[0]);
  const uint32_t length = GetFixed32(h + 4);
  if (length != value.size() - kHeaderSize) {
    return absl::DataLossError(absl::StrCat("log record ", seq, ": payload length ", length,
                                            " does not match stored ", value.size() - kHeaderSize));
  }
  std::string_view payload = value.substr(kHeaderSize);
  if (GetFixed64(h + 8) != Checksum(seq, h, payload)) {
    return absl::DataLossError(absl::StrCat("log record ", seq, ": checksum mismatch"));
  }
  if (version == 0 || version > kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat("log record ", seq, ": format version ",
                                                      version, " is newer than this build reads (",
                                                      kFormatVersion, ")"));
  }
  const uint8_t kind = static_cast<uint8_t>(h[1]);
  if (kind == 0 || kind > kMaxKind) {
    return absl::DataLossError(absl::StrCat("log record ", seq, ": unknown kind ", kind));
  }
  return DecodedRecord{static_cast<RecordKind>(kind), payload};
}

std::string EncodeU64(uint64_t v) {
  std::string s(8, '\0');
  PutFixed64(s.data(), v);
  return s;
}

absl::StatusOr<uint64_t> DecodeU64(std::string_view bytes) {
  if (bytes.size() != 8) {
    return absl::DataLossError(absl::StrCat("stored integer has ", bytes.size(), " bytes, want 8"));
  }
  return GetFixed64(bytes.data());
}

}  // namespace ferry::log_format
