// A role change with a bucket's events in flight (Daemon::ChangeRole, docs/objects.md "How it
// is wired"): two in-process daemons over real gRPC and real durable logs, the databases absent
// (engine/daemon/no_database.h), the object path as doubles: a Source that appends numbered
// SourceEvents and an EventSink that records them and can be held (a slow or unreachable
// bucket). The real bucket is tested in tests/e2e (objects_switchover_e2e_test).
//
// Checked: a standby's ChangeRole to primary applies every event it received before it flips
// (as a switchover does), and when its bucket apply cannot finish within the drain it does not
// flip at all (an event received and not applied would be lost once the region captures its
// own bucket). Mutant caught: StopPipeline stopping the event apply without draining it (the
// flip then happens with events pending, or without the phase "switching" ever being seen while
// the apply is held).
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "engine/daemon/daemon.h"
#include "engine/daemon/no_database.h"
#include "tests/support/free_port.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

// The "bucket" of a region: events published for the source, events the sink applied.
class FakeBucket {
 public:
  void Publish(int n) {
    absl::MutexLock lock(&mu_);
    published_ += n;
  }
  int64_t published() {
    absl::MutexLock lock(&mu_);
    return published_;
  }
  void Hold(bool hold) {
    absl::MutexLock lock(&mu_);
    hold_ = hold;
  }
  // Blocks while held, unless `cancelled`; records the events (idempotently, by body).
  absl::Status Apply(const std::vector<v1::SourceEvent>& events,
                     const std::atomic<bool>& cancelled) {
    absl::MutexLock lock(&mu_);
    auto go = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !hold_ || cancelled.load(); };
    while (!go()) mu_.AwaitWithTimeout(absl::Condition(&go), absl::Milliseconds(50));
    if (hold_) return absl::CancelledError("the sink was cancelled");
    for (const v1::SourceEvent& e : events) applied_.insert(e.body());
    return absl::OkStatus();
  }
  size_t applied() {
    absl::MutexLock lock(&mu_);
    return applied_.size();
  }

 private:
  absl::Mutex mu_;
  int64_t published_ ABSL_GUARDED_BY(mu_) = 0;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  std::set<std::string> applied_ ABSL_GUARDED_BY(mu_);
};

class CountingEventSource final : public Source {
 public:
  explicit CountingEventSource(FakeBucket* bucket) : bucket_(bucket) {}
  absl::Status Run(CaptureTarget& target, const StopSignal& stop) override {
    absl::StatusOr<std::string> stored = target.GetSourceState("offset");
    if (!stored.ok()) return stored.status();
    int64_t offset = 0;
    if (!stored->empty() && !absl::SimpleAtoi(*stored, &offset)) {
      return absl::DataLossError("bad offset");
    }
    while (!stop.stopped()) {
      const int64_t end = bucket_->published();
      if (end == offset) {
        stop.WaitFor(absl::Milliseconds(2));
        continue;
      }
      std::vector<v1::SourceEvent> events;
      for (int64_t o = offset + 1; o <= end; ++o) {
        v1::SourceEvent e;
        e.set_type("test.object");
        e.set_body(absl::StrCat("object/", o));
        events.push_back(std::move(e));
      }
      if (absl::Status s = target.AppendEvents(std::move(events), {{"offset", absl::StrCat(end)}});
          !s.ok()) {
        return s;
      }
      offset = end;
    }
    return absl::OkStatus();
  }
  SourceHealth Health() const override { return {.connected = true, .upstream_name = "fake"}; }

 private:
  FakeBucket* const bucket_;
};

class HeldEventSink final : public EventSink {
 public:
  explicit HeldEventSink(FakeBucket* bucket) : bucket_(bucket) {}
  absl::Status ApplyEvents(const std::vector<v1::SourceEvent>& events) override {
    return bucket_->Apply(events, cancelled_);
  }
  void Cancel() override { cancelled_ = true; }

 private:
  FakeBucket* const bucket_;
  std::atomic<bool> cancelled_{false};
};

class DaemonEventsRoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ports_[0] = testing::FreePort();
    ports_[1] = testing::FreePort();
    ASSERT_NE(ports_[0], 0);
    ASSERT_NE(ports_[1], 0);
  }

  std::unique_ptr<Daemon> StartRegion(int i) {
    const char* name = i == 0 ? "east" : "west";
    const std::string yaml = absl::StrCat(
        "region: ", name, "\ndata_dir: ", dir_.path(), "/", name,
        "\nrole: ", i == 0 ? "primary" : "standby",
        "\npostgres:\n  dsn: \"host=127.0.0.1 dbname=unused\"\n  publication: ferry\n  slot: ",
        "ferry_", name, "\nlisten:\n  replication: 127.0.0.1:", ports_[i],
        "\n  admin: 127.0.0.1:0\n  metrics: 127.0.0.1:0\npeer:\n  replication: 127.0.0.1:",
        ports_[1 - i], "\n  region: ", i == 0 ? "west" : "east",
        "\nstream:\n  reconnect_min_ms: 20\n  reconnect_max_ms: 200\n");
    auto config = config::ParseConfig(yaml, name);
    EXPECT_TRUE(config.ok()) << config.status();
    if (!config.ok()) return nullptr;
    FakeBucket* bucket = &buckets_[i];
    DaemonFactories factories;
    factories.source = NoDatabaseSource::Factory();
    factories.sink = NoDatabaseSink::Factory();
    factories.event_source =
        [bucket](const config::Config&,
                 const PipelineContext&) -> absl::StatusOr<std::unique_ptr<Source>> {
      return std::make_unique<CountingEventSource>(bucket);
    };
    factories.event_sink =
        [bucket](const config::Config&,
                 const PipelineContext&) -> absl::StatusOr<std::unique_ptr<EventSink>> {
      return std::make_unique<HeldEventSink>(bucket);
    };
    auto daemon = Daemon::Start(*config, std::move(factories));
    EXPECT_TRUE(daemon.ok()) << daemon.status();
    return daemon.ok() ? *std::move(daemon) : nullptr;
  }

  // Polls `daemon`'s status every 10 ms for at most 30 s until `ok` holds.
  template <typename Pred>
  static bool PollStatus(Daemon& daemon, Pred ok) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      if (ok(daemon.Status())) return true;
      absl::SleepFor(absl::Milliseconds(10));  // a bounded poll of another thread's progress
    }
    return false;
  }

  testing::TempDir dir_{"ferry-daemon-events-role"};
  int ports_[2] = {0, 0};
  FakeBucket buckets_[2];  // east's events, west's applied
};

TEST_F(DaemonEventsRoleTest, ChangeRoleAppliesTheBucketsEventsBeforeItFlipsOrDoesNotFlip) {
  auto west = StartRegion(1);
  ASSERT_NE(west, nullptr);
  auto east = StartRegion(0);
  ASSERT_NE(east, nullptr);
  buckets_[0].Publish(5);
  // Wait for the first five to be applied, then hold west's bucket apply.
  const absl::Time until = absl::Now() + absl::Seconds(30);
  while (buckets_[1].applied() < 5 && absl::Now() < until) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_EQ(buckets_[1].applied(), 5u);
  buckets_[1].Hold(true);
  buckets_[0].Publish(7);  // received by west, not applied while held
  ASSERT_TRUE(PollStatus(*west, [](const v1::StatusReply& s) {
    return s.objects().records_pending() >= 7 && s.objects().objects_pending() == 7;
  })) << west->Status().DebugString();

  // East becomes standby first (its capture drained and shipped), as in a planned flip by hand.
  ASSERT_TRUE(east->ChangeRole(Role::kStandby, absl::Seconds(10)).ok());

  // The bucket apply cannot finish within the drain: no flip, west is still a standby, and
  // applies again.
  const absl::Status short_drain = west->ChangeRole(Role::kPrimary, absl::Milliseconds(300));
  EXPECT_EQ(short_drain.code(), absl::StatusCode::kDeadlineExceeded) << short_drain;
  EXPECT_NE(short_drain.message().find("bucket's events"), std::string::npos) << short_drain;
  v1::StatusReply w = west->Status();
  EXPECT_EQ(w.role(), "standby");
  EXPECT_EQ(w.state(), "replicating");
  EXPECT_EQ(w.epoch(), 1u);
  EXPECT_EQ(w.objects().mode(), "apply");
  EXPECT_EQ(buckets_[1].applied(), 5u);

  // With time enough: the role change waits for the bucket apply (seen switching while the
  // apply is held), and flips only once every received event is applied.
  absl::Status changed = absl::UnknownError("not run");
  size_t applied_at_flip = 0;
  std::thread flip([&] {
    changed = west->ChangeRole(Role::kPrimary, absl::Seconds(60));
    applied_at_flip = buckets_[1].applied();
  });
  const bool switching =
      PollStatus(*west, [](const v1::StatusReply& s) { return s.state() == "switching"; });
  buckets_[1].Hold(false);
  flip.join();
  EXPECT_TRUE(switching) << "the role change never waited for the bucket apply";
  ASSERT_TRUE(changed.ok()) << changed;
  EXPECT_EQ(applied_at_flip, 12u);
  w = west->Status();
  EXPECT_EQ(w.role(), "primary");
  EXPECT_EQ(w.epoch(), 2u);
  EXPECT_EQ(w.objects().mode(), "capture");

  // West captures its own bucket from then on; east applies it.
  buckets_[1].Publish(3);
  const absl::Time back = absl::Now() + absl::Seconds(30);
  while (buckets_[0].applied() < 3 && absl::Now() < back) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(buckets_[0].applied(), 3u);
}

}  // namespace
}  // namespace ferry
