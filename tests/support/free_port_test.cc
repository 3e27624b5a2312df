// FreePort: loopback ports a test can name before its listeners exist. The kernel hands a
// released port out again readily; FreePort never gives one process the same port twice (two
// listeners of one ferryd config were once given one port, and the daemon refused the config),
// and never one from the kernel's range for outgoing connections (a ferryd restarted by a test
// found its port taken by some connection meanwhile).
#include "tests/support/free_port.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <thread>
#include <vector>

namespace ferry::testing {
namespace {

TEST(FreePortTest, NeverTheSamePortTwiceInAProcess) {
  std::set<int> seen;
  for (int i = 0; i < 2000; ++i) {
    const int port = FreePort();
    ASSERT_GT(port, 0);
    EXPECT_TRUE(seen.insert(port).second) << "port " << port << " given twice";
  }
}

TEST(FreePortTest, PortsComeFromBelowTheRangeForOutgoingConnections) {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0, high = 0;
  ASSERT_TRUE(in >> low >> high);
  if (low <= 10001) GTEST_SKIP() << "no room below " << low << ": the kernel picks the ports";
  for (int i = 0; i < 200; ++i) {
    const int port = FreePort();
    ASSERT_GT(port, 0);
    EXPECT_LT(port, low) << "port " << port << " is in " << low << "-" << high;
  }
}

TEST(FreePortTest, ThreadsGetDistinctPorts) {
  std::vector<std::vector<int>> got(4);
  std::vector<std::thread> threads;
  for (auto& ports : got) {
    threads.emplace_back([&ports] {
      for (int i = 0; i < 200; ++i) ports.push_back(FreePort());
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<int> seen;
  for (const auto& ports : got) {
    for (int port : ports) {
      ASSERT_GT(port, 0);
      EXPECT_TRUE(seen.insert(port).second) << "port " << port << " given twice";
    }
  }
}

}  // namespace
}  // namespace ferry::testing
