// A 30-second partition between the regions while the primary keeps appending (label `slow`):
// the shipper notices, keeps retrying with backoff, reports the growing RPO, and after the
// partition heals the inbound log is an exact copy of the outbound one.
#include <gtest/gtest.h>

#include "engine/replication/shipper.h"
#include "engine/replication/testing/stream_test_util.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/temp_dir.h"

namespace ferry::replication {
namespace {

using ::ferry::testing::FaultProxy;
using ::ferry::testing::TempDir;
using testing::AppendRecords;
using testing::CompareLogs;
using testing::StandbyRegion;
using testing::TestShipperOptions;

TEST(ReplicationPartitionTest, ThirtySecondPartitionLosesNothing) {
  TempDir dir("ferry-partition");
  auto outbound = DurableLog::Open({.path = dir.File("outbound")});
  ASSERT_TRUE(outbound.ok()) << outbound.status();
  StandbyRegion::Options options;
  options.dir = dir.path();
  options.receiver.region = "west";
  options.receiver.token = "secret-token";
  auto standby = StandbyRegion::Start(options);
  ASSERT_TRUE(standby.ok()) << standby.status();
  auto proxy = FaultProxy::Start("127.0.0.1", (*standby)->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();

  ShipperOptions shipper_options = TestShipperOptions((*proxy)->address());
  shipper_options.backoff = {.min = absl::Milliseconds(100), .max = absl::Seconds(2)};
  auto shipper = Shipper::Start(shipper_options, outbound->get());
  ASSERT_TRUE(shipper.ok()) << shipper.status();
  ASSERT_TRUE(AppendRecords(outbound->get(), 1000).ok());
  ASSERT_TRUE((*shipper)->WaitForAck(1001, absl::Now() + absl::Seconds(30)));

  (*proxy)->SetBlackhole(true);
  const absl::Time heal_at = absl::Now() + absl::Seconds(30);
  uint64_t appended = 1000;
  while (absl::Now() < heal_at) {  // the primary keeps capturing during the partition
    ASSERT_TRUE(AppendRecords(outbound->get(), 50).ok());
    appended += 50;
    absl::SleepFor(absl::Milliseconds(100));  // load pattern, not synchronization
  }
  const ShipperStatus during = (*shipper)->status();
  EXPECT_FALSE(during.connected);
  EXPECT_GE(during.disconnects, 3u);  // the ack timeout, then handshake timeouts
  EXPECT_GT(during.unacked_records, 0u);
  EXPECT_GE(during.unacked_age, absl::Seconds(20));
  EXPECT_NE(during.last_error.find("DEADLINE_EXCEEDED"), std::string::npos) << during.last_error;

  (*proxy)->SetBlackhole(false);
  ASSERT_TRUE((*shipper)->WaitForAck(appended + 1, absl::Now() + absl::Seconds(60)))
      << (*shipper)->status().last_error;
  (*shipper)->Stop();
  EXPECT_EQ(CompareLogs(**outbound, *(*standby)->inbound()), "");
}

}  // namespace
}  // namespace ferry::replication
