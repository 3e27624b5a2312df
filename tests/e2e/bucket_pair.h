// BucketPair: the object path's end-to-end setup, shared by the tests that run two ferryd with
// buckets. One throwaway radosgw (tests/support/radosgw.h: it checks SigV4 signatures) holding
// two versioned buckets, east's and west's; an S3 client on it; the credential files the ferryd
// configs name; each region's `objects:` section (its bucket, the peer's, a webhook); radosgw's
// notifications pushed to a region's webhook; and the wait until the buckets are equal
// (CompareBuckets reading every body: docs/objects.md, "Equal buckets").
//
// Example:
//   auto buckets = BucketPair::Start();
//   TwoRegionsOptions o = (*buckets)->RegionOptions();
//   auto regions = TwoRegions::Start(o);
//   ASSERT_TRUE((*buckets)->PushTo(Region::kEast).ok());
//   ASSERT_TRUE((*buckets)->s3().PutObject(BucketPair::Bucket(Region::kEast), "k", "v", {}).ok());
//   ASSERT_TRUE((*buckets)->WaitForEqual(absl::Seconds(60)).ok());
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "connectors/s3/s3_client.h"
#include "tests/e2e/two_regions.h"
#include "tests/support/radosgw.h"
#include "tests/support/temp_dir.h"

namespace ferry::testing {

class BucketPair {
 public:
  // Starts radosgw (with `gateway`: e.g. a larger memstore for a benchmark's large objects)
  // and creates both buckets with versioning on; picks each region's webhook port.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<BucketPair>> Start(
      const RadosGatewayOptions& gateway = {});

  static const char* Bucket(Region r) { return r == Region::kEast ? "east-assets" : "west-assets"; }
  s3::S3Client& s3() { return *s3_; }
  RadosGateway& gateway() { return *rgw_; }
  int webhook_port(Region r) const { return r == Region::kEast ? east_webhook_ : west_webhook_; }

  // Replaces region r's `events:` entries (default: `webhook: { listen: ... }` on
  // webhook_port(r)), e.g. with `kafka: { brokers: ..., topic: ... }`; one line each.
  void SetEvents(Region r, std::string entries) { events_[r == Region::kEast ? 0 : 1] = entries; }
  // A region's objects: section (part size 5 MiB, the webhook on webhook_port(r)).
  // `peer_endpoint`: where the region reads the peer's bucket ("": radosgw itself).
  std::string ObjectsYaml(Region r, const std::string& peer_endpoint = "") const;
  // TwoRegionsOptions with both regions' objects: sections (`west_reads_east` as above, for
  // west); with `without_postgres`, bucket-only regions.
  TwoRegionsOptions RegionOptions(bool without_postgres = false,
                                  const std::string& west_reads_east = "") const;

  // Has radosgw push the notifications of region r's bucket to r's webhook (a topic and the
  // bucket's notification configuration). Both regions may be set up at once: a standby's
  // webhook answers 503 (not capturing) and radosgw drops the notice.
  [[nodiscard]] absl::Status PushTo(Region r);

  // Polls CompareBuckets (bodies read) every 200 ms until the buckets are equal; otherwise
  // kDeadlineExceeded with the count of differences and the first.
  [[nodiscard]] absl::Status WaitForEqual(absl::Duration timeout);

 private:
  BucketPair() = default;
  std::unique_ptr<RadosGateway> rgw_;
  std::unique_ptr<s3::S3Client> s3_;
  std::unique_ptr<TempDir> keys_;
  std::string access_file_, secret_file_;
  int east_webhook_ = 0, west_webhook_ = 0;
  std::string events_[2];
};

}  // namespace ferry::testing
