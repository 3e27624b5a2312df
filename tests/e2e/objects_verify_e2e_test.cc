// ferryctl verify --bucket between two ferryd (docs/objects.md, "Verify"), bucket-only regions
// on a real radosgw: equal buckets are EQUAL although the same content was uploaded with other
// part sizes (different multipart ETags); differences planted behind Ferry's back on the
// standby's bucket (a key deleted, one added, one with other content of the same size, one
// with other metadata) are each reported under its kind, exit 2; --repair makes the standby
// match (exit 0) and replication goes on; an object the standby has not applied yet (lag) is
// not reported; malformed command lines are refused. Mutants: comparing ETags instead of
// content (the multipart object reads as changed), comparing sizes only (the same-size
// overwrite is missed), no second pass after the cut (the lagging key is reported).
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "tests/e2e/bucket_pair.h"
#include "tests/e2e/two_regions.h"

namespace ferry::testing {
namespace {

constexpr char kEast[] = "east-assets";
constexpr char kWest[] = "west-assets";

class ObjectsVerifyE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto buckets = BucketPair::Start();
    ASSERT_TRUE(buckets.ok()) << buckets.status();
    buckets_ = std::move(*buckets);
    auto regions = TwoRegions::Start(buckets_->RegionOptions(/*without_postgres=*/true));
    ASSERT_TRUE(regions.ok()) << regions.status();
    regions_ = std::move(*regions);
    ASSERT_TRUE(buckets_->PushTo(Region::kEast).ok());
  }
  s3::S3Client& s3() { return buckets_->s3(); }
  // `ferryctl verify --bucket ARGS... --json` on east: exit code and the JSON line.
  std::pair<int, std::string> Verify(const std::vector<std::string>& more = {}) {
    std::vector<std::string> args = {"verify", "--bucket", "--json", "--timeout", "60"};
    args.insert(args.end(), more.begin(), more.end());
    auto done = regions_->Ctl(Region::kEast, args);
    EXPECT_TRUE(done.ok()) << done.status();
    if (!done.ok()) return {-1, ""};
    const size_t at = done->output.find("{\"equal\"");
    return {done->exit_code, at == std::string::npos
                                 ? done->output
                                 : done->output.substr(at, done->output.find('\n', at) - at)};
  }
  // A 13 MiB object uploaded in 6 MiB parts (west's copy uses 5 MiB parts: another ETag).
  void PutMultipart(const std::string& key) {
    auto id = s3().CreateMultipartUpload(kEast, key, {.content_type = "video/mp4"});
    ASSERT_TRUE(id.ok()) << id.status();
    std::vector<s3::CompletedPart> parts;
    const size_t part = 6 << 20, total = 13 << 20;
    for (size_t off = 0, n = 1; off < total; off += part, ++n) {
      std::string body(std::min(part, total - off), static_cast<char>('a' + n));
      auto etag = s3().UploadPart(kEast, key, *id, static_cast<int>(n), body);
      ASSERT_TRUE(etag.ok()) << etag.status();
      parts.push_back({static_cast<int>(n), *etag});
    }
    ASSERT_TRUE(s3().CompleteMultipartUpload(kEast, key, *id, parts).ok());
  }

  std::unique_ptr<BucketPair> buckets_;
  std::unique_ptr<TwoRegions> regions_;
};

