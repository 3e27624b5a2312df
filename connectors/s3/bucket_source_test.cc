// BucketSource against radosgw and the engine's real capture target over a real DurableLog:
// radosgw's own HTTP pushes drive the webhook; the logged events, applied by
// EventBatchApplier into a second bucket, make it equal the first. Hostile pushes (wrong
// token, malformed, oversized, another bucket, awkward keys, forged ETags), Ferry's own
// writes not captured again, and a backfill that resumes from its durable continuation point.
//
// Mutants caught: answering 200 before the append is durable (the log lacks the event when
// the POST returns), trusting the notice's ETag over the bucket's, dropping a bad record
// instead of keeping it as a dead letter, capturing an object that carries the replica marker
// of its key, restarting the backfill from the first page after a failure.
#include "connectors/s3/bucket_source.h"

#include <gtest/gtest.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "connectors/s3/bucket_compare.h"
#include "connectors/s3/event_batch_applier.h"
#include "connectors/s3/gateway_suite.h"
#include "connectors/s3/replica_marker.h"
#include "engine/capture/log_capture_target.h"
#include "engine/log/durable_log.h"
#include "tests/support/http_get.h"
#include "tests/support/radosgw.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait_until.h"

namespace ferry::s3 {
namespace {

using ::ferry::testing::HttpPost;
using ::ferry::testing::TempDir;
using ::ferry::testing::WaitUntil;

constexpr char kToken[] = "t0ken-for-the-webhook";

// A CaptureTarget that fails every append after the first `ok_appends` (a full disk): the
// backfill test's only double; everything else goes to the real LogCaptureTarget.
class FailingAfter final : public CaptureTarget {
 public:
  FailingAfter(CaptureTarget* real, int ok_appends) : real_(real), left_(ok_appends) {}
  absl::Status Append(std::vector<v1::Transaction> f, uint64_t p) override {
    return real_->Append(std::move(f), p);
  }
  absl::Status AppendEvents(std::vector<v1::SourceEvent> e,
                            std::vector<std::pair<std::string, std::string>> s) override {
    if (left_-- <= 0) return absl::UnavailableError("injected: the log cannot append");
    return real_->AppendEvents(std::move(e), std::move(s));
  }
  absl::Status AdvanceTo(uint64_t p) override { return real_->AdvanceTo(p); }
  uint64_t CapturedPosition() const override { return real_->CapturedPosition(); }
  absl::Status PutSourceState(const std::string& k, const std::string& v) override {
    return real_->PutSourceState(k, v);
  }
  absl::StatusOr<std::string> GetSourceState(const std::string& k) const override {
    return real_->GetSourceState(k);
  }

 private:
  CaptureTarget* real_;
  int left_;
};

class BucketSourceTest : public GatewaySuite {
 protected:
  void SetUp() override {
    ASSERT_NE(rgw_, nullptr);
    auto c = S3Client::Open({.endpoint = rgw_->endpoint(), .credentials = Keys()});
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::shared_ptr<S3Client>(std::move(*c));
    static int n = 0;
    ++n;
    east_ = absl::StrCat("src-", n);
    west_ = absl::StrCat("dst-", n);
    for (const std::string& b : {east_, west_}) {
      ASSERT_TRUE(client_->CreateBucket(b).ok());
      ASSERT_TRUE(client_->SetVersioning(b, true).ok());
    }
    auto log = DurableLog::Open({.path = dir_.File("outbound")});
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = std::move(*log);
    capture_ = std::make_unique<LogCaptureTarget>(log_.get(), "east", [] { return uint64_t{1}; });
    ASSERT_TRUE(capture_->Load().ok());
  }
  void TearDown() override { StopSource(); }

