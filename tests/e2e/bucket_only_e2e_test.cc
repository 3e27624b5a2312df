// A bucket-only region pair (DESIGN.md: `objects:` is valid with or without `postgres:`): two
// ferryd whose configs have no postgres: section, no Postgres anywhere, two buckets on a real
// radosgw. East's notifications reach its webhook, east ships the events, west applies them:
// the buckets end equal (bodies compared), through a restart of each ferryd, and status,
// /healthz and ferryctl report a healthy pair with the database side shown as absent.
// Mutants this catches: ferryd requiring postgres: again (the regions never start); a
// no-database sink that keeps progress in memory only and resumes from 0 after a trim, or one
// whose session is used for the events (west's apply error in status).
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/e2e/bucket_pair.h"
#include "tests/e2e/two_regions.h"
#include "tests/support/http_get.h"

namespace ferry::testing {
namespace {

constexpr char kEast[] = "east-assets";

TEST(BucketOnlyE2eTest, TwoFerrydWithoutPostgresReplicateTheBucket) {
  auto buckets = BucketPair::Start();
  ASSERT_TRUE(buckets.ok()) << buckets.status();
  BucketPair& b = **buckets;
  s3::S3Client& s3 = b.s3();
  ASSERT_TRUE(s3.PutObject(kEast, "before start", "found by the backfill", {}).ok());
  TwoRegionsOptions options = b.RegionOptions(/*without_postgres=*/true);
  // Trim what is applied at once, so that west's restart below starts from a trimmed log.
  options.extra_yaml = "log:\n  retention_bytes: 0\n  retention_seconds: 0\n";
  auto regions = TwoRegions::Start(options);
  ASSERT_TRUE(regions.ok()) << regions.status();
  TwoRegions& r = **regions;
  ASSERT_TRUE(b.PushTo(Region::kEast).ok());
  absl::Status equal = b.WaitForEqual(absl::Seconds(40));
  ASSERT_TRUE(equal.ok()) << equal << r.LogTail(Region::kWest);

  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(s3.PutObject(kEast, absl::StrCat("k/", i), absl::StrCat("v", i),
                             {.content_type = "text/plain", .metadata = {{"n", std::to_string(i)}}})
                    .ok());
  }
  // Above the part size: streamed from the GET into one PUT.
  ASSERT_TRUE(s3.PutObject(kEast, "large", std::string((5 << 20) + 4097, 'm'), {}).ok());
  ASSERT_TRUE(s3.DeleteObject(kEast, "k/3").ok());
  ASSERT_TRUE(s3.DeleteObject(kEast, "before start").ok());
  equal = b.WaitForEqual(absl::Seconds(40));
  ASSERT_TRUE(equal.ok()) << equal << r.LogTail(Region::kWest);

  // Both regions healthy, the database side reported as absent, the bucket beside it.
  auto east = r.Status(Region::kEast);
  ASSERT_TRUE(east.ok()) << east.status();
  EXPECT_EQ(east->role(), "primary");
  EXPECT_EQ(east->state(), "replicating");
  EXPECT_EQ(east->source().slot(), "no database");
  EXPECT_EQ(east->objects().mode(), "capture");
  EXPECT_EQ(east->objects().last_error(), "");
  auto west = r.Status(Region::kWest);
  ASSERT_TRUE(west.ok()) << west.status();
  EXPECT_EQ(west->role(), "standby");
  EXPECT_EQ(west->last_error(), "") << r.LogTail(Region::kWest);
  EXPECT_EQ(west->objects().mode(), "apply");
  EXPECT_GE(west->objects().events_applied(), 22u);
  EXPECT_EQ(west->objects().last_error(), "");
  for (Region region : {Region::kEast, Region::kWest}) {
    auto health = HttpGet(absl::StrCat("http://", r.metrics_address(region), "/healthz"));
    ASSERT_TRUE(health.ok()) << health.status();
    EXPECT_EQ(health->status, 200) << health->body;
    auto ctl = r.Ctl(region, {"status"});
    ASSERT_TRUE(ctl.ok()) << ctl.status();
    EXPECT_EQ(ctl->exit_code, 0) << ctl->output;
    EXPECT_NE(ctl->output.find("objects "), std::string::npos) << ctl->output;
  }

  // Objects and bytes pending, as S3 replication reports them: west paused holds its apply,
  // the events arrive and are counted (status, ferryctl status, /metrics), resume applies them.
  ASSERT_TRUE(r.Pause(Region::kWest).ok());
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(
        s3.PutObject(kEast, absl::StrCat("pending/", i), std::string(1000 * i, 'p'), {}).ok());
  }
  auto pending = r.PollStatus(Region::kWest, [](const v1::StatusReply& s) {
    return s.objects().objects_pending() == 3 && s.objects().bytes_pending() == 6000;
  });
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_EQ(pending->objects().target_bucket(), "west-assets");
  auto ctl = r.Ctl(Region::kWest, {"status"});
  ASSERT_TRUE(ctl.ok()) << ctl.status();
  EXPECT_NE(ctl->output.find("objects     applying to bucket west-assets: 3 objects (5.9 KiB) "
                             "pending"),
            std::string::npos)
      << ctl->output;
  auto metrics = HttpGet(absl::StrCat("http://", r.metrics_address(Region::kWest), "/metrics"));
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_NE(metrics->body.find("\nferry_objects_pending 3\n"), std::string::npos);
  EXPECT_NE(metrics->body.find("\nferry_objects_pending_bytes 6000\n"), std::string::npos);
  EXPECT_NE(metrics->body.find("ferry_objects_apply_latency_seconds_bucket"), std::string::npos);
  ASSERT_TRUE(r.Resume(Region::kWest).ok());
  equal = b.WaitForEqual(absl::Seconds(40));
  ASSERT_TRUE(equal.ok()) << equal << r.LogTail(Region::kWest);
  pending = r.PollStatus(Region::kWest, [](const v1::StatusReply& s) {
    return s.objects().objects_pending() == 0 && s.objects().bytes_pending() == 0;
  });
  ASSERT_TRUE(pending.ok()) << pending.status();

  // Restarts: west's apply resumes from its trimmed inbound log with nothing stored by the
  // database side, east's capture from its log; what was written meanwhile arrives.
  auto trimmed = r.PollStatus(Region::kWest, [](const v1::StatusReply& s) {
    return s.positions().inbound_first_seq() > 1;
  });
  ASSERT_TRUE(trimmed.ok()) << trimmed.status();
  ASSERT_TRUE(r.StopDaemon(Region::kWest).ok());
  ASSERT_TRUE(s3.PutObject(kEast, "while west was down", "w", {}).ok());
  ASSERT_TRUE(r.StartDaemon(Region::kWest).ok());
  ASSERT_TRUE(r.StopDaemon(Region::kEast).ok());
  ASSERT_TRUE(r.StartDaemon(Region::kEast).ok());
  ASSERT_TRUE(s3.PutObject(kEast, "after both restarts", "a", {}).ok());
  equal = b.WaitForEqual(absl::Seconds(40));
  ASSERT_TRUE(equal.ok()) << equal << r.LogTail(Region::kWest);
  west = r.Status(Region::kWest);
  ASSERT_TRUE(west.ok()) << west.status();
  EXPECT_EQ(west->last_error(), "");
}

}  // namespace
}  // namespace ferry::testing
