// A planned switchover (`ferryctl reverse`) with a bucket replicating beside the database: the
// bucket flips direction with the database, and no object whose PUT or DELETE was acknowledged
// is lost, before or after the flip. The oracle is every acknowledged write: after the flip
// and after the new direction replicated, both buckets hold exactly the oracle's state (and
// the database rows arrive both ways).
//
// The switchover happens with object events received but not applied on the standby: west's
// reads of east's bucket go through a FaultProxy that is cut (blackhole) until west's
// switchover waits on its bucket apply. Regression test for the switchover that flipped
// without applying them: west then captured its own bucket without those objects, and its
// backfill's reconcile had east delete them (acknowledged objects lost in both regions).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/e2e/bucket_pair.h"
#include "tests/e2e/two_regions.h"
#include "tests/support/fault_proxy.h"

namespace ferry::testing {
namespace {

constexpr char kSchema[] = "CREATE TABLE notes (id int PRIMARY KEY, body text)";

class ObjectsSwitchoverE2eTest : public ::testing::Test {
 protected:
  // Every acknowledged write: key -> body, or nullopt for a key deleted.
  std::map<std::string, std::optional<std::string>> oracle_;

  void Put(Region r, const std::string& key, const std::string& body) {
    ASSERT_TRUE(buckets_->s3().PutObject(BucketPair::Bucket(r), key, body, {}).ok()) << key;
    oracle_[key] = body;
  }
  void Delete(Region r, const std::string& key) {
    ASSERT_TRUE(buckets_->s3().DeleteObject(BucketPair::Bucket(r), key).ok()) << key;
    oracle_[key] = std::nullopt;
  }
  // Both buckets hold exactly what the oracle says (and nothing else).
  void ExpectOracleIn(Region r) {
    const char* bucket = BucketPair::Bucket(r);
    size_t present = 0;
    for (const auto& [key, body] : oracle_) {
      auto got = buckets_->s3().GetObject(bucket, key);
      if (body.has_value()) {
        ++present;
        ASSERT_TRUE(got.ok()) << bucket << " lost '" << key << "': " << got.status();
        EXPECT_EQ(*got, *body) << bucket << " '" << key << "'";
      } else {
        EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound) << bucket << " '" << key << "'";
      }
    }
    auto listed = buckets_->s3().ListObjectsV2(bucket, "", "");
    ASSERT_TRUE(listed.ok());
    EXPECT_EQ(listed->objects.size(), present) << bucket;
  }