TEST_F(ObjectsVerifyE2eTest, ReportsPlantedDifferencesByKindAndRepairsThem) {
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(s3().PutObject(kEast, absl::StrCat("doc/", i), absl::StrCat("body ", i),
                               {.content_type = "text/plain", .metadata = {{"owner", "app"}}})
                    .ok());
  }
  PutMultipart("video one");
  ASSERT_TRUE(buckets_->WaitForEqual(absl::Seconds(60)).ok());
  auto west_head = s3().HeadObject(kWest, "video one");
  auto east_head = s3().HeadObject(kEast, "video one");
  ASSERT_TRUE(west_head.ok() && east_head.ok());
  ASSERT_NE(west_head->etag, east_head->etag);  // the premise: multipart ETags differ

  auto [code, json] = Verify();
  EXPECT_EQ(code, 0) << json;
  EXPECT_NE(json.find("\"equal\": true"), std::string::npos) << json;
  EXPECT_NE(json.find("\"rows_compared\": 7"), std::string::npos) << json;

  // Behind Ferry's back, on the standby's bucket (nothing captures it: west is the standby).
  ASSERT_TRUE(s3().DeleteObject(kWest, "doc/1").ok());
  ASSERT_TRUE(s3().PutObject(kWest, "stray", "only on west", {}).ok());
  ASSERT_TRUE(s3().PutObject(kWest, "doc/2", "BODY 2",
                             {.content_type = "text/plain", .metadata = {{"owner", "app"}}})
                  .ok());  // same size, other content
  ASSERT_TRUE(s3().PutObject(kWest, "doc/3", "body 3",
                             {.content_type = "text/plain", .metadata = {{"owner", "mallory"}}})
                  .ok());
  std::tie(code, json) = Verify();
  EXPECT_EQ(code, 2) << json;
  EXPECT_NE(json.find("\"differences\": 4"), std::string::npos) << json;
  EXPECT_NE(json.find("\"missing\": [{\"key\": \"doc/1\"}]"), std::string::npos) << json;
  EXPECT_NE(json.find("\"extra\": [{\"key\": \"stray\"}]"), std::string::npos) << json;
  EXPECT_NE(json.find("\"changed\": [{\"key\": \"doc/2\"}, {\"key\": \"doc/3\"}]"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("doc/2: content differs (SHA-256)"), std::string::npos) << json;
  EXPECT_NE(json.find("doc/3: user metadata differs"), std::string::npos) << json;
  // The readable form names them too.
  auto human = regions_->Ctl(Region::kEast, {"verify", "--bucket", "--max-keys", "1"});
  ASSERT_TRUE(human.ok());
  EXPECT_EQ(human->exit_code, 2) << human->output;
  EXPECT_NE(human->output.find("bucket east-assets -> west-assets: DIFFERENT (1 missing on the "
                               "standby, 1 extra on the standby, 2 changed)"),
            std::string::npos)
      << human->output;

  std::tie(code, json) = Verify({"--repair"});
  EXPECT_EQ(code, 0) << json;
  EXPECT_NE(json.find("\"repaired\": true"), std::string::npos) << json;
  EXPECT_NE(json.find("\"recheck_equal\": true"), std::string::npos) << json;
  EXPECT_TRUE(buckets_->WaitForEqual(absl::Seconds(1)).ok());
  std::tie(code, json) = Verify();
  EXPECT_EQ(code, 0) << json;
  // Replication goes on over the repaired keys.
  ASSERT_TRUE(s3().PutObject(kEast, "doc/1", "after the repair", {}).ok());
  EXPECT_TRUE(buckets_->WaitForEqual(absl::Seconds(30)).ok());
}

// West's apply held back (paused) while the verify's first pass runs: the new key is missing
// on west then, but it is lag, not a difference; the verify waits for the cut, west resumes
// and reaches it, and the second pass finds the key equal.
TEST_F(ObjectsVerifyE2eTest, AKeyTheStandbyHasNotAppliedYetIsNotADifference) {
  ASSERT_TRUE(s3().PutObject(kEast, "old", "o", {}).ok());
  ASSERT_TRUE(buckets_->WaitForEqual(absl::Seconds(60)).ok());
  ASSERT_TRUE(regions_->Pause(Region::kWest).ok());
  ASSERT_TRUE(s3().PutObject(kEast, "new", "lagging", {}).ok());
  std::pair<int, std::string> result;
  std::thread verify([&] { result = Verify(); });
  auto waiting = regions_->PollStatus(
      Region::kEast,
      [](const v1::StatusReply& s) {
        return s.operation().find("bucket apply to reach seq") != std::string::npos;
      },
      absl::Seconds(60));
  EXPECT_TRUE(waiting.ok()) << waiting.status();
  ASSERT_TRUE(regions_->Resume(Region::kWest).ok());
  verify.join();
  EXPECT_EQ(result.first, 0) << result.second;
  EXPECT_NE(result.second.find("1 key(s) differed in the first pass"), std::string::npos)
      << result.second;
}

