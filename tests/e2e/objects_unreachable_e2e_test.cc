// A region whose own bucket does not answer (its S3 endpoint behind a FaultProxy that is cut)
// must still stop, change role and drain on SIGTERM promptly: the bucket's capture and apply
// give up their stalled calls when their owner stops (BucketSource::Run cancels its client,
// BucketEventSink::Cancel), instead of holding the stop for the S3 client's stall timeout
// (30 s) times its retries.
//
// "Promptly" is measured against that alternative: every stop here is bounded well below one
// stall timeout, where the bug took several of them. Mutant caught: BucketSource::Run not
// cancelling its client on stop (the reverse then times out and the SIGTERM drain hangs).
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "tests/e2e/bucket_pair.h"
#include "tests/e2e/two_regions.h"
#include "tests/support/fault_proxy.h"

namespace ferry::testing {
namespace {

// Well below the S3 client's stall timeout (30 s), the least a stalled call held a stop before.
constexpr absl::Duration kPrompt = absl::Seconds(20);

TEST(ObjectsUnreachableE2eTest, AnUnreachableOwnBucketDelaysNeitherARoleChangeNorASigterm) {
  auto buckets = BucketPair::Start();
  ASSERT_TRUE(buckets.ok()) << buckets.status();
  BucketPair& b = **buckets;
  auto proxy = FaultProxy::Start("127.0.0.1", b.gateway().port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  TwoRegionsOptions options = b.RegionOptions(/*without_postgres=*/true);
  // East reaches its own bucket through the proxy, and lists it every second (so that a
  // listing is in flight when the proxy is cut).
  const std::string direct = absl::StrCat("  endpoint: ", b.gateway().endpoint(), "\n  bucket:");
  ASSERT_NE(options.east_yaml.find(direct), std::string::npos) << options.east_yaml;
  options.east_yaml = absl::StrReplaceAll(
      options.east_yaml, {{direct, absl::StrCat("  endpoint: http://", (*proxy)->address(),
                                                "\n  backfill_interval_seconds: 1\n  bucket:")}});
  options.ferryd_args = {"--drain", "5"};
  auto started = TwoRegions::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  TwoRegions& r = **started;
  ASSERT_TRUE(b.PushTo(Region::kEast).ok());
  ASSERT_TRUE(b.s3().PutObject(BucketPair::Bucket(Region::kEast), "before", "b", {}).ok());
  ASSERT_TRUE(b.WaitForEqual(absl::Seconds(60)).ok()) << r.BothLogTails();

  // Cut: east's next listing connects to the proxy and stalls there.
  const uint64_t accepted = (*proxy)->stats().connections_accepted;
  (*proxy)->SetBlackhole(true);
  (*proxy)->DropConnections();
  const absl::Time until = absl::Now() + absl::Seconds(30);
  while ((*proxy)->stats().connections_accepted == accepted && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(20));  // a bounded poll of east's next listing
  }
  ASSERT_GT((*proxy)->stats().connections_accepted, accepted) << "no listing reached the proxy";

  // A role change: east's capture stops (its stalled listing cancelled), drains, and flips.
  const absl::Time reverse_start = absl::Now();
  auto reversed = r.Ctl(Region::kEast, {"reverse", "--timeout", "60"});
  const absl::Duration reverse_took = absl::Now() - reverse_start;
  ASSERT_TRUE(reversed.ok()) << reversed.status();
  ASSERT_EQ(reversed->exit_code, 0) << reversed->output << r.BothLogTails();
  EXPECT_LT(reverse_took, kPrompt) << reversed->output;
  auto east = r.PollStatus(Region::kEast, [](const v1::StatusReply& s) {
    return s.role() == "standby" && s.objects().mode() == "apply";
  });
  ASSERT_TRUE(east.ok()) << east.status();

  // East now applies west's bucket into its own, which does not answer: a copy stalls.
  ASSERT_TRUE(b.PushTo(Region::kWest).ok());
  auto west = r.PollStatus(Region::kWest, [](const v1::StatusReply& s) {
    return s.role() == "primary" && s.objects().mode() == "capture" && s.objects().connected();
  });
  ASSERT_TRUE(west.ok()) << west.status();
  ASSERT_TRUE(b.s3().PutObject(BucketPair::Bucket(Region::kWest), "after", "a", {}).ok());
  auto pending = r.PollStatus(
      Region::kEast, [](const v1::StatusReply& s) { return s.objects().objects_pending() >= 1; });
  ASSERT_TRUE(pending.ok()) << pending.status();

  // SIGTERM: the drain ends promptly and cleanly (exit 0), the copy left for the next start.
  const absl::Time stop_start = absl::Now();
  const absl::Status stopped = r.StopDaemon(Region::kEast, kPrompt);
  EXPECT_TRUE(stopped.ok()) << stopped << r.LogTail(Region::kEast);
  EXPECT_LT(absl::Now() - stop_start, kPrompt);

  // Healed: east starts again and applies what it had received.
  (*proxy)->SetBlackhole(false);
  ASSERT_TRUE(r.StartDaemon(Region::kEast).ok());
  const absl::Status equal = b.WaitForEqual(absl::Seconds(60));
  EXPECT_TRUE(equal.ok()) << equal << r.BothLogTails();
}

}  // namespace
}  // namespace ferry::testing
