// EventPipeline over real DurableLogs: apply mode applies the inbound log's source events (and
// only those) in order, retries a failing sink without skipping, records its progress so that a
// restart does not apply a batch again, and reports the seq below which the log may be
// trimmed; capture mode runs a source into the outbound log and restarts it after an error.
// The sinks and the source here are test doubles of the interfaces; the real ones (a bucket)
// are tested in connectors/s3.
#include "engine/daemon/event_pipeline.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "engine/log/log_format.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait_until.h"

namespace ferry {
namespace {

using ::ferry::testing::WaitUntil;

class RecordingSink final : public EventSink {
 public:
  explicit RecordingSink(int failures) : failures_(failures) {}
  absl::Status ApplyEvents(const std::vector<v1::SourceEvent>& events) override {
    absl::MutexLock lock(&mu_);
    if (failures_ > 0) {
      --failures_;
      return absl::UnavailableError("injected: the bucket is away");
    }
    for (const v1::SourceEvent& e : events) applied_.push_back(e.body());
    return absl::OkStatus();
  }
  std::vector<std::string> applied() {
    absl::MutexLock lock(&mu_);
    return applied_;
  }

 private:
  absl::Mutex mu_;
  int failures_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> applied_ ABSL_GUARDED_BY(mu_);
};

void AppendMixed(DurableLog& log, const std::vector<std::string>& bodies) {
  AppendRequest req;
  v1::Transaction txn;
  txn.set_last_fragment(true);
  req.records.push_back({RecordKind::kTransaction, txn.SerializeAsString()});
  req.records.push_back({RecordKind::kHeartbeat, ""});
  for (const std::string& b : bodies) {
    v1::SourceEvent e;
    e.set_type("s3.object");
    e.set_body(b);
    req.records.push_back({RecordKind::kSourceEvent, e.SerializeAsString()});
  }
  ASSERT_TRUE(log.Append(std::move(req)).ok());
}

EventPipelineOptions Options() {
  return {.region = "west",
          .epoch = [] { return uint64_t{1}; },
          .restart_min = absl::Milliseconds(1),
          .restart_max = absl::Milliseconds(5)};
}

TEST(EventPipelineTest, AppliesSourceEventsOnceInOrderAcrossFailuresAndRestarts) {
  testing::TempDir dir("ferry-event-pipeline");
  auto inbound = DurableLog::Open({.path = dir.File("inbound")});
  ASSERT_TRUE(inbound.ok()) << inbound.status();
  AppendMixed(**inbound, {"a", "b"});
  auto sink = std::make_unique<RecordingSink>(/*failures=*/2);
  RecordingSink* first = sink.get();
  {
    auto p = EventPipeline::StartApply(Options(), inbound->get(), std::move(sink));
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_TRUE(WaitUntil([&] { return first->applied().size() == 2; }));
    AppendMixed(**inbound, {"c"});
    ASSERT_TRUE(WaitUntil([&] { return (*p)->status().events_applied == 3; }));
    EXPECT_EQ(first->applied(), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ((*p)->applied_next_seq(), 8u);  // 7 records, all looked at
    EXPECT_EQ((*p)->status().last_error, "");
  }
  AppendMixed(**inbound, {"d"});
  auto second = std::make_unique<RecordingSink>(0);
  RecordingSink* again = second.get();
  auto p = EventPipeline::StartApply(Options(), inbound->get(), std::move(second));
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(WaitUntil([&] { return again->applied().size() == 1; }));
  EXPECT_EQ(again->applied(), (std::vector<std::string>{"d"}));  // nothing applied twice
}

TEST(EventPipelineTest, APausedApplyAppliesNothingUntilResumed) {
  testing::TempDir dir("ferry-event-pipeline");
  auto inbound = DurableLog::Open({.path = dir.File("inbound")});
  ASSERT_TRUE(inbound.ok());
  AppendMixed(**inbound, {"a"});
  auto sink = std::make_unique<RecordingSink>(0);
  RecordingSink* raw = sink.get();
  EventPipelineOptions options = Options();
  options.start_paused = true;
  auto p = EventPipeline::StartApply(std::move(options), inbound->get(), std::move(sink));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE((*p)->status().paused);
  // What a paused pipeline would have done by now, it would do in its first pass: the wait
  // below is long against that pass, but the check is that nothing at all was applied.
  ASSERT_FALSE(WaitUntil([&] { return !raw->applied().empty(); }, absl::Milliseconds(300)));
  (*p)->SetPaused(false);
  ASSERT_TRUE(WaitUntil([&] { return raw->applied().size() == 1; }));
}

// A switchover or a shutdown stops a paused apply: Stop() must not wait out the paused pass's
// interval (an hour here), and a wait for its progress (an hour too) ends with it, unapplied.
TEST(EventPipelineTest, StopEndsAPausedApplysWaitAndWaitsForItsProgress) {
  testing::TempDir dir("ferry-event-pipeline");
  auto inbound = DurableLog::Open({.path = dir.File("inbound")});
  ASSERT_TRUE(inbound.ok());
  AppendMixed(**inbound, {"a"});
  EventPipelineOptions options = Options();
  options.start_paused = true;
  options.paused_recount = absl::Hours(1);
  auto p = EventPipeline::StartApply(std::move(options), inbound->get(),
                                     std::make_unique<RecordingSink>(0));
  ASSERT_TRUE(p.ok());
  // The apply thread's first pass counts what is pending, then waits paused.
  const uint64_t end = (*inbound)->next_seq();
  ASSERT_TRUE(WaitUntil([&] { return (*p)->status().pending_scanned_seq == end; }));
  std::atomic<int> waits_ended{0};
  std::thread waiter([&] {
    EXPECT_FALSE((*p)->WaitForApplied(end, absl::Hours(1)));
    ++waits_ended;
  });
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    (*p)->Stop();
    stopped = true;
  });
  const bool prompt = WaitUntil([&] { return stopped.load() && waits_ended.load() == 1; });
  if (!prompt) (*p)->SetPaused(false);  // applies and ends both waits, so that the test ends
  stopper.join();
  waiter.join();
  EXPECT_TRUE(prompt) << "Stop() waited for the paused apply's interval, or the wait for its "
                         "progress went on after the stop";
}

// Weighs an event by its body: one object of body-size bytes, or nothing for another type.
class WeighingSink final : public EventSink {
 public:
  absl::Status ApplyEvents(const std::vector<v1::SourceEvent>& events) override {
    absl::MutexLock lock(&mu_);
    if (fail_) return absl::UnavailableError("injected: the bucket is away");
    applied_ += events.size();
    return absl::OkStatus();
  }
  EventWeight Weigh(const v1::SourceEvent& e) const override {
    if (e.type() != "s3.object") return {};
    return {.objects = 1, .bytes = e.body().size()};
  }
  std::string target_name() const override { return "west-assets"; }
  void set_fail(bool fail) {
    absl::MutexLock lock(&mu_);
    fail_ = fail;
  }

