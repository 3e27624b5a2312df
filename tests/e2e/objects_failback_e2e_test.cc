// Failback with a bucket (`ferryctl rejoin`, docs/objects.md "Rejoin"): east, its shipping held,
// writes objects (a new key, an overwrite, a delete) it never ships; east is lost and west is
// promoted and writes too, one of the same keys; east comes back fenced and rejoins. The rejoin
// keeps one quarantine entry per unshipped object event (key, version, size, ETag), the versions
// stay in east's bucket (the repair and west's backfill make them noncurrent, never remove them),
// and the buckets end equal (verify --bucket).
//
// Two set-ups: with Postgres beside the bucket (the entries in ferry.quarantine, with the
// database's own kept rows) and bucket-only (the entries in west's file quarantine, listed and
// decided with ferryctl quarantine). The oracle is what the test wrote: the PUT results' versions
// and ETags.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/e2e/bucket_pair.h"
#include "tests/e2e/two_regions.h"

namespace ferry::testing {
namespace {

#define ASSERT_OK(expr)                   \
  do {                                    \
    const absl::Status status_ = (expr);  \
    ASSERT_TRUE(status_.ok()) << status_; \
  } while (0)

constexpr char kSchema[] = "CREATE TABLE notes (id int PRIMARY KEY, body text)";

class ObjectsFailbackE2eTest : public ::testing::Test {
 protected:
  void StartRegions(bool without_postgres) {
    without_postgres_ = without_postgres;
    auto buckets = BucketPair::Start();
    ASSERT_TRUE(buckets.ok()) << buckets.status();
    buckets_ = std::move(*buckets);
    TwoRegionsOptions options = buckets_->RegionOptions(without_postgres);
    if (!without_postgres) options.schema_sql = kSchema;
    // A primary whose peer is fenced (it refuses the stream) would wait all of its drain.
    options.ferryd_args = {"--drain", "2"};
    auto regions = TwoRegions::Start(options);
    ASSERT_TRUE(regions.ok()) << regions.status();
    regions_ = std::move(*regions);
    ASSERT_OK(buckets_->PushTo(Region::kEast));
    ASSERT_OK(buckets_->PushTo(Region::kWest));  // 503 until west captures
  }

  s3::PutResult Put(Region r, const std::string& key, const std::string& body) {
    auto put = buckets_->s3().PutObject(BucketPair::Bucket(r), key, body, {});
    EXPECT_TRUE(put.ok()) << key << ": " << put.status();
    return put.ok() ? *put : s3::PutResult{};
  }

  // Every version (not delete marker) of east's bucket: version id -> key.
  std::map<std::string, std::string> EastVersions() {
    std::map<std::string, std::string> out;
    std::string key_marker, version_marker;
    while (true) {
      auto page = buckets_->s3().ListObjectVersions(BucketPair::Bucket(Region::kEast), "",
                                                    key_marker, version_marker);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) return out;
      for (const s3::ListedVersion& v : page->versions) {
        if (!v.delete_marker) out[v.version_id] = v.key;
      }
      if (!page->truncated) return out;
      key_marker = page->next_key_marker;
      version_marker = page->next_version_id_marker;
    }
  }

  std::string VersionBody(const std::string& key, const std::string& version) {
    std::string body;
    auto got = buckets_->s3().GetObjectStreamed(BucketPair::Bucket(Region::kEast), key, version,
                                                [&](std::string_view chunk) {
                                                  body.append(chunk);
                                                  return absl::OkStatus();
                                                });
    return got.ok() ? body : absl::StrCat("<", got.status().ToString(), ">");
  }

