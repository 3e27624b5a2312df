// FreePort: loopback ports a test can name before its listeners exist. The kernel hands a
// released port out again readily; FreePort never gives one process the same port twice (two
// listeners of one ferryd config were once given one port, and the daemon refused the config),
// and never one from the kernel's range for outgoing connections (a ferryd restarted by a test
// found its port taken by some connection meanwhile), nor one another test process holds (a
// ferryd restarted by one test found its admin port bound by a listener of a test beside it).
#include "tests/support/free_port.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
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

// Reads whitespace-separated ports from `fd` until it closes.
std::set<int> ReadPorts(int fd) {
  std::set<int> ports;
  FILE* in = ::fdopen(fd, "r");
  int port;
  while (in != nullptr && std::fscanf(in, "%d", &port) == 1) ports.insert(port);
  if (in != nullptr) std::fclose(in);
  return ports;
}

TEST(FreePortTest, NeverAPortAnotherLivingProcessWasGiven) {
  // A child draws ports and stays alive while this process draws many more: without the
  // reservation some 18 of this process's 2,000 draws would repeat the child's 200.
  int ports_pipe[2], release_pipe[2];
  ASSERT_EQ(::pipe(ports_pipe), 0);
  ASSERT_EQ(::pipe(release_pipe), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ports_pipe[0]);
    ::close(release_pipe[1]);
    FILE* out = ::fdopen(ports_pipe[1], "w");
    for (int i = 0; i < 200; ++i) std::fprintf(out, "%d\n", FreePort());
    std::fclose(out);
    char byte;
    while (::read(release_pipe[0], &byte, 1) > 0) {
    }
    ::_exit(0);
  }
  ::close(ports_pipe[1]);
  ::close(release_pipe[0]);
  const std::set<int> childs = ReadPorts(ports_pipe[0]);
  ASSERT_EQ(childs.size(), 200u);
  ASSERT_FALSE(childs.contains(0));
  for (int i = 0; i < 2000; ++i) {
    const int port = FreePort();
    ASSERT_GT(port, 0);
    EXPECT_FALSE(childs.contains(port)) << "port " << port << " was the child's";
  }
  ::close(release_pipe[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace ferry::testing