// --repair beside the standby's own apply, with the application writing on: keys planted
// different on west are repaired while east keeps overwriting them (and others). The repair
// counts a key only when east's state held still around its copy, and rechecks once west's
// apply passed a new cut; afterwards, the writes stopped, the buckets converge to the last
// write of every key (the oracle) and a plain verify finds them equal. Mutant: a repair that
// copies once and rechecks at once (a copy of a state east had left may land last, or lag
// reads as a recheck difference: exit 2).
TEST_F(ObjectsVerifyE2eTest, ARepairBesideTheStandbysApplyWithWritesGoingOnEndsEqual) {
  constexpr int kKeys = 12;
  std::map<std::string, std::string> last;  // the oracle: key -> last body written on east
  for (int i = 0; i < kKeys; ++i) {
    const std::string key = absl::StrCat("hot/", i);
    ASSERT_TRUE(s3().PutObject(kEast, key, "v0", {}).ok());
    last[key] = "v0";
  }
  ASSERT_TRUE(buckets_->WaitForEqual(absl::Seconds(60)).ok());
  // Behind Ferry's back on west: every key differs.
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_TRUE(s3().PutObject(kWest, absl::StrCat("hot/", i), "planted", {}).ok());
  }
  std::atomic<bool> writing{true};
  std::atomic<int> writes{0};
  absl::Mutex mu;
  std::thread writer([&] {
    for (int n = 1; writing.load(); ++n) {
      const std::string key = absl::StrCat("hot/", n % kKeys);
      const std::string body = absl::StrCat("v", n);
      if (!s3().PutObject(kEast, key, body, {}).ok()) continue;
      absl::MutexLock lock(&mu);
      last[key] = body;
      ++writes;
    }
  });
  auto [code, json] = Verify({"--repair"});
  writing = false;
  writer.join();
  EXPECT_EQ(code, 0) << json;
  EXPECT_GT(writes.load(), 0);
  ASSERT_TRUE(buckets_->WaitForEqual(absl::Seconds(60)).ok());
  for (const auto& [key, body] : last) {
    auto got = s3().GetObject(kWest, key);
    ASSERT_TRUE(got.ok()) << key << ": " << got.status();
    EXPECT_EQ(*got, body) << key;
  }
  std::tie(code, json) = Verify();
  EXPECT_EQ(code, 0) << json;
}

TEST_F(ObjectsVerifyE2eTest, MalformedCommandLinesAreRefused) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"verify", "--bucket", "--table", "public.t"},
                                             {"status", "--bucket"},
                                             {"verify", "--bucket", "--max-keys", "0"},
                                             {"verify", "--bucket", "--max-keys", "x"},
                                             {"verify", "--bucket", "--rate", "5"}}) {
    auto ctl = regions_->Ctl(Region::kEast, args);
    ASSERT_TRUE(ctl.ok());
    EXPECT_EQ(ctl->exit_code, 1) << absl::StrJoin(args, " ") << ": " << ctl->output;
  }
  // A bucket-only region has no database to verify; the standby is not where verify runs.
  auto db = regions_->Ctl(Region::kEast, {"verify"});
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(db->exit_code, 1);
  EXPECT_NE(db->output.find("use verify --bucket"), std::string::npos) << db->output;
  auto standby = regions_->Ctl(Region::kWest, {"verify", "--bucket"});
  ASSERT_TRUE(standby.ok());
  EXPECT_EQ(standby->exit_code, 1);
  EXPECT_NE(standby->output.find("send verify to the replicating primary"), std::string::npos)
      << standby->output;
}

}  // namespace
}  // namespace ferry::testing