  std::unique_ptr<BucketSource> MakeSource(int page_keys = 1000) {
    auto s = BucketSource::Create({.client = client_,
                                   .bucket = east_,
                                   .webhook_listen = "127.0.0.1:0",
                                   .webhook_token = kToken,
                                   .list_page_keys = page_keys});
    EXPECT_TRUE(s.ok()) << s.status();
    return std::move(*s);
  }
  // Copies east's objects to west, as the standby's sink does.
  std::unique_ptr<ObjectApplier> MakeApplier() {
    auto applier = ObjectApplier::Create({.source = client_.get(),
                                          .source_bucket = east_,
                                          .target = client_.get(),
                                          .target_bucket = west_,
                                          .origin_region = "east"});
    EXPECT_TRUE(applier.ok()) << applier.status();
    return applier.ok() ? std::move(*applier) : nullptr;
  }
  void StartSource(BucketSource* source, CaptureTarget* target) {
    run_ = std::thread([this, source, target] { run_status_ = source->Run(*target, stop_); });
  }
  void StopSource() {
    stop_.Stop();
    if (run_.joinable()) run_.join();
  }
  // Every SourceEvent in the log, in order.
  std::vector<v1::SourceEvent> LoggedEvents() {
    std::vector<v1::SourceEvent> out;
    uint64_t from = 1;
    while (true) {
      auto records = log_->Read(from, 1000, 64 << 20);
      EXPECT_TRUE(records.ok()) << records.status();
      if (!records.ok() || records->empty()) return out;
      for (const LogRecord& r : *records) {
        from = r.seq + 1;
        if (r.kind != RecordKind::kSourceEvent) continue;
        v1::SourceEvent e;
        EXPECT_TRUE(e.ParseFromString(r.payload));
        out.push_back(std::move(e));
      }
    }
  }
  std::vector<ObjectEvent> ObjectEvents() {
    std::vector<ObjectEvent> out;
    for (const v1::SourceEvent& e : LoggedEvents()) {
      if (e.type() != kObjectEventType) continue;
      ObjectEvent o;
      EXPECT_TRUE(o.ParseFromString(e.body()));
      out.push_back(std::move(o));
    }
    return out;
  }
  std::vector<std::string> DeadLetters() {
    std::vector<std::string> out;
    for (const v1::SourceEvent& e : LoggedEvents()) {
      if (e.type() == kDeadLetterType) out.push_back(e.body());
    }
    return out;
  }
  std::string Url(const BucketSource& s, const std::string& path = "/") {
    return absl::StrCat("http://127.0.0.1:", s.webhook_port(), path);
  }
  std::string Notice(const std::string& bucket, const std::string& key,
                     const std::string& etag = "forged") {
    return absl::StrCat(R"({"Records":[{"eventSource":"ceph:s3","eventName":"ObjectCreated:Put",)",
                        R"("s3":{"bucket":{"name":")", bucket, R"("},"object":{"key":")", key,
                        R"(","size":1,"eTag":")", etag, R"("}}}]})");
  }

  TempDir dir_{"ferry-bucket-source"};
  std::shared_ptr<S3Client> client_;
  std::string east_, west_;
  std::unique_ptr<DurableLog> log_;
  std::unique_ptr<LogCaptureTarget> capture_;
  StopSignal stop_;
  std::thread run_;
  absl::Status run_status_;
};

TEST_F(BucketSourceTest, RadosgwPushesDriveCaptureAndTheCopyConverges) {
  ASSERT_TRUE(client_->PutObject(east_, "before-start", "old", {}).ok());
  auto source = MakeSource();
  StartSource(source.get(), capture_.get());
  ASSERT_TRUE(WaitUntil([&] { return source->counters().backfills_completed >= 1; }));
  auto arn = client_->CreateTopic(absl::StrCat("ferry-", east_), Url(*source, "/") + kToken);
  ASSERT_TRUE(arn.ok()) << arn.status();
  ASSERT_TRUE(client_->PutBucketNotification(east_, "ferry", *arn).ok());

  const std::vector<std::string> keys = {"a b+c%41", "dir/../x", "\xe6\x97\xa5", "empty",
                                         std::string(1024, 'k')};
  for (const std::string& k : keys) {
    ASSERT_TRUE(client_->PutObject(east_, k, k == "empty" ? "" : "body " + k, {}).ok()) << k;
  }
  ASSERT_TRUE(
      client_->PutObject(east_, "a b+c%41", "overwritten", {.metadata = {{"m", "1"}}}).ok());
  ASSERT_TRUE(client_->DeleteObject(east_, "dir/../x").ok());
  // Each push is answered only once durable; radosgw pushes as it serves the request.
  ASSERT_TRUE(WaitUntil([&] {
    int deletes = 0;
    for (const ObjectEvent& e : ObjectEvents()) deletes += e.kind() == ObjectEvent::DELETE;
    return deletes >= 1 && source->counters().events >= keys.size() + 3;
  })) << source->counters().events;
  EXPECT_TRUE(DeadLetters().empty()) << DeadLetters()[0];

  std::unique_ptr<ObjectApplier> applier = MakeApplier();
  ASSERT_NE(applier, nullptr);
  EventBatchApplier batch(applier.get(), east_);
  auto applied = batch.Apply(LoggedEvents());
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_LT(applied->written, applied->events);  // overwrites collapsed
  auto cmp = CompareBuckets(*client_, east_, *client_, west_);
  ASSERT_TRUE(cmp.ok()) << cmp.status();
  EXPECT_TRUE(cmp->equal()) << cmp->shown[0];
  // Replaying the whole log changes nothing.
  auto replay = batch.Apply(LoggedEvents());
  ASSERT_TRUE(replay.ok());
  EXPECT_EQ(replay->written + replay->deleted, 0u);
}