  // The game day up to the rejoin: returns east's unshipped PUTs (key -> result).
  std::map<std::string, s3::PutResult> DivergeLoseAndRejoin(std::string* rejoin_output) {
    std::map<std::string, s3::PutResult> unshipped;
    Put(Region::kEast, "shared/1", "one");
    Put(Region::kEast, "shared/2", "two");
    Put(Region::kEast, "kept", "k");
    EXPECT_TRUE(buckets_->WaitForEqual(absl::Seconds(60)).ok());

    // East holds its shipping: what it writes now is durable in its outbound log (radosgw's
    // push returns once the webhook answered, and it answers once the event is durable), never
    // shipped.
    EXPECT_TRUE(regions_->Pause(Region::kEast).ok());
    unshipped["east only/new"] = Put(Region::kEast, "east only/new", "east body");
    unshipped["shared/1"] = Put(Region::kEast, "shared/1", "east overwrite");
    EXPECT_TRUE(buckets_->s3().DeleteObject(BucketPair::Bucket(Region::kEast), "shared/2").ok());
    if (!without_postgres_) {
      EXPECT_TRUE(regions_->pg(Region::kEast).Exec("INSERT INTO notes VALUES (1, 'east')").ok());
    }

    regions_->KillDaemon(Region::kEast);
    if (!without_postgres_) {
      EXPECT_TRUE(regions_->pg(Region::kEast).Stop(PgCluster::StopMode::kImmediate).ok());
    }
    auto promoted = regions_->Ctl(Region::kWest, {"promote"});
    EXPECT_TRUE(promoted.ok());
    if (!promoted.ok()) return unshipped;
    EXPECT_EQ(promoted->exit_code, 0) << promoted->output;
    auto west = regions_->PollStatus(Region::kWest, [](const v1::StatusReply& s) {
      return s.role() == "primary" && s.objects().mode() == "capture" && s.objects().connected();
    });
    EXPECT_TRUE(west.ok()) << west.status();
    Put(Region::kWest, "shared/1", "west overwrite");
    Put(Region::kWest, "west new", "west body");

    if (!without_postgres_) {
      EXPECT_TRUE(regions_->pg(Region::kEast).StartAgain().ok());
    }
    EXPECT_TRUE(regions_->StartDaemon(Region::kEast).ok());
    auto fenced = regions_->PollStatus(Region::kEast, [](const v1::StatusReply& s) {
      return s.role() == "primary" && s.state() == "diverged" && s.divergence().known();
    });
    EXPECT_TRUE(fenced.ok()) << fenced.status();
    auto rejoined = regions_->Ctl(Region::kEast, {"rejoin", "--json", "--timeout", "120"});
    EXPECT_TRUE(rejoined.ok());
    if (!rejoined.ok()) return unshipped;
    EXPECT_EQ(rejoined->exit_code, 0) << rejoined->output;
    *rejoin_output = rejoined->output;
    return unshipped;
  }

  // After the rejoin: the unshipped versions are still in east's bucket, with their bodies;
  // the buckets are equal, by ferryctl verify --bucket too; east is west's standby.
  void ExpectVersionsKeptAndBucketsEqual(const std::map<std::string, s3::PutResult>& unshipped) {
    ASSERT_OK(buckets_->WaitForEqual(absl::Seconds(60)));
    const std::map<std::string, std::string> versions = EastVersions();
    for (const auto& [key, put] : unshipped) {
      ASSERT_FALSE(put.version_id.empty()) << key;
      auto it = versions.find(put.version_id);
      ASSERT_NE(it, versions.end())
          << "east's bucket lost version " << put.version_id << " of '" << key << "'";
      EXPECT_EQ(it->second, key);
    }
    EXPECT_EQ(VersionBody("east only/new", unshipped.at("east only/new").version_id), "east body");
    EXPECT_EQ(VersionBody("shared/1", unshipped.at("shared/1").version_id), "east overwrite");
    // Not current any more: west's state won (west never had "east only/new").
    EXPECT_EQ(buckets_->s3()
                  .HeadObject(BucketPair::Bucket(Region::kEast), "east only/new")
                  .status()
                  .code(),
              absl::StatusCode::kNotFound);
    auto current = buckets_->s3().GetObject(BucketPair::Bucket(Region::kEast), "shared/1");
    ASSERT_TRUE(current.ok()) << current.status();
    EXPECT_EQ(*current, "west overwrite");

    auto verified = regions_->Ctl(Region::kWest, {"verify", "--bucket"});
    ASSERT_TRUE(verified.ok());
    EXPECT_EQ(verified->exit_code, 0) << verified->output;
    auto east = regions_->Status(Region::kEast);
    ASSERT_TRUE(east.ok());
    EXPECT_EQ(east->role(), "standby");
    EXPECT_EQ(east->state(), "replicating");
    // West's writes after the rejoin reach east's bucket.
    Put(Region::kWest, "after rejoin", "a");
    ASSERT_OK(buckets_->WaitForEqual(absl::Seconds(60)));
  }

  void TearDown() override {
    if (HasFailure() && regions_) std::cerr << regions_->BothLogTails(12000);
  }

  bool without_postgres_ = false;
  std::unique_ptr<BucketPair> buckets_;
  std::unique_ptr<TwoRegions> regions_;
};

TEST_F(ObjectsFailbackE2eTest, RejoinQuarantinesUnshippedObjectsAndKeepsTheirVersions) {
  ASSERT_NO_FATAL_FAILURE(StartRegions(/*without_postgres=*/false));
  std::string output;
  const std::map<std::string, s3::PutResult> unshipped = DivergeLoseAndRejoin(&output);
  ASSERT_FALSE(HasFailure());
  EXPECT_NE(output.find("\"objects_quarantined\": 3,"), std::string::npos) << output;
  EXPECT_NE(output.find("\"quarantined\": 4,"), std::string::npos) << output;  // and the row

  // One ferry.quarantine row per object event, with its version, size and ETag.
  auto rows = regions_->pg(Region::kWest)
                  .Query(
                      "SELECT op, table_schema || '.' || table_name, key::jsonb->>'key', "
                      "after::jsonb->>'version_id', after::jsonb->>'size', "
                      "after::jsonb->>'etag', coalesce(current_row, ''), status FROM "
                      "ferry.quarantine WHERE op LIKE 'object%' ORDER BY id");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 3u);
  std::map<std::string, std::vector<std::string>> by_key;
  for (const auto& row : *rows) {
    std::vector<std::string> fields;
    for (const auto& f : row) fields.push_back(f.value_or("<null>"));
    by_key[fields[2]] = fields;
  }
  for (const auto& [key, put] : unshipped) {
    ASSERT_TRUE(by_key.contains(key)) << key;
    const std::vector<std::string>& f = by_key[key];
    EXPECT_EQ(f[0], "object_put");
    EXPECT_EQ(f[1], "s3.east-assets");
    EXPECT_EQ(f[3], put.version_id) << key;
    EXPECT_EQ(f[4], key == "shared/1" ? "14" : "9") << key;
    EXPECT_TRUE(absl::StrContains(f[5], put.etag)) << f[5] << " vs " << put.etag;
    EXPECT_EQ(f[7], "pending");
  }
  ASSERT_TRUE(by_key.contains("shared/2"));
  EXPECT_EQ(by_key["shared/2"][0], "object_delete");
  // The row east committed, kept beside them.
  auto row = regions_->pg(Region::kWest)
                 .Query(
                     "SELECT count(*) FROM ferry.quarantine WHERE op = 'insert' AND "
                     "table_name = 'notes'");
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ((*row)[0][0].value_or(""), "1");