 private:
  absl::Mutex mu_;
  bool fail_ ABSL_GUARDED_BY(mu_) = false;
  size_t applied_ ABSL_GUARDED_BY(mu_) = 0;
};

// Objects and bytes pending (status, /metrics, ferryctl status): counted while paused and while
// the sink fails, as records arrive, and back to zero once applied; never counted twice.
TEST(EventPipelineTest, CountsObjectsAndBytesPendingUntilApplied) {
  testing::TempDir dir("ferry-event-pipeline");
  auto inbound = DurableLog::Open({.path = dir.File("inbound")});
  ASSERT_TRUE(inbound.ok());
  AppendMixed(**inbound, {"12345", "678"});
  {
    AppendRequest other;
    v1::SourceEvent e;
    e.set_type("s3.dead_letter");
    e.set_body("weighs nothing");
    other.records.push_back({RecordKind::kSourceEvent, e.SerializeAsString()});
    ASSERT_TRUE((*inbound)->Append(std::move(other)).ok());
  }
  auto sink = std::make_unique<WeighingSink>();
  WeighingSink* raw = sink.get();
  EventPipelineOptions options = Options();
  options.start_paused = true;
  auto p = EventPipeline::StartApply(std::move(options), inbound->get(), std::move(sink));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->status().target, "west-assets");
  ASSERT_TRUE(WaitUntil([&] { return (*p)->status().pending_scanned_seq == 6; }));
  EXPECT_EQ((*p)->status().objects_pending, 2u);
  EXPECT_EQ((*p)->status().bytes_pending, 8u);
  AppendMixed(**inbound, {"abcdefghij"});  // arrives while paused: counted too
  ASSERT_TRUE(WaitUntil([&] { return (*p)->status().pending_scanned_seq == 9; }));
  EXPECT_EQ((*p)->status().objects_pending, 3u);
  EXPECT_EQ((*p)->status().bytes_pending, 18u);
  raw->set_fail(true);
  (*p)->SetPaused(false);
  ASSERT_TRUE(WaitUntil([&] { return !(*p)->status().last_error.empty(); }));
  EXPECT_EQ((*p)->status().objects_pending, 3u);  // a failed batch leaves its events pending
  EXPECT_EQ((*p)->status().bytes_pending, 18u);
  raw->set_fail(false);
  ASSERT_TRUE(WaitUntil([&] { return (*p)->status().events_applied == 4; }));
  EXPECT_EQ((*p)->status().objects_pending, 0u);
  EXPECT_EQ((*p)->status().bytes_pending, 0u);
  AppendMixed(**inbound, {"xy"});
  ASSERT_TRUE(WaitUntil([&] { return (*p)->status().events_applied == 5; }));
  EXPECT_EQ((*p)->status().objects_pending, 0u);
  EXPECT_EQ((*p)->status().bytes_pending, 0u);
}

