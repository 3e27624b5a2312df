// KafkaNoticeReader against librdkafka's mock cluster (the real Kafka protocol over TCP) and
// radosgw for the bucket's truth, capturing into the engine's real log. Checked: every
// message captured once with its partition's offset in the same append; a poison message and a
// record for another bucket kept as dead letters; a restart after a crash between the append
// and the Kafka commit re-reads nothing (the log's offsets win); fetch and commit errors
// injected by the mock cluster are retried without loss or duplicates.
// Mutants caught: committing before the append (the restart skips), seeking to the group's
// offset instead of the log's (the restart duplicates), dropping a poison message silently.
#include "connectors/s3/kafka_notice_reader.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "connectors/s3/gateway_suite.h"
#include "engine/capture/log_capture_target.h"
#include "engine/log/durable_log.h"
#include "tests/support/radosgw.h"
#include "tests/support/temp_dir.h"

namespace ferry::s3 {
namespace {

using ::ferry::testing::TempDir;

constexpr int16_t kApiFetch = 1;
constexpr int16_t kApiOffsetCommit = 8;
constexpr char kTopic[] = "bucket-events";

std::string RgwRecord(const std::string& bucket, const std::string& key) {
  return absl::StrCat(R"({"Records":[{"eventVersion":"2.2","eventSource":"ceph:s3",)",
                      R"("eventName":"ObjectCreated:Put","s3":{"bucket":{"name":")", bucket,
                      R"("},"object":{"key":")", key, R"(","size":"3","sequencer":"01"}}}]})");
}

