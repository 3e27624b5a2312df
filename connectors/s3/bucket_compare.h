// CompareBuckets: whether two buckets hold the same objects, as the object path promises
// (docs/objects.md, "Equal"): the same keys with a current version, of the same size and
// content type, the same user metadata apart from Ferry's own (replica_marker.h), and the
// same content (compared by reading both bodies when compare_bodies, else by the replica
// marker's source ETag or equal ETags); a key with a delete marker as its current version
// counts as absent. The base of `ferryctl verify --bucket` and of the tests' checks.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "connectors/s3/s3_client.h"

namespace ferry::s3 {

struct BucketComparison {
  uint64_t keys_compared = 0;
  uint64_t differences = 0;        // all of them, counted
  std::vector<std::string> shown;  // the first max_shown, each naming the key and the cause
  bool equal() const { return differences == 0; }
};

struct CompareOptions {
  bool compare_bodies = true;
  size_t max_shown = 20;
};

[[nodiscard]] absl::StatusOr<BucketComparison> CompareBuckets(S3Client& a,
                                                              const std::string& bucket_a,
                                                              S3Client& b,
                                                              const std::string& bucket_b,
                                                              const CompareOptions& options = {});

}  // namespace ferry::s3