  std::unique_ptr<BucketPair> buckets_;
};

TEST_F(ObjectsSwitchoverE2eTest, TheBucketFlipsWithTheDatabaseAndNoAcknowledgedWriteIsLost) {
  auto buckets = BucketPair::Start();
  ASSERT_TRUE(buckets.ok()) << buckets.status();
  buckets_ = std::move(*buckets);
  auto proxy = FaultProxy::Start("127.0.0.1", buckets_->gateway().port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  TwoRegionsOptions options = buckets_->RegionOptions(
      /*without_postgres=*/false, absl::StrCat("http://", (*proxy)->address()));
  options.schema_sql = kSchema;
  auto regions = TwoRegions::Start(options);
  ASSERT_TRUE(regions.ok()) << regions.status();
  TwoRegions& r = **regions;
  ASSERT_TRUE(buckets_->PushTo(Region::kEast).ok());
  ASSERT_TRUE(buckets_->PushTo(Region::kWest).ok());  // 503 until west captures

  for (int i = 0; i < 10; ++i) {
    ASSERT_NO_FATAL_FAILURE(Put(Region::kEast, absl::StrCat("before/", i), absl::StrCat("b", i)));
  }
  ASSERT_NO_FATAL_FAILURE(Delete(Region::kEast, "before/3"));
  ASSERT_TRUE(r.pg(Region::kEast).Exec("INSERT INTO notes VALUES (1, 'east')").ok());
  ASSERT_TRUE(buckets_->WaitForEqual(absl::Seconds(60)).ok());

  // West receives these events but cannot read their bodies: pending when the switchover
  // starts.
  (*proxy)->SetBlackhole(true);
  (*proxy)->DropConnections();
  for (int i = 0; i < 5; ++i) {
    ASSERT_NO_FATAL_FAILURE(
        Put(Region::kEast, absl::StrCat("in flight/", i), std::string(1000 + i, 'f')));
  }
  ASSERT_NO_FATAL_FAILURE(
      Put(Region::kEast, "in flight/big", std::string((11 << 20) + 5, 'g')));  // a streamed copy
  ASSERT_NO_FATAL_FAILURE(Delete(Region::kEast, "before/4"));
  auto pending = r.PollStatus(
      Region::kWest, [](const v1::StatusReply& s) { return s.objects().objects_pending() >= 7; });
  ASSERT_TRUE(pending.ok()) << pending.status();

  absl::StatusOr<TwoRegions::CtlResult> reversed = absl::UnknownError("not run");
  std::thread ctl([&] { reversed = r.Ctl(Region::kEast, {"reverse", "--timeout", "90"}); });
  auto waiting = r.PollStatus(Region::kWest, [](const v1::StatusReply& s) {
    return absl::StrContains(s.operation(), "applying the bucket's events through seq");
  });
  EXPECT_TRUE(waiting.ok()) << waiting.status() << r.LogTail(Region::kWest);
  (*proxy)->SetBlackhole(false);
  (*proxy)->DropConnections();  // the stalled transfers fail at once and are retried
  ctl.join();
  ASSERT_TRUE(reversed.ok()) << reversed.status();
  ASSERT_EQ(reversed->exit_code, 0) << reversed->output << r.LogTail(Region::kWest);

  // West is the primary of both: it captures its bucket, east applies.
  auto west = r.PollStatus(Region::kWest, [](const v1::StatusReply& s) {
    return s.role() == "primary" && s.objects().mode() == "capture";
  });
  ASSERT_TRUE(west.ok()) << west.status();
  auto east = r.PollStatus(Region::kEast, [](const v1::StatusReply& s) {
    return s.role() == "standby" && s.objects().mode() == "apply";
  });
  ASSERT_TRUE(east.ok()) << east.status();
  // Everything acknowledged before the flip, applied before it.
  ASSERT_NO_FATAL_FAILURE(ExpectOracleIn(Region::kWest));

  // After the flip: writes on west reach east, objects and rows.
  for (int i = 0; i < 5; ++i) {
    ASSERT_NO_FATAL_FAILURE(Put(Region::kWest, absl::StrCat("after/", i), absl::StrCat("a", i)));
  }
  ASSERT_NO_FATAL_FAILURE(Put(Region::kWest, "before/0", "overwritten on west"));
  ASSERT_NO_FATAL_FAILURE(Delete(Region::kWest, "before/5"));
  ASSERT_TRUE(r.pg(Region::kWest).Exec("INSERT INTO notes VALUES (2, 'west')").ok());
  absl::Status equal = buckets_->WaitForEqual(absl::Seconds(60));
  ASSERT_TRUE(equal.ok()) << equal << r.LogTail(Region::kEast);
  ASSERT_TRUE(r.WaitForTablesEqual({"public.notes"}, absl::Seconds(60)).ok());
  ASSERT_NO_FATAL_FAILURE(ExpectOracleIn(Region::kWest));
  ASSERT_NO_FATAL_FAILURE(ExpectOracleIn(Region::kEast));
  auto rows = r.TableRows(Region::kEast, "public.notes");
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 2u);
}

// Promote with a bucket (bucket-only regions): east's ferryd is lost, west is promoted and
// captures its own bucket from then on (a backfill at the start of its capture, then the
// notices). East's region is then rebuilt empty as west's standby: everything west holds,
// written before or after the promote, reaches east's bucket, and what west does not hold is
// removed from it (the backfill's reconcile).
TEST_F(ObjectsSwitchoverE2eTest, APromotedRegionCapturesItsBucketFromThenOn) {
  auto buckets = BucketPair::Start();
  ASSERT_TRUE(buckets.ok()) << buckets.status();
  buckets_ = std::move(*buckets);
  auto regions = TwoRegions::Start(buckets_->RegionOptions(/*without_postgres=*/true));
  ASSERT_TRUE(regions.ok()) << regions.status();
  TwoRegions& r = **regions;
  ASSERT_TRUE(buckets_->PushTo(Region::kEast).ok());
  ASSERT_TRUE(buckets_->PushTo(Region::kWest).ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_NO_FATAL_FAILURE(Put(Region::kEast, absl::StrCat("before/", i), absl::StrCat("b", i)));
  }
  ASSERT_TRUE(buckets_->WaitForEqual(absl::Seconds(60)).ok());

  r.KillDaemon(Region::kEast);
  auto promoted = r.Ctl(Region::kWest, {"promote", "--json"});
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  ASSERT_EQ(promoted->exit_code, 0) << promoted->output;
  auto west = r.PollStatus(Region::kWest, [](const v1::StatusReply& s) {
    return s.role() == "primary" && s.objects().mode() == "capture" && s.objects().connected();
  });
  ASSERT_TRUE(west.ok()) << west.status();
  for (int i = 0; i < 5; ++i) {
    ASSERT_NO_FATAL_FAILURE(Put(Region::kWest, absl::StrCat("after/", i), absl::StrCat("a", i)));
  }
  ASSERT_NO_FATAL_FAILURE(Delete(Region::kWest, "before/1"));
  // East's data_dir is lost with its ferryd; its bucket holds an object west never had.
  ASSERT_TRUE(buckets_->s3().PutObject(BucketPair::Bucket(Region::kEast), "stale", "s", {}).ok());
  std::filesystem::remove_all(r.data_dir(Region::kEast));
  {
    std::ifstream in(r.config_path(Region::kEast));
    std::stringstream text;
    text << in.rdbuf();
    std::string yaml = text.str();
    const size_t at = yaml.find("role: primary");
    ASSERT_NE(at, std::string::npos);
    yaml.replace(at, 13, "role: standby");
    std::ofstream(r.config_path(Region::kEast)) << yaml;
  }
  ASSERT_TRUE(r.StartDaemon(Region::kEast).ok());
  absl::Status equal = buckets_->WaitForEqual(absl::Seconds(60));
  ASSERT_TRUE(equal.ok()) << equal << r.LogTail(Region::kEast);
  ASSERT_NO_FATAL_FAILURE(ExpectOracleIn(Region::kWest));
  ASSERT_NO_FATAL_FAILURE(ExpectOracleIn(Region::kEast));
  auto east = r.Status(Region::kEast);
  ASSERT_TRUE(east.ok());
  EXPECT_EQ(east->role(), "standby");
  EXPECT_EQ(east->objects().mode(), "apply");
}

// Promote while the lost primary's bucket does not answer (west's reads of it are cut): the
// object events west received but could not copy are reported in promote's reply, objects and
// bytes, and those objects are indeed not in west's bucket; west is primary all the same.
TEST_F(ObjectsSwitchoverE2eTest, APromoteReportsTheObjectsItCouldNotCopy) {
  auto buckets = BucketPair::Start();
  ASSERT_TRUE(buckets.ok()) << buckets.status();
  buckets_ = std::move(*buckets);
  auto proxy = FaultProxy::Start("127.0.0.1", buckets_->gateway().port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto regions = TwoRegions::Start(buckets_->RegionOptions(
      /*without_postgres=*/true, absl::StrCat("http://", (*proxy)->address())));
  ASSERT_TRUE(regions.ok()) << regions.status();
  TwoRegions& r = **regions;
  ASSERT_TRUE(buckets_->PushTo(Region::kEast).ok());
  ASSERT_NO_FATAL_FAILURE(Put(Region::kEast, "copied", "c"));
  ASSERT_TRUE(buckets_->WaitForEqual(absl::Seconds(60)).ok());
  (*proxy)->SetBlackhole(true);
  (*proxy)->DropConnections();
  for (int i = 1; i <= 3; ++i)
    ASSERT_NO_FATAL_FAILURE(
        Put(Region::kEast, absl::StrCat("lost/", i), std::string(100 * i, 'l')));
  auto pending = r.PollStatus(
      Region::kWest, [](const v1::StatusReply& s) { return s.objects().objects_pending() == 3; });
  ASSERT_TRUE(pending.ok()) << pending.status();
  r.KillDaemon(Region::kEast);
  auto promoted = r.Ctl(Region::kWest, {"promote", "--json"});
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  ASSERT_EQ(promoted->exit_code, 0) << promoted->output;
  EXPECT_NE(promoted->output.find("\"objects_not_applied\": {\"objects\": 3, \"bytes\": 600, "),
            std::string::npos)
      << promoted->output;
  auto west = r.PollStatus(Region::kWest, [](const v1::StatusReply& s) {
    return s.role() == "primary" && s.objects().mode() == "capture";
  });
  ASSERT_TRUE(west.ok()) << west.status();
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(buckets_->s3()
                  .HeadObject(BucketPair::Bucket(Region::kWest), absl::StrCat("lost/", i))
                  .status()
                  .code(),
              absl::StatusCode::kNotFound);
  }
  EXPECT_TRUE(buckets_->s3().HeadObject(BucketPair::Bucket(Region::kWest), "copied").ok());
}

}  // namespace
}  // namespace ferry::testing
