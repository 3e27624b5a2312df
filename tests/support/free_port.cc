#include "tests/support/free_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>

#include "absl/synchronization/mutex.h"

namespace ferry::testing {

namespace {

// A port the kernel just freed: 0 when none could be had.
int AnyFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (fd >= 0) ::close(fd);
    return 0;
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
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
