// The object path with Kafka end to end: east's bucket notices arrive through librdkafka's mock
// cluster (the real Kafka protocol over TCP, in this process) into east's ferryd, which ships
// the events; west applies them into its bucket. Bucket-only regions, a real radosgw.
//   - the objects named by Kafka messages arrive (and one written without a notice does not:
//     the path is Kafka, not a backfill), a poison message becomes a dead letter that status,
//     ferryctl and /metrics report, and the group's offsets are committed past everything;
//   - east killed between a batch's append and its offset commit (kill point kafka.appended),
//     messages published while it is down, and east back as a new member of the group (a
//     rebalance, once the killed member's session expired): nothing is lost, and the offsets
//     end committed past everything.
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/e2e/bucket_pair.h"
#include "tests/e2e/kafka_mock.h"
#include "tests/e2e/two_regions.h"
#include "tests/support/http_get.h"

namespace ferry::testing {
namespace {

constexpr char kTopic[] = "bucket-events";
constexpr char kEast[] = "east-assets";
constexpr char kWest[] = "west-assets";

std::string RgwRecord(const std::string& key) {
  return absl::StrCat(R"({"Records":[{"eventVersion":"2.2","eventSource":"ceph:s3",)",
                      R"("eventName":"ObjectCreated:Put","s3":{"bucket":{"name":")", kEast,
                      R"("},"object":{"key":")", key, R"(","size":1,"sequencer":"01"}}}]})");
}

class ObjectsKafkaE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto kafka = KafkaMock::Start(kTopic, 2);
    ASSERT_TRUE(kafka.ok()) << kafka.status();
    kafka_ = std::move(*kafka);
    auto buckets = BucketPair::Start();
    ASSERT_TRUE(buckets.ok()) << buckets.status();
    buckets_ = std::move(*buckets);
    buckets_->SetEvents(Region::kEast,
                        absl::StrCat("kafka: { brokers: \"", kafka_->bootstraps(),
                                     "\", topic: ", kTopic, ", group: ferry-east }"));
    // Found by the backfill at east's start: once west has it, that backfill is complete and
    // anything later arrives only through Kafka.
    ASSERT_TRUE(buckets_->s3().PutObject(kEast, "sentinel", "s", {}).ok());
    auto regions = TwoRegions::Start(buckets_->RegionOptions(/*without_postgres=*/true));
    ASSERT_TRUE(regions.ok()) << regions.status();
    regions_ = std::move(*regions);
    ASSERT_TRUE(OnWest("sentinel", absl::Seconds(60)));
  }
  // Polls west's bucket for the key (every 100 ms).
  bool OnWest(const std::string& key, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (buckets_->s3().HeadObject(kWest, key).ok()) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }
  void PutAndNotify(const std::string& key, int32_t partition) {
    ASSERT_TRUE(buckets_->s3().PutObject(kEast, key, "body of " + key, {}).ok());
    ASSERT_TRUE(kafka_->Publish(partition, RgwRecord(key)).ok());
  }
  // Polls the group's committed offsets until they are `want` (30 s).
  absl::Status CommittedBecomes(const std::vector<int64_t>& want) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    std::string last;
    while (absl::Now() < deadline) {
      auto got = kafka_->Committed("ferry-east");
      if (got.ok() && *got == want) return absl::OkStatus();
      last = got.ok() ? absl::StrCat((*got)[0], ",", (*got)[1]) : got.status().ToString();
      absl::SleepFor(absl::Milliseconds(200));
    }
    return absl::DeadlineExceededError("committed offsets: " + last);
  }

  std::unique_ptr<KafkaMock> kafka_;
  std::unique_ptr<BucketPair> buckets_;
  std::unique_ptr<TwoRegions> regions_;
};

TEST_F(ObjectsKafkaE2eTest, NoticesThroughKafkaReachThePeerAndAPoisonMessageIsReported) {
  ASSERT_TRUE(buckets_->s3().PutObject(kEast, "silent", "never notified", {}).ok());
  for (int i = 0; i < 5; ++i) PutAndNotify(absl::StrCat("k", i), i % 2);
  ASSERT_TRUE(kafka_->Publish(1, "{ this is not a notification").ok());
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(OnWest(absl::StrCat("k", i), absl::Seconds(60))) << "k" << i;
  }
  auto got = buckets_->s3().GetObject(kWest, "k3");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "body of k3");
  EXPECT_EQ(buckets_->s3().HeadObject(kWest, "silent").status().code(),
            absl::StatusCode::kNotFound);

  auto east = regions_->PollStatus(
      Region::kEast, [](const v1::StatusReply& s) { return s.objects().dead_letters() == 1; });
  ASSERT_TRUE(east.ok()) << east.status();
  ASSERT_EQ(east->objects().warnings_size(), 1);
  EXPECT_NE(east->objects().warnings(0).find("kept in the log as dead letters"), std::string::npos)
      << east->objects().warnings(0);
  EXPECT_NE(east->objects().warnings(0).find("kafka bucket-events/1@"), std::string::npos)
      << east->objects().warnings(0);
  auto ctl = regions_->Ctl(Region::kEast, {"status"});
  ASSERT_TRUE(ctl.ok());
  EXPECT_NE(ctl->output.find("WARNING     objects: 1 notification record(s) could not be read"),
            std::string::npos)
      << ctl->output;
  auto metrics =
      HttpGet(absl::StrCat("http://", regions_->metrics_address(Region::kEast), "/metrics"));
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("\nferry_objects_dead_letters_total 1\n"), std::string::npos);
  // Offsets committed past every message, the poison one included (it is durable as a dead
  // letter).
  absl::Status committed = CommittedBecomes({3, 3});
  EXPECT_TRUE(committed.ok()) << committed;
}

TEST_F(ObjectsKafkaE2eTest, AKillBetweenAppendAndCommitAndARebalanceLoseNothing) {
  ASSERT_TRUE(regions_->StopDaemon(Region::kEast).ok());
  ASSERT_TRUE(regions_->StartDaemon(Region::kEast, {"FERRY_KILL_POINT=kafka.appended@1"}).ok());
  PutAndNotify("first", 0);
  ASSERT_TRUE(regions_->WaitForExit(Region::kEast)) << "east never reached the kill point";
  ASSERT_NE(regions_->LogTail(Region::kEast).find("kill point kafka.appended@1 reached"),
            std::string::npos)
      << regions_->LogTail(Region::kEast);
  // Durable in east's log, never committed to Kafka.
  auto committed = kafka_->Committed("ferry-east");
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_LT((*committed)[0], 1);
  // While east is down: more on both partitions.
  PutAndNotify("while down 0", 0);
  PutAndNotify("while down 1", 1);
  // East back: a new member of the group; the killed one's partitions come to it once its
  // session expired (10 s), and it resumes at its log's offsets.
  ASSERT_TRUE(regions_->StartDaemon(Region::kEast).ok());
  PutAndNotify("after", 1);
  for (const char* key : {"first", "while down 0", "while down 1", "after"}) {
    EXPECT_TRUE(OnWest(key, absl::Seconds(90))) << key << regions_->LogTail(Region::kEast);
  }
  absl::Status done = CommittedBecomes({2, 2});
  EXPECT_TRUE(done.ok()) << done;
  EXPECT_TRUE(buckets_->WaitForEqual(absl::Seconds(30)).ok());
}

}  // namespace
}  // namespace ferry::testing