TEST_F(BucketSourceTest, HostilePushesAreRefusedOrKeptAsDeadLetters) {
  auto source = MakeSource();
  // Before Run(): not capturing, nothing can be made durable.
  auto early = HttpPost(Url(*source) + kToken, Notice(east_, "k"));
  ASSERT_TRUE(early.ok());
  EXPECT_EQ(early->status, 503);
  StartSource(source.get(), capture_.get());
  ASSERT_TRUE(WaitUntil([&] { return source->counters().backfills_completed >= 1; }));
  ASSERT_TRUE(client_->PutObject(east_, "real", "truth", {}).ok());

  auto wrong = HttpPost(Url(*source) + "wrong", Notice(east_, "real"));
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->status, 401);
  auto none = HttpPost(Url(*source), Notice(east_, "real"));
  EXPECT_EQ(none->status, 401);
  auto bearer = HttpPost(Url(*source, "/any"), Notice(east_, "real"),
                         {absl::StrCat("Authorization: Bearer ", kToken)});
  EXPECT_EQ(bearer->status, 200);
  auto query = HttpPost(Url(*source, "/x?token=") + kToken, Notice(east_, "real"));
  EXPECT_EQ(query->status, 200);
  const std::string url = Url(*source) + kToken;
  auto oversized = HttpPost(url, std::string(kMaxNotificationBytes + 1, '{'));
  EXPECT_EQ(oversized->status, 413);
  auto malformed = HttpPost(url, "{\"Records\": [ not json");
  EXPECT_EQ(malformed->status, 400);
  auto other = HttpPost(url, Notice("someone-elses-bucket", "real"));
  EXPECT_EQ(other->status, 200);
  auto bad_records = HttpPost(url, R"({"Records":[{"s3":{}}, 5]})");
  EXPECT_EQ(bad_records->status, 200);
  for (const std::string& key : {std::string("../../etc/passwd"), std::string(1024, 'x')}) {
    auto r = HttpPost(url, Notice(east_, key));
    EXPECT_EQ(r->status, 200) << key.substr(0, 20);
  }
  auto too_long = HttpPost(url, Notice(east_, std::string(1025, 'x')));
  EXPECT_EQ(too_long->status, 200);  // the record is a dead letter; the push was read

  std::vector<std::string> dead = DeadLetters();
  ASSERT_EQ(dead.size(), 5u);  // malformed, other bucket, 2 bad records, 1,025-byte key
  EXPECT_NE(dead[1].find("someone-elses-bucket"), std::string::npos) << dead[1];
  // The forged ETag is not what was logged: the bucket's truth is.
  std::vector<ObjectEvent> events = ObjectEvents();
  int real = 0, absent = 0;
  for (const ObjectEvent& e : events) {
    if (e.key() == "real") {
      ++real;
      EXPECT_EQ(e.kind(), ObjectEvent::PUT);
      EXPECT_NE(e.etag(), "forged");
      EXPECT_EQ(e.size(), 5u);
    } else {
      ++absent;
      EXPECT_EQ(e.kind(), ObjectEvent::DELETE) << e.key().substr(0, 20);  // no such key
    }
  }
  EXPECT_EQ(real, 2);
  EXPECT_EQ(absent, 2);
  auto get = testing::HttpGet(url);
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->status, 405);
}

