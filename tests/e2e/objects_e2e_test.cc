// The object path end to end: two ferryd (east primary, west standby) beside their Postgres,
// two buckets on radosgw. radosgw pushes east's bucket notifications to east's webhook; east
// captures them into its log, ships them, and west applies them into its bucket, reading the
// bodies from east's. Checked with CompareBuckets (docs/objects.md, "Equal"): puts, overwrites,
// deletes, metadata, awkward keys, a 0-byte object, a 1,024-byte key and a multipart object
// arrive; a west ferryd SIGKILLed in the middle of a multipart copy (kill point
// s3.part_uploaded) leaves no partial object, and after its restart the buckets end equal.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "connectors/s3/gateway_suite.h"
#include "connectors/s3/s3_client.h"
#include "tests/e2e/bucket_pair.h"
#include "tests/e2e/two_regions.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/http_get.h"

namespace ferry::testing {
namespace {

using s3::S3Client;

constexpr uint64_t kPart = uint64_t{5} << 20;

class ObjectsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto buckets = BucketPair::Start();
    ASSERT_TRUE(buckets.ok()) << buckets.status();
    buckets_ = std::move(*buckets);
    s3_ = &buckets_->s3();
    webhook_port_ = buckets_->webhook_port(Region::kEast);
  }
  // `west_reads_east`: the endpoint west reads east's bucket through ("": radosgw itself).
  absl::StatusOr<std::unique_ptr<TwoRegions>> StartRegions(
      const std::string& west_reads_east = "") {
    return TwoRegions::Start(buckets_->RegionOptions(/*without_postgres=*/false, west_reads_east));
  }
  absl::Status WaitForBucketsEqual(absl::Duration timeout) {
    return buckets_->WaitForEqual(timeout);
  }
  void PushTo(int port) {
    ASSERT_EQ(port, webhook_port_);
    ASSERT_TRUE(buckets_->PushTo(Region::kEast).ok());
  }

  std::unique_ptr<BucketPair> buckets_;
  S3Client* s3_ = nullptr;
  int webhook_port_ = 0;
};

TEST_F(ObjectsE2eTest, PutsOverwritesAndDeletesOnEastAppearOnWest) {
  ASSERT_TRUE(s3_->PutObject("east-assets", "before start", "listed by the backfill", {}).ok());
  auto regions = StartRegions();
  ASSERT_TRUE(regions.ok()) << regions.status();
  PushTo(webhook_port_);
  ASSERT_TRUE(WaitForBucketsEqual(absl::Seconds(60)).ok());

  const std::vector<std::string> keys = {"a b+c%41", "../up", "\xe6\x97\xa5/x", "empty",
                                         std::string(1024, 'k')};
  for (const std::string& k : keys) {
    ASSERT_TRUE(s3_->PutObject("east-assets", k, k == "empty" ? "" : "body of " + k,
                               {.content_type = "text/plain", .metadata = {{"who", "app"}}})
                    .ok())
        << k;
  }
  std::string big(2 * kPart + 99, 'B');
  ASSERT_TRUE(s3_->PutObject("east-assets", "big", big, {}).ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(s3_->PutObject("east-assets", "a b+c%41", absl::StrCat("v", i), {}).ok());
  }
  ASSERT_TRUE(s3_->DeleteObject("east-assets", "../up").ok());
  ASSERT_TRUE(s3_->DeleteObject("east-assets", "before start").ok());
  auto equal = WaitForBucketsEqual(absl::Seconds(90));
  EXPECT_TRUE(equal.ok()) << equal;
  EXPECT_EQ(s3_->HeadObject("west-assets", "../up").status().code(), absl::StatusCode::kNotFound);

  // Status shows the bucket beside the database.
  auto east = (*regions)->Status(Region::kEast);
  ASSERT_TRUE(east.ok()) << east.status();
  EXPECT_EQ(east->objects().mode(), "capture");
  EXPECT_EQ(east->objects().bucket(), "east-assets");
  EXPECT_TRUE(east->objects().connected());
  auto west = (*regions)->Status(Region::kWest);
  ASSERT_TRUE(west.ok()) << west.status();
  EXPECT_EQ(west->objects().mode(), "apply");
  EXPECT_GT(west->objects().events_applied(), 0u);
  EXPECT_EQ(west->objects().last_error(), "");
  auto metrics =
      HttpGet(absl::StrCat("http://", (*regions)->metrics_address(Region::kWest), "/metrics"));
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_NE(metrics->body.find("ferry_objects_apply_latency_seconds_count"), std::string::npos);
  EXPECT_EQ(metrics->body.find("ferry_objects_apply_latency_seconds_count 0"), std::string::npos)
      << metrics->body.substr(metrics->body.find("ferry_objects"), 3000);
  auto ctl = (*regions)->Ctl(Region::kEast, {"status"});
  ASSERT_TRUE(ctl.ok()) << ctl.status();
  EXPECT_NE(ctl->output.find("objects     capturing bucket east-assets (connected)"),
            std::string::npos)
      << ctl->output;
}

