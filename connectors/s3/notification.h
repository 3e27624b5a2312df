// Bucket notifications as Ceph RGW and MinIO send them (pushed over HTTP, or published to
// Kafka), read into BucketNotice. A notice is a hint, never the truth: it says which key
// changed; the source then reads the bucket's truth for that key (HEAD) before it logs
// anything, so a duplicated, reordered, lost, stale or forged notice cannot make the peer wrong.
//
// The two dialects differ (docs/objects.md has examples):
//   eventName   RGW "ObjectCreated:Put", MinIO "s3:ObjectCreated:Put"
//   key         RGW raw UTF-8; MinIO (like AWS) URL-encoded, '+' for a space
//   size        number or string
//   sequencer   hex of different lengths; kept for logs only, never used for order
// The dialect is told by eventSource ("ceph:s3" / "minio:s3"); anything else is read as AWS
// (URL-encoded keys, like MinIO).
//
// Hostile input: the text is bounded (kMaxNotificationBytes), must be a JSON object with a
// "Records" array of at most kMaxRecords; a record that cannot be read (no bucket, no key, a
// key over 1,024 bytes, not UTF-8, a bad escape) is rejected alone with a reason, so one bad
// record neither hides the others nor is lost: the caller reports it (dead letter).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace ferry::s3 {

inline constexpr size_t kMaxNotificationBytes = 1 << 20;
inline constexpr size_t kMaxRecords = 1000;

struct BucketNotice {
  enum class Kind { kCreated, kRemoved, kOther };
  std::string bucket;
  std::string key;  // decoded
  Kind kind = Kind::kOther;
  std::string event_name;  // as sent, e.g. "s3:ObjectRemoved:DeleteMarkerCreated"
  std::string version_id;  // "" when not sent
  std::string etag;
  std::optional<uint64_t> size;
  std::string sequencer;
  int64_t event_time_us = 0;  // 0 when absent or unreadable
};

struct RejectedRecord {
  int index = 0;       // position in Records
  std::string reason;  // names what was wrong
};

struct ParsedNotification {
  std::vector<BucketNotice> notices;
  std::vector<RejectedRecord> rejected;
};

// kInvalidArgument (naming the cause) when the whole text is unreadable: over the size bound,
// not JSON, not an object with a Records array, too many records.
[[nodiscard]] absl::StatusOr<ParsedNotification> ParseNotification(std::string_view json);

// A key from a URL-encoded dialect: %XX decoded, '+' is a space. nullopt for a bad escape.
std::optional<std::string> DecodeEventKey(std::string_view encoded);

// Whether `s` is valid UTF-8 (no overlong forms, no surrogates).
bool IsValidUtf8(std::string_view s);

}  // namespace ferry::s3