TEST_F(BucketSourceTest, FerrysOwnWritesAreNotCapturedAgain) {
  auto source = MakeSource();
  StartSource(source.get(), capture_.get());
  ASSERT_TRUE(WaitUntil([&] { return source->counters().backfills_completed >= 1; }));
  const std::string marker = FormatReplicaMarker("west", "abc", "mine");
  ASSERT_TRUE(
      client_->PutObject(east_, "mine", "x", {.metadata = {{kReplicaMetadata, marker}}}).ok());
  // The same marker copied onto another key by an application: that is an application write.
  ASSERT_TRUE(
      client_->PutObject(east_, "copy", "x", {.metadata = {{kReplicaMetadata, marker}}}).ok());
  const std::string url = Url(*source) + kToken;
  EXPECT_EQ(HttpPost(url, Notice(east_, "mine"))->status, 200);
  EXPECT_EQ(HttpPost(url, Notice(east_, "copy"))->status, 200);
  EXPECT_EQ(source->counters().own_writes_skipped, 1u);
  std::vector<ObjectEvent> events = ObjectEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].key(), "copy");
}

TEST_F(BucketSourceTest, ABackfillFindsADeleteWhoseNoticeWasLost) {
  for (const char* k : {"a", "b", "stale"}) ASSERT_TRUE(client_->PutObject(east_, k, k, {}).ok());
  std::unique_ptr<ObjectApplier> applier = MakeApplier();
  ASSERT_NE(applier, nullptr);
  EventBatchApplier batch(applier.get(), east_);
  {
    auto source = MakeSource();
    StartSource(source.get(), capture_.get());
    ASSERT_TRUE(WaitUntil([&] { return source->counters().backfills_completed >= 1; }));
    StopSource();
  }
  ASSERT_TRUE(batch.Apply(LoggedEvents()).ok());
  const size_t seen = LoggedEvents().size();
  // Deleted while no notice reaches Ferry: only the next backfill can tell.
  ASSERT_TRUE(client_->DeleteObject(east_, "stale").ok());
  auto source = MakeSource();
  StopSignal stop;
  std::thread run([&] { EXPECT_TRUE(source->Run(*capture_, stop).ok()); });
  EXPECT_TRUE(WaitUntil([&] { return source->counters().backfills_completed >= 1; }));
  stop.Stop();
  run.join();
  std::vector<v1::SourceEvent> events = LoggedEvents();
  std::vector<v1::SourceEvent> fresh(events.begin() + static_cast<long>(seen), events.end());
  ASSERT_EQ(fresh.back().type(), kReconcileType);
  auto applied = batch.Apply(fresh);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->deleted, 1u);
  EXPECT_EQ(applied->reconciles, 1u);
  auto cmp = CompareBuckets(*client_, east_, *client_, west_);
  ASSERT_TRUE(cmp.ok());
  EXPECT_TRUE(cmp->equal()) << cmp->shown[0];
}

TEST_F(BucketSourceTest, BackfillResumesFromItsDurableContinuationPoint) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(client_->PutObject(east_, absl::StrCat("k", i), "x", {}).ok());
  }
  {
    auto source = MakeSource(/*page_keys=*/2);
    FailingAfter failing(capture_.get(), 2);  // pages 1 and 2 become durable, page 3 fails
    StopSignal stop;
    absl::Status s = source->Run(failing, stop);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_EQ(ObjectEvents().size(), 4u);
    auto token = capture_->GetSourceState(source->backfill_token_key());
    ASSERT_TRUE(token.ok());
    EXPECT_FALSE(token->empty());
    EXPECT_NE(*token, "-");
  }
  auto source = MakeSource(2);
  StartSource(source.get(), capture_.get());
  ASSERT_TRUE(WaitUntil([&] { return source->counters().backfills_completed >= 1; }));
  StopSource();
  std::vector<ObjectEvent> events = ObjectEvents();
  ASSERT_EQ(events.size(), 5u);  // page 3 once: no page logged twice, none skipped
  std::set<std::string> keys;
  for (const ObjectEvent& e : events) keys.insert(e.key());
  EXPECT_EQ(keys.size(), 5u);
  auto done = capture_->GetSourceState(source->backfill_done_key());
  ASSERT_TRUE(done.ok());
  EXPECT_FALSE(done->empty());
}

}  // namespace
}  // namespace ferry::s3
