#include "tests/e2e/bucket_pair.h"

#include "absl/strings/str_cat.h"
#include "connectors/s3/bucket_compare.h"
#include "engine/base/status_macros.h"
#include "tests/support/free_port.h"

namespace ferry::testing {

absl::StatusOr<std::unique_ptr<BucketPair>> BucketPair::Start(const RadosGatewayOptions& gateway) {
  std::unique_ptr<BucketPair> p(new BucketPair());
  FERRY_ASSIGN_OR_RETURN(p->rgw_, RadosGateway::Start(gateway));
  FERRY_ASSIGN_OR_RETURN(
      p->s3_, s3::S3Client::Open({.endpoint = p->rgw_->endpoint(),
                                  .credentials = {.access_key = p->rgw_->access_key(),
                                                  .secret_key = p->rgw_->secret_key()}}));
  for (Region r : {Region::kEast, Region::kWest}) {
    FERRY_RETURN_IF_ERROR(p->s3_->CreateBucket(Bucket(r)));
    FERRY_RETURN_IF_ERROR(p->s3_->SetVersioning(Bucket(r), true));
  }
  p->keys_ = std::make_unique<TempDir>("ferry-objects-keys");
  p->access_file_ = p->keys_->Write("access", p->rgw_->access_key());
  p->secret_file_ = p->keys_->Write("secret", p->rgw_->secret_key());
  p->east_webhook_ = FreePort();
  p->west_webhook_ = FreePort();
  if (p->east_webhook_ == 0 || p->west_webhook_ == 0) {
    return absl::UnavailableError("no free port for the webhooks");
  }
  return p;
}

std::string BucketPair::ObjectsYaml(Region r, const std::string& peer_endpoint) const {
  const Region peer = r == Region::kEast ? Region::kWest : Region::kEast;
  std::string events = events_[r == Region::kEast ? 0 : 1];
  if (events.empty()) {
    events = absl::StrCat("webhook: { listen: \"127.0.0.1:", webhook_port(r), "\" }");
  }
  return absl::StrCat(
      "objects:\n  endpoint: ", rgw_->endpoint(), "\n  bucket: ", Bucket(r),
      "\n  access_key_file: ", access_file_, "\n  secret_key_file: ", secret_file_,
      "\n  part_size: 5MiB\n  events:\n    ", events,
      "\n  peer_bucket:\n    endpoint: ", peer_endpoint.empty() ? rgw_->endpoint() : peer_endpoint,
      "\n    bucket: ", Bucket(peer), "\n    access_key_file: ", access_file_,
      "\n    secret_key_file: ", secret_file_, "\n");
}

TwoRegionsOptions BucketPair::RegionOptions(bool without_postgres,
                                            const std::string& west_reads_east) const {
  TwoRegionsOptions o;
  o.without_postgres = without_postgres;
  o.east_yaml = ObjectsYaml(Region::kEast);
  o.west_yaml = ObjectsYaml(Region::kWest, west_reads_east);
  return o;
}

absl::Status BucketPair::PushTo(Region r) {
  FERRY_ASSIGN_OR_RETURN(
      std::string arn,
      s3_->CreateTopic(absl::StrCat("ferry-", r == Region::kEast ? "east" : "west"),
                       absl::StrCat("http://127.0.0.1:", webhook_port(r), "/")));
  return s3_->PutBucketNotification(Bucket(r), "ferry", arn);
}

absl::Status BucketPair::WaitForEqual(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last;
  while (absl::Now() < deadline) {
    auto cmp = s3::CompareBuckets(*s3_, Bucket(Region::kEast), *s3_, Bucket(Region::kWest));
    if (cmp.ok() && cmp->equal()) return absl::OkStatus();
    last = cmp.ok() ? absl::StrCat(cmp->differences, " differences, first: ", cmp->shown[0])
                    : cmp.status().ToString();
    absl::SleepFor(absl::Milliseconds(200));
  }
  return absl::DeadlineExceededError(last);
}

}  // namespace ferry::testing