class KafkaNoticeReaderTest : public GatewaySuite {
 protected:
  void SetUp() override {
    ASSERT_NE(rgw_, nullptr);
    auto c = S3Client::Open({.endpoint = rgw_->endpoint(), .credentials = Keys()});
    ASSERT_TRUE(c.ok());
    client_ = std::shared_ptr<S3Client>(std::move(*c));
    static int n = 0;
    bucket_ = absl::StrCat("kafka-", ++n);
    ASSERT_TRUE(client_->CreateBucket(bucket_).ok());
    auto source = BucketSource::Create({.client = client_, .bucket = bucket_});
    ASSERT_TRUE(source.ok()) << source.status();
    source_ = std::move(*source);
    auto log = DurableLog::Open({.path = dir_.File("outbound")});
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = std::move(*log);
    capture_ = std::make_unique<LogCaptureTarget>(log_.get(), "east", [] { return uint64_t{1}; });
    ASSERT_TRUE(capture_->Load().ok());

    char err[256];
    host_ = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof(err));
    ASSERT_NE(host_, nullptr) << err;
    mock_ = rd_kafka_mock_cluster_new(host_, 1);
    ASSERT_NE(mock_, nullptr);
    ASSERT_EQ(rd_kafka_mock_topic_create(mock_, kTopic, 2, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", rd_kafka_mock_cluster_bootstraps(mock_),
                                err, sizeof(err)),
              RD_KAFKA_CONF_OK);
    producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    ASSERT_NE(producer_, nullptr) << err;
  }
  void TearDown() override {
    if (producer_ != nullptr) rd_kafka_destroy(producer_);
    if (mock_ != nullptr) rd_kafka_mock_cluster_destroy(mock_);
    if (host_ != nullptr) rd_kafka_destroy(host_);
  }
  void Publish(int32_t partition, const std::string& value) {
    ASSERT_EQ(
        rd_kafka_producev(producer_, RD_KAFKA_V_TOPIC(kTopic), RD_KAFKA_V_PARTITION(partition),
                          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
        RD_KAFKA_RESP_ERR_NO_ERROR);
    ASSERT_EQ(rd_kafka_flush(producer_, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  std::unique_ptr<KafkaNoticeReader> Reader(bool commit = true) {
    auto r = KafkaNoticeReader::Create({.brokers = rd_kafka_mock_cluster_bootstraps(mock_),
                                        .topic = kTopic,
                                        .group = "ferry-east",
                                        // The mock cluster waits a session out before it hands
                                        // a closed member's partitions to the next one.
                                        .session_timeout = absl::Seconds(6),
                                        .commit_to_kafka = commit},
                                       source_.get());
    EXPECT_TRUE(r.ok()) << r.status();
    return std::move(*r);
  }
  // Runs the reader until `messages` messages are durable (polled, 60 s at most), then stops.
  void RunUntil(KafkaNoticeReader& reader, uint64_t messages) {
    StopSignal stop;
    absl::Status status;
    std::thread run([&] { status = reader.Run(*capture_, stop); });
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (reader.counters().messages < messages && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    stop.Stop();
    run.join();
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_EQ(reader.counters().messages, messages) << reader.last_error();
  }
  std::vector<v1::SourceEvent> Logged(const std::string& type) {
    std::vector<v1::SourceEvent> out;
    auto records = log_->Read(1, 100000, 64 << 20);
    EXPECT_TRUE(records.ok());
    for (const LogRecord& r : *records) {
      v1::SourceEvent e;
      if (r.kind == RecordKind::kSourceEvent && e.ParseFromString(r.payload) && e.type() == type) {
        out.push_back(std::move(e));
      }
    }
    return out;
  }
  std::multiset<std::string> LoggedKeys() {
    std::multiset<std::string> keys;
    for (const v1::SourceEvent& e : Logged(kObjectEventType)) {
      ObjectEvent o;
      EXPECT_TRUE(o.ParseFromString(e.body()));
      keys.insert(o.key());
    }
    return keys;
  }

  TempDir dir_{"ferry-kafka-notices"};
  std::shared_ptr<S3Client> client_;
  std::string bucket_;
  std::unique_ptr<BucketSource> source_;
  std::unique_ptr<DurableLog> log_;
  std::unique_ptr<LogCaptureTarget> capture_;
  rd_kafka_t* host_ = nullptr;
  rd_kafka_mock_cluster_t* mock_ = nullptr;
  rd_kafka_t* producer_ = nullptr;
};

// The heartbeat is a tenth of the session timeout, at least 100 ms, and librdkafka accepts every
// setting at the bounds of events.kafka.session_timeout_ms (1 s to 1 h).
TEST(KafkaConsumerSettingsTest, TheHeartbeatIsATenthOfTheSessionTimeoutAndAtLeast100Ms) {
  struct Case {
    absl::Duration session;
    std::string session_ms, heartbeat_ms;
  };
  for (const Case& c :
       {Case{absl::Seconds(6), "6000", "600"}, Case{absl::Seconds(1), "1000", "100"},
        Case{absl::Milliseconds(1500), "1500", "150"}, Case{absl::Hours(1), "3600000", "360000"}}) {
    const auto settings = KafkaConsumerSettings(
        {.brokers = "127.0.0.1:9092", .topic = "t", .group = "g", .session_timeout = c.session});
    std::map<std::string, std::string> by_name(settings.begin(), settings.end());
    EXPECT_EQ(by_name["session.timeout.ms"], c.session_ms);
    EXPECT_EQ(by_name["heartbeat.interval.ms"], c.heartbeat_ms);
    EXPECT_EQ(by_name["enable.auto.commit"], "false");  // offsets only after a durable append
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    for (const auto& [name, value] : settings) {
      EXPECT_EQ(rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof(err)),
                RD_KAFKA_CONF_OK)
          << name << "=" << value << ": " << err;
    }
    rd_kafka_conf_destroy(conf);
  }
}

TEST_F(KafkaNoticeReaderTest, EachMessageOnceAndARestartAfterACrashBeforeTheCommitRereadsNothing) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(client_->PutObject(bucket_, absl::StrCat("k", i), "abc", {}).ok());
    Publish(i % 2, RgwRecord(bucket_, absl::StrCat("k", i)));
  }
  Publish(0, "{\"Records\": poison");
  Publish(1, RgwRecord("another-bucket", "k0"));
  {
    // No Kafka commit at all: as if ferryd died after every append, before its commit.
    auto reader = Reader(/*commit=*/false);
    RunUntil(*reader, 7);
    EXPECT_EQ(reader->counters().poison, 1u);
  }
  EXPECT_EQ(LoggedKeys(), (std::multiset<std::string>{"k0", "k1", "k2", "k3", "k4"}));
  std::vector<v1::SourceEvent> dead = Logged(kDeadLetterType);
  ASSERT_EQ(dead.size(), 2u);
  auto offset0 = capture_->GetSourceState(absl::StrCat("s3/kafka/", kTopic, "/0"));
  auto offset1 = capture_->GetSourceState(absl::StrCat("s3/kafka/", kTopic, "/1"));
  ASSERT_TRUE(offset0.ok() && offset1.ok());
  EXPECT_EQ(*offset0, "4");  // k0 k2 k4 poison
  EXPECT_EQ(*offset1, "3");  // k1 k3 another-bucket

  ASSERT_TRUE(client_->PutObject(bucket_, "k5", "abc", {}).ok());
  Publish(1, RgwRecord(bucket_, "k5"));
  auto again = Reader();
  RunUntil(*again, 1);  // only the new message: the log's offsets were used
  EXPECT_EQ(LoggedKeys(), (std::multiset<std::string>{"k0", "k1", "k2", "k3", "k4", "k5"}));
}

TEST_F(KafkaNoticeReaderTest, InjectedFetchAndCommitErrorsLoseAndDuplicateNothing) {
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(client_->PutObject(bucket_, absl::StrCat("e", i), "abc", {}).ok());
    Publish(i % 2, RgwRecord(bucket_, absl::StrCat("e", i)));
  }
  rd_kafka_mock_push_request_errors(mock_, kApiFetch, 3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
  rd_kafka_mock_push_request_errors(mock_, kApiOffsetCommit, 2,
                                    RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
  auto reader = Reader();
  RunUntil(*reader, 6);
  EXPECT_EQ(LoggedKeys(), (std::multiset<std::string>{"e0", "e1", "e2", "e3", "e4", "e5"}));
}

TEST_F(KafkaNoticeReaderTest, BucketSourceRunsTheReaderBesideItsBackfill) {
  ASSERT_TRUE(client_->PutObject(bucket_, "listed", "abc", {}).ok());
  auto source = BucketSource::Create({.client = client_,
                                      .bucket = bucket_,
                                      .kafka = {.brokers = rd_kafka_mock_cluster_bootstraps(mock_),
                                                .topic = kTopic,
                                                .group = "ferry-east",
                                                .session_timeout = absl::Seconds(6)}});
  ASSERT_TRUE(source.ok()) << source.status();
  StopSignal stop;
  absl::Status status;
  std::thread run([&] { status = (*source)->Run(*capture_, stop); });
  // The backfill at start first (it would list the objects put below as well).
  const absl::Time listed_by = absl::Now() + absl::Seconds(60);
  while ((*source)->counters().backfills_completed == 0 && absl::Now() < listed_by) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(client_->PutObject(bucket_, "pushed", "abc", {}).ok());
  Publish(0, RgwRecord(bucket_, "pushed"));
  // MinIO's dialect over Kafka: "s3:" event names, URL-encoded keys ('+' is a space).
  EXPECT_TRUE(client_->PutObject(bucket_, "sp ace+plus", "abc", {}).ok());
  Publish(1, absl::StrCat(R"({"EventName":"s3:ObjectCreated:Put","Records":[{"eventSource":)",
                          R"("minio:s3","eventName":"s3:ObjectCreated:Put","s3":{"bucket":)",
                          R"({"name":")", bucket_, R"("},"object":{"key":"sp+ace%2Bplus",)",
                          R"("size":3}}}]})"));
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while ((LoggedKeys().count("pushed") == 0 || LoggedKeys().count("sp ace+plus") == 0) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  stop.Stop();
  run.join();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(LoggedKeys().count("pushed"), 1u);
  EXPECT_EQ(LoggedKeys().count("sp ace+plus"), 1u);
  EXPECT_GE(LoggedKeys().count("listed"), 1u);  // the backfill at start
}

// Two live members of one consumer group (two consumers of a bucket's notices, each with its own
// log), then one leaves: the group rebalances its partitions to the other, which reads them
// from its own log's offsets or the group's committed ones (at least once: a duplicate is a
// hint read twice, applied idempotently), and no notice is lost: every notice published is in
// one of the two logs, and those after the leave in the remaining member's.
TEST_F(KafkaNoticeReaderTest, TwoLiveMembersOfOneGroupLoseNothingWhenOneLeaves) {
  auto log_b = DurableLog::Open({.path = dir_.File("outbound-b")});
  ASSERT_TRUE(log_b.ok()) << log_b.status();
  LogCaptureTarget capture_b(log_b->get(), "east", [] { return uint64_t{1}; });
  ASSERT_TRUE(capture_b.Load().ok());
  auto source_b = BucketSource::Create({.client = client_, .bucket = bucket_});
  ASSERT_TRUE(source_b.ok()) << source_b.status();
  std::unique_ptr<KafkaNoticeReader> a = Reader();
  auto b = KafkaNoticeReader::Create({.brokers = rd_kafka_mock_cluster_bootstraps(mock_),
                                      .topic = kTopic,
                                      .group = "ferry-east",
                                      .session_timeout = absl::Seconds(6)},
                                     source_b->get());
  ASSERT_TRUE(b.ok()) << b.status();
  StopSignal stop_a, stop_b;
  absl::Status status_a, status_b;
  std::thread run_a([&] { status_a = a->Run(*capture_, stop_a); });
  std::thread run_b([&] { status_b = (*b)->Run(capture_b, stop_b); });
  std::set<std::string> published;
  int n = 0;
  auto publish = [&] {
    const std::string key = absl::StrCat("g", n);
    EXPECT_TRUE(client_->PutObject(bucket_, key, "abc", {}).ok());
    Publish(n % 2, RgwRecord(bucket_, key));
    published.insert(key);
    ++n;
  };
  auto keys_of = [&](DurableLog& log) {
    std::set<std::string> keys;
    auto records = log.Read(1, 100000, 64 << 20);
    EXPECT_TRUE(records.ok());
    for (const LogRecord& r : *records) {
      v1::SourceEvent e;
      ObjectEvent o;
      if (r.kind == RecordKind::kSourceEvent && e.ParseFromString(r.payload) &&
          e.type() == kObjectEventType && o.ParseFromString(e.body())) {
        keys.insert(o.key());
      }
    }
    return keys;
  };
  // Both members live and consuming: notices go on until each has captured some.
  const absl::Time both_by = absl::Now() + absl::Seconds(60);
  while ((a->counters().messages == 0 || (*b)->counters().messages == 0) && absl::Now() < both_by) {
    publish();
    absl::SleepFor(absl::Milliseconds(100));  // paces the notices; the condition is polled
  }
  ASSERT_GT(a->counters().messages, 0u) << "member a never consumed";
  ASSERT_GT((*b)->counters().messages, 0u) << "member b never consumed";

  // B leaves (a clean close: its last batch durable in its log, then committed).
  stop_b.Stop();
  run_b.join();
  EXPECT_TRUE(status_b.ok()) << status_b;
  const std::set<std::string> b_keys = keys_of(**log_b);
  for (int i = 0; i < 10; ++i) publish();
  const absl::Time all_by = absl::Now() + absl::Seconds(60);
  std::set<std::string> missing = published;
  while (!missing.empty() && absl::Now() < all_by) {
    missing = published;
    for (const std::string& k : keys_of(*log_)) missing.erase(k);
    for (const std::string& k : b_keys) missing.erase(k);
    if (!missing.empty()) absl::SleepFor(absl::Milliseconds(50));
  }
  stop_a.Stop();
  run_a.join();
  EXPECT_TRUE(status_a.ok()) << status_a;
  EXPECT_TRUE(missing.empty()) << missing.size() << " notice(s) lost, first " << *missing.begin();
  // The notices after b left are all a's, from both partitions.
  const std::set<std::string> a_keys = keys_of(*log_);
  for (int i = n - 10; i < n; ++i) EXPECT_TRUE(a_keys.contains(absl::StrCat("g", i))) << i;
  EXPECT_GE(a->counters().rebalances, 2u);  // its partitions changed when b came and went
}

}  // namespace
}  // namespace ferry::s3
