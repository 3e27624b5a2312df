// A second kind of source fits beside Postgres without touching the engine's core: a small test
// Source whose positions are per partition (like Kafka offsets) and whose records are not
// transactions (SourceEvents, like a bucket's object events). It runs through the engine's
// primary pipeline (capture target, outbound log, shipper) over real gRPC to a receiver and
// its inbound log. Checked: every event arrives once, in order per partition, stamped with
// origin and epoch; a restarted source resumes each partition from the offset that was made
// durable together with its events (atomically), so nothing is captured twice or skipped.
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "engine/daemon/primary_pipeline.h"
#include "engine/replication/receiver.h"
#include "engine/replication/server.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

constexpr int kPartitions = 3;

// The upstream: per-partition message queues the test appends to (offsets from 1).
class Partitions {
 public:
  void Publish(int partition, int n) {
    absl::MutexLock lock(&mu_);
    published_[partition] += n;
  }
  int64_t published(int partition) {
    absl::MutexLock lock(&mu_);
    return published_[partition];
  }

 private:
  absl::Mutex mu_;
  std::map<int, int64_t> published_ ABSL_GUARDED_BY(mu_);
};

// Reads every partition from its durable offset, a few messages at a time, and appends them as
// events together with the new offsets.
class PartitionedEventSource final : public Source {
 public:
  explicit PartitionedEventSource(Partitions* upstream) : upstream_(upstream) {}
  absl::Status Run(CaptureTarget& target, const StopSignal& stop) override {
    std::map<int, int64_t> offset;
    for (int p = 0; p < kPartitions; ++p) {
      absl::StatusOr<std::string> stored = target.GetSourceState(absl::StrCat("partition/", p));
      if (!stored.ok()) return stored.status();
      offset[p] = 0;
      if (!stored->empty() && !absl::SimpleAtoi(*stored, &offset[p])) {
        return absl::DataLossError("bad stored offset");
      }
    }
    while (!stop.stopped()) {
      std::vector<v1::SourceEvent> events;
      std::vector<std::pair<std::string, std::string>> state;
      for (int p = 0; p < kPartitions; ++p) {
        const int64_t end = std::min(upstream_->published(p), offset[p] + 4);
        for (int64_t o = offset[p] + 1; o <= end; ++o) {
          v1::SourceEvent e;
          e.set_type("test.partitioned");
          e.set_body(absl::StrCat(p, "/", o));
          events.push_back(std::move(e));
        }
        if (end > offset[p]) {
          offset[p] = end;
          state.emplace_back(absl::StrCat("partition/", p), absl::StrCat(end));
        }
      }
      if (events.empty()) {
        stop.WaitFor(absl::Milliseconds(2));
        continue;
      }
      if (absl::Status s = target.AppendEvents(std::move(events), std::move(state)); !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }
  SourceHealth Health() const override {
    return {.connected = true, .upstream_name = "test-partitions"};
  }

 private:
  Partitions* const upstream_;
};

class EventSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto outbound = DurableLog::Open({.path = dir_.File("outbound")});
    ASSERT_TRUE(outbound.ok()) << outbound.status();
    outbound_ = *std::move(outbound);
    auto inbound = DurableLog::Open({.path = dir_.File("inbound")});
    ASSERT_TRUE(inbound.ok()) << inbound.status();
    inbound_ = *std::move(inbound);
    auto receiver =
        replication::Receiver::Create({.region = "west",
                                       .expected_peer_region = "east",
                                       .epoch = [] { return uint64_t{5}; },
                                       .adopt_epoch = [](uint64_t) { return absl::OkStatus(); }},
                                      inbound_.get());
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
    auto server = replication::ReplicationServer::Start({}, receiver_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  void TearDown() override {
    if (receiver_) receiver_->Shutdown();
    if (server_) server_->Shutdown();
  }

  std::unique_ptr<PrimaryPipeline> StartPrimary() {
    PrimaryPipelineOptions options;
    options.region = "east";
    options.epoch = [] { return uint64_t{5}; };
    options.shipper.peer_address = absl::StrCat("127.0.0.1:", server_->port());
    options.shipper.backoff = {.min = absl::Milliseconds(10), .max = absl::Milliseconds(100)};
    auto p = PrimaryPipeline::Start(std::move(options), outbound_.get(),
                                    std::make_unique<PartitionedEventSource>(&upstream_));
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : nullptr;
  }

  // Waits until the inbound log holds `n` records (heartbeats excluded: there are none here).
  bool WaitInbound(uint64_t n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (inbound_->next_seq() <= n) {
      if (!inbound_->WaitForRecord(n, deadline)) return inbound_->next_seq() > n;
    }
    return true;
  }

  // Every event of the inbound log, as "partition/offset", in log order.
  std::vector<std::string> InboundEvents() {
    std::vector<std::string> out;
    auto records = inbound_->Read(1, 100000, 64 << 20);
    EXPECT_TRUE(records.ok()) << records.status();
    if (!records.ok()) return out;
    for (const LogRecord& r : *records) {
      EXPECT_EQ(r.kind, RecordKind::kSourceEvent);
      v1::SourceEvent e;
      EXPECT_TRUE(e.ParseFromString(r.payload));
      EXPECT_EQ(e.type(), "test.partitioned");
      EXPECT_EQ(e.origin_region(), "east");
      EXPECT_EQ(e.epoch(), 5u);
      EXPECT_GT(e.capture_time_us(), 0);
      out.push_back(e.body());
    }
    return out;
  }

  testing::TempDir dir_{"ferry-event-source"};
  Partitions upstream_;
  std::unique_ptr<DurableLog> outbound_;
  std::unique_ptr<DurableLog> inbound_;
  std::unique_ptr<replication::Receiver> receiver_;
  std::unique_ptr<replication::ReplicationServer> server_;
};

TEST_F(EventSourceTest, PartitionedEventsTravelOnceInOrderAndResumePerPartition) {
  auto primary = StartPrimary();
  ASSERT_NE(primary, nullptr);
  for (int p = 0; p < kPartitions; ++p) upstream_.Publish(p, 10 + 5 * p);  // 10, 15, 20
  ASSERT_TRUE(WaitInbound(45));
  EXPECT_TRUE(primary->Stop(absl::Now() + absl::Seconds(10)));  // everything acknowledged
  primary.reset();

  // A new source instance over the same log resumes each partition where it was durable.
  for (int p = 0; p < kPartitions; ++p) upstream_.Publish(p, 7);
  primary = StartPrimary();
  ASSERT_NE(primary, nullptr);
  ASSERT_TRUE(WaitInbound(66));
  EXPECT_TRUE(primary->Stop(absl::Now() + absl::Seconds(10)));

  const std::vector<std::string> events = InboundEvents();
  ASSERT_EQ(events.size(), 66u);
  std::map<int, int64_t> last;
  for (const std::string& e : events) {
    int p = 0;
    int64_t o = 0;
    const size_t slash = e.find('/');
    ASSERT_TRUE(absl::SimpleAtoi(e.substr(0, slash), &p) &&
                absl::SimpleAtoi(e.substr(slash + 1), &o))
        << e;
    EXPECT_EQ(o, last[p] + 1) << "partition " << p << " skipped or repeated at " << e;
    last[p] = o;
  }
  for (int p = 0; p < kPartitions; ++p) EXPECT_EQ(last[p], 17 + 5 * p) << "partition " << p;
  // The inbound log is an exact copy: the outbound log holds the same records.
  EXPECT_EQ(outbound_->next_seq(), inbound_->next_seq());
}

// Regression: a primary pipeline whose shipper could not start was destroyed through Stop(),
// which asked the missing shipper for its status (a crash instead of the start error).
TEST_F(EventSourceTest, PrimaryPipelineThatFailsToStartReturnsTheError) {
  PrimaryPipelineOptions options;
  options.region = "east";
  options.epoch = [] { return uint64_t{5}; };
  options.shipper.peer_address = "";  // refused by Shipper::Start
  auto p = PrimaryPipeline::Start(std::move(options), outbound_.get(),
                                  std::make_unique<PartitionedEventSource>(&upstream_));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << p.status();
  EXPECT_NE(p.status().message().find("peer_address"), std::string::npos) << p.status();
}

// A capture target that takes transactions only refuses events loudly instead of dropping them.
TEST(CaptureTargetTest, EventsToATransactionsOnlyTargetAreRefused) {
  class TransactionsOnly final : public CaptureTarget {
   public:
    absl::Status Append(std::vector<v1::Transaction>, uint64_t) override {
      return absl::OkStatus();
    }
    absl::Status AdvanceTo(uint64_t) override { return absl::OkStatus(); }
    uint64_t CapturedPosition() const override { return 0; }
    absl::Status PutSourceState(const std::string&, const std::string&) override {
      return absl::OkStatus();
    }
    absl::StatusOr<std::string> GetSourceState(const std::string&) const override {
      return std::string();
    }
  } target;
  EXPECT_EQ(target.AppendEvents({v1::SourceEvent()}, {}).code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace ferry
