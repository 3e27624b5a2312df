#include "engine/base/backoff.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "engine/base/clock.h"
#include "engine/log/durable_log.h"
#include "engine/replication/shipper.h"
#include "engine/replication/testing/stream_test_util.h"
#include "tests/support/temp_dir.h"

namespace ferry::replication {
namespace {

TEST(BackoffTest, DoublesUpToMaxWithoutJitter) {
  Backoff b({.min = absl::Milliseconds(100), .max = absl::Seconds(1), .jitter = 0}, 1);
  const int64_t expected[] = {100, 200, 400, 800, 1000, 1000, 1000};
  for (int64_t ms : expected) EXPECT_EQ(b.Next(), absl::Milliseconds(ms));
  b.Reset();
  EXPECT_EQ(b.Next(), absl::Milliseconds(100));
}

TEST(BackoffTest, JitterStaysInBoundsAndIsReproducible) {
  const BackoffOptions options{
      .min = absl::Milliseconds(100), .max = absl::Seconds(5), .jitter = 0.5};
  Backoff a(options, 42), b(options, 42), c(options, 43);
  bool differs = false;
  absl::Duration d = absl::Milliseconds(100);
  for (int i = 0; i < 20; ++i) {
    const absl::Duration x = a.Next();
    EXPECT_EQ(x, b.Next());
    differs |= x != c.Next();
    EXPECT_LE(x, d);
    EXPECT_GE(x, d / 2);
    d = std::min(d * 2, absl::Seconds(5));
  }
  EXPECT_TRUE(differs);
}

TEST(BackoffTest, ManyAttemptsDoNotOverflow) {
  Backoff b({.min = absl::Milliseconds(1), .max = absl::Hours(1), .jitter = 0}, 1);
  for (int i = 0; i < 1000; ++i) EXPECT_LE(b.Next(), absl::Hours(1));
  EXPECT_EQ(b.Next(), absl::Hours(1));
}

// A port on 127.0.0.1 where nothing listens (bound, then closed).
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// The shipper's reconnect schedule follows Backoff exactly, on the injected clock: the test
// advances a ManualClock and never sleeps for the delays.
TEST(BackoffTest, ShipperReconnectsOnTheBackoffSchedule) {
  ferry::testing::TempDir dir("ferry-backoff");
  auto log = DurableLog::Open({.path = dir.File("outbound")});
  ASSERT_TRUE(log.ok()) << log.status();
  ManualClock clock(absl::FromUnixSeconds(1000));
  ShipperOptions options = testing::TestShipperOptions("127.0.0.1:" + std::to_string(ClosedPort()));
  options.backoff = {.min = absl::Seconds(1), .max = absl::Seconds(8), .jitter = 0.5};
  options.backoff_seed = 99;
  options.clock = &clock;
  auto shipper = Shipper::Start(options, log->get());
  ASSERT_TRUE(shipper.ok()) << shipper.status();

  Backoff expected(options.backoff, 99);
  for (uint64_t attempt = 1; attempt <= 6; ++attempt) {
    ASSERT_TRUE(testing::WaitUntil([&] { return (*shipper)->status().disconnects >= attempt; }))
        << "attempt " << attempt;
    const ShipperStatus s = (*shipper)->status();
    EXPECT_EQ(s.disconnects, attempt);  // nothing happens until the clock moves
    EXPECT_FALSE(s.connected);
    EXPECT_NE(s.last_error.find("UNAVAILABLE"), std::string::npos) << s.last_error;
    const absl::Duration delay = expected.Next();
    EXPECT_EQ(s.next_attempt - clock.Now(), delay) << "attempt " << attempt;
    clock.Advance(delay);
  }
  (*shipper)->Stop();
}

}  // namespace
}  // namespace ferry::replication