TEST_F(ObjectsE2eTest, SigkillOfTheStandbyInAMultipartCopyConverges) {
  auto regions = StartRegions();
  ASSERT_TRUE(regions.ok()) << regions.status();
  PushTo(webhook_port_);
  ASSERT_TRUE((*regions)->StopDaemon(Region::kWest).ok());
  ASSERT_TRUE((*regions)->StartDaemon(Region::kWest, {"FERRY_KILL_POINT=s3.part_uploaded@1"}).ok());
  std::string big(3 * kPart + 1, 'K');
  // Uploaded in parts, so west copies it in parts (a single-PUT source streams through one PUT).
  ASSERT_TRUE(s3::PutMultipartObject(*s3_, "east-assets", "big one", big, kPart).ok());
  ASSERT_TRUE((*regions)->WaitForExit(Region::kWest)) << "west never reached the kill point";
  std::ifstream log((*regions)->log_path(Region::kWest));
  std::stringstream text;
  text << log.rdbuf();
  ASSERT_NE(text.str().find("kill point s3.part_uploaded@1 reached"), std::string::npos)
      << "west died of something else";
  EXPECT_EQ(s3_->HeadObject("west-assets", "big one").status().code(),
            absl::StatusCode::kNotFound);  // no partial object
  ASSERT_TRUE((*regions)->StartDaemon(Region::kWest).ok());
  auto equal = WaitForBucketsEqual(absl::Seconds(90));
  EXPECT_TRUE(equal.ok()) << equal;
}

// East's ferryd SIGKILLed: the notices radosgw pushes meanwhile are lost (nobody listens, and
// radosgw does not retry a push to a non-persistent topic). The backfill at east's restart
// lists the bucket, and its reconcile makes west drop what east deleted: west ends equal.
TEST_F(ObjectsE2eTest, NoticesLostWhileThePrimaryIsDownAreFoundByTheBackfill) {
  ASSERT_TRUE(s3_->PutObject("east-assets", "kept", "k", {}).ok());
  ASSERT_TRUE(s3_->PutObject("east-assets", "deleted while down", "d", {}).ok());
  auto regions = StartRegions();
  ASSERT_TRUE(regions.ok()) << regions.status();
  PushTo(webhook_port_);
  ASSERT_TRUE(WaitForBucketsEqual(absl::Seconds(60)).ok());
  (*regions)->KillDaemon(Region::kEast);
  ASSERT_TRUE(s3_->PutObject("east-assets", "put while down", "p", {}).ok());
  ASSERT_TRUE(s3_->PutObject("east-assets", "kept", "overwritten while down", {}).ok());
  ASSERT_TRUE(s3_->DeleteObject("east-assets", "deleted while down").ok());
  ASSERT_TRUE((*regions)->StartDaemon(Region::kEast).ok());
  auto equal = WaitForBucketsEqual(absl::Seconds(90));
  EXPECT_TRUE(equal.ok()) << equal;
}

// A byte of a body flipped on its way from east's bucket to west's apply: the copy's MD5 does
// not match the source's ETag, so nothing is written, the event pipeline counts the failure
// (kind "aborted") and tries again, and the buckets end equal, byte for byte.
TEST_F(ObjectsE2eTest, ACorruptedBodyIsNeverWrittenAndTheCopyIsRetried) {
  auto proxy = FaultProxy::Start("127.0.0.1", buckets_->gateway().port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto regions = StartRegions(absl::StrCat("http://", (*proxy)->address()));
  ASSERT_TRUE(regions.ok()) << regions.status();
  PushTo(webhook_port_);
  // West's first reads of east are this object's HEAD (headers only) and GET: 10,000 bytes in,
  // the flipped byte is in the GET's body.
  (*proxy)->CorruptBytes(1, ProxyDirection::kToClient, 10000);
  ASSERT_TRUE(s3_->PutObject("east-assets", "body", std::string(1 << 20, 'b'), {}).ok());
  auto equal = WaitForBucketsEqual(absl::Seconds(90));
  EXPECT_TRUE(equal.ok()) << equal;
  EXPECT_EQ((*proxy)->stats().bytes_corrupted, 1u);
  auto metrics =
      HttpGet(absl::StrCat("http://", (*regions)->metrics_address(Region::kWest), "/metrics"));
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_NE(metrics->body.find("ferry_objects_errors_total{kind=\"aborted\"} 1"), std::string::npos)
      << metrics->body;
}

}  // namespace
}  // namespace ferry::testing