TEST(EventPipelineTest, ReportsATrimmedLogAsAnError) {
  testing::TempDir dir("ferry-event-pipeline");
  auto inbound = DurableLog::Open({.path = dir.File("inbound")});
  ASSERT_TRUE(inbound.ok());
  AppendMixed(**inbound, {"a"});
  ASSERT_TRUE((*inbound)->TrimBelow(3).ok());
  auto p = EventPipeline::StartApply(Options(), inbound->get(), std::make_unique<RecordingSink>(0));
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(WaitUntil([&] { return !(*p)->status().last_error.empty(); }));
  EXPECT_NE((*p)->status().last_error.find("trimmed"), std::string::npos);
}

class CountingSource final : public Source {
 public:
  absl::Status Run(CaptureTarget& target, const StopSignal& stop) override {
    if (runs_++ == 0) return absl::UnavailableError("injected: first run fails");
    v1::SourceEvent e;
    e.set_type("s3.object");
    e.set_body("captured");
    absl::Status s = target.AppendEvents({e}, {{"k", "v"}});
    while (s.ok() && !stop.stopped()) stop.WaitFor(absl::Milliseconds(50));
    return s;
  }
  SourceHealth Health() const override { return {}; }
  std::atomic<int> runs_{0};
};

TEST(EventPipelineTest, CaptureRunsTheSourceIntoTheOutboundLogAndRestartsIt) {
  testing::TempDir dir("ferry-event-pipeline");
  auto outbound = DurableLog::Open({.path = dir.File("outbound")});
  ASSERT_TRUE(outbound.ok());
  auto source = std::make_unique<CountingSource>();
  CountingSource* raw = source.get();
  auto p = EventPipeline::StartCapture(Options(), outbound->get(), std::move(source));
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(WaitUntil([&] { return (*outbound)->stats().next_seq == 2; }));
  (*p)->Stop();
  EXPECT_EQ(raw->runs_.load(), 2);
  auto records = (*outbound)->Read(1, 10, 1 << 20);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  v1::SourceEvent e;
  ASSERT_TRUE(e.ParseFromString((*records)[0].payload));
  EXPECT_EQ(e.body(), "captured");
  EXPECT_EQ(e.origin_region(), "west");
}

}  // namespace
}  // namespace ferry
