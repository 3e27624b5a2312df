#include "tests/support/free_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <set>

#include "absl/synchronization/mutex.h"

namespace ferry::testing {

namespace {

// The first port the kernel hands out for outgoing connections (ip_local_port_range).
int EphemeralLow() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 32768;
  return in >> low ? low : 32768;
}

// Binds loopback `port` (0: one the kernel picks) and releases it: the port, or 0 when it could
// not be bound.
int BindAndRelease(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t len = sizeof(addr);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  return ok ? ntohs(addr.sin_port) : 0;
}

// A port free a moment ago, below the kernel's range for outgoing connections: a port in that
// range can be taken by any process's connection while the listener that names it restarts (a
// ferryd stopped and started again found its replication port in use). On a machine whose range
// leaves no room below it, one the kernel picks. 0 when none was found.
int AnyFreePort() {
  static absl::Mutex mu(absl::kConstInit);
  static std::mt19937* const rng = new std::mt19937(std::random_device{}() ^ ::getpid());
  constexpr int kBottom = 10000;
  const int top = EphemeralLow() - 1;
  if (top <= kBottom) return BindAndRelease(0);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int port;
    {
      absl::MutexLock lock(&mu);
      port = std::uniform_int_distribution<int>(kBottom, top)(*rng);
    }
    if (BindAndRelease(port) != 0) return port;
  }
  return 0;
}

}  // namespace

int FreePort() {
  // The kernel may hand the same port out again once it is released: a test naming several
  // listeners at once (metrics beside replication) then gave two of them one port. Ports this
  // process already had are skipped.
  static absl::Mutex mu(absl::kConstInit);
  static std::set<int>* const given = new std::set<int>();
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int port = AnyFreePort();
    if (port == 0) return 0;
    absl::MutexLock lock(&mu);
    if (given->insert(port).second) return port;
  }
  return 0;
}

}  // namespace ferry::testing