  ASSERT_NO_FATAL_FAILURE(ExpectVersionsKeptAndBucketsEqual(unshipped));

  // An object entry is not reapplied by Ferry; it is discarded once the operator decided.
  auto first = regions_->pg(Region::kWest)
                   .Query("SELECT min(id) FROM ferry.quarantine WHERE op LIKE 'object%'");
  ASSERT_TRUE(first.ok());
  const std::string entry = (*first)[0][0].value_or("0");
  auto reapply = regions_->Ctl(Region::kWest, {"quarantine", "reapply", entry});
  ASSERT_TRUE(reapply.ok());
  EXPECT_EQ(reapply->exit_code, 1) << reapply->output;
  EXPECT_NE(reapply->output.find("not reapplied by Ferry"), std::string::npos) << reapply->output;
  auto discard = regions_->Ctl(Region::kWest, {"quarantine", "discard", entry});
  ASSERT_TRUE(discard.ok());
  EXPECT_EQ(discard->exit_code, 0) << discard->output;
  EXPECT_NE(discard->output.find("1 change"), std::string::npos) << discard->output;
}

TEST_F(ObjectsFailbackE2eTest, BucketOnlyRejoinKeepsTheEntriesInTheNewPrimarysFileQuarantine) {
  ASSERT_NO_FATAL_FAILURE(StartRegions(/*without_postgres=*/true));
  std::string output;
  const std::map<std::string, s3::PutResult> unshipped = DivergeLoseAndRejoin(&output);
  ASSERT_FALSE(HasFailure());
  EXPECT_NE(output.find("\"objects_quarantined\": 3,"), std::string::npos) << output;

  auto listed = regions_->Ctl(Region::kWest, {"quarantine", "list", "--json"});
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->exit_code, 0) << listed->output;
  EXPECT_NE(listed->output.find("\"total\": 3,"), std::string::npos) << listed->output;
  EXPECT_NE(listed->output.find("\"pending\": 3,"), std::string::npos) << listed->output;
  for (const auto& [key, put] : unshipped) {
    EXPECT_NE(listed->output.find(put.version_id), std::string::npos) << key << listed->output;
    EXPECT_NE(listed->output.find(put.etag), std::string::npos) << key << listed->output;
  }
  EXPECT_NE(listed->output.find("object_delete"), std::string::npos) << listed->output;
  EXPECT_NE(listed->output.find(R"("size": "14")"), std::string::npos) << listed->output;

  ASSERT_NO_FATAL_FAILURE(ExpectVersionsKeptAndBucketsEqual(unshipped));

  // The file quarantine survives a restart of west's ferryd, and takes decisions.
  ASSERT_OK(regions_->StopDaemon(Region::kWest, absl::Seconds(30)));
  ASSERT_OK(regions_->StartDaemon(Region::kWest));
  auto reapply = regions_->Ctl(Region::kWest, {"quarantine", "reapply", "1"});
  ASSERT_TRUE(reapply.ok());
  EXPECT_EQ(reapply->exit_code, 1) << reapply->output;
  EXPECT_NE(reapply->output.find("not reapplied by Ferry"), std::string::npos) << reapply->output;
  auto discard = regions_->Ctl(Region::kWest, {"quarantine", "discard", "1", "--note", "seen"});
  ASSERT_TRUE(discard.ok());
  EXPECT_EQ(discard->exit_code, 0) << discard->output;
  auto again = regions_->Ctl(Region::kWest, {"quarantine", "discard", "1"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->exit_code, 1) << again->output;
  auto pending =
      regions_->Ctl(Region::kWest, {"quarantine", "list", "--status", "pending", "--json"});
  ASSERT_TRUE(pending.ok());
  EXPECT_NE(pending->output.find("\"total\": 2,"), std::string::npos) << pending->output;
}

}  // namespace
}  // namespace ferry::testing
