// ReplicaMarker: the user metadata Ferry puts on every object it writes into a bucket, so
// that (1) the source of that bucket recognises Ferry's own writes and never captures them
// again (no loops, invariant 5) and (2) apply knows the target already holds a source state
// and adds no version when an event is replayed.
//
// Stored as x-amz-meta-ferry-replica: "1 <origin-region> <source-etag> <key-tag>", where
// key-tag is the first 16 hex digits of SHA-256(key). The key tag makes a marker valid only on
// the key it was written for: an application's copy of a replica to another key (CopyObject
// keeps metadata) is a new application write and is captured. Ferry's own metadata is not part
// of bucket equality (bucket_compare.h).
#pragma once

#include <map>
#include <optional>
#include <string>

namespace ferry::s3 {

inline constexpr char kReplicaMetadata[] = "ferry-replica";

struct ReplicaMarker {
  std::string origin_region;
  std::string source_etag;
};

// The metadata value for an object written for `key`.
std::string FormatReplicaMarker(const std::string& origin_region, const std::string& source_etag,
                                const std::string& key);

// The marker of `metadata` (lowercase names, no x-amz-meta- prefix) when it has one written for
// `key`; nullopt otherwise (none, malformed, or written for another key).
std::optional<ReplicaMarker> ReadReplicaMarker(const std::map<std::string, std::string>& metadata,
                                               const std::string& key);

// `metadata` without Ferry's own entries.
std::map<std::string, std::string> UserMetadata(std::map<std::string, std::string> metadata);

}  // namespace ferry::s3
