#include "tests/support/free_port.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
  static std::mt19937* const rng = new std::mt19937();
  static pid_t seeded_by = 0;
  constexpr int kBottom = 10000;
  const int top = EphemeralLow() - 1;
  if (top <= kBottom) return BindAndRelease(0);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int port;
    {
      absl::MutexLock lock(&mu);
      // A forked child draws its own sequence, not the one its parent is about to draw.
      if (seeded_by != ::getpid()) {
        rng->seed(std::random_device{}() ^ ::getpid());
        seeded_by = ::getpid();
      }
      port = std::uniform_int_distribution<int>(kBottom, top)(*rng);
    }
    if (BindAndRelease(port) != 0) return port;
  }
  return 0;
}

// The file whose byte N a test process locks while it holds port N. Tests run side by side
// (ctest -j): a ferryd one test stopped and started again found its admin port bound by a
// listener of another test, whose FreePort had drawn the port in between. -1 when the file
// cannot be opened for writing (another user's): ports are then only unique within a process.
int ReservationFile() {
  // A forked child opens its own: locks on the description it inherited are its parent's.
  static absl::Mutex mu(absl::kConstInit);
  static int fd = -1;
  static pid_t opened_by = 0;
  absl::MutexLock lock(&mu);
  if (opened_by != ::getpid()) {
    if (fd >= 0) ::close(fd);
    fd = ::open("/tmp/ferry-test-ports.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    // Every user running tests shares the file; umask may have narrowed the mode.
    if (fd >= 0) ::fchmod(fd, 0666);
    opened_by = ::getpid();
  }
  return fd;
}

// Locks `port`'s byte of the reservation file for the rest of this process's life (an
// open-file-description lock: the kernel drops it when the process exits, however it exits).
// False when another process holds it.
bool ReserveAcrossProcesses(int port) {
  const int fd = ReservationFile();
  if (fd < 0) return true;
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = port;
  lock.l_len = 1;
  return ::fcntl(fd, F_OFD_SETLK, &lock) == 0;
}

}  // namespace

int FreePort() {
  // The kernel may hand the same port out again once it is released: a test naming several
  // listeners at once (metrics beside replication) then gave two of them one port. Ports this
  // process already had are skipped, and so are those another test process holds.
  static absl::Mutex mu(absl::kConstInit);
  static std::set<int>* const given = new std::set<int>();
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int port = AnyFreePort();
    if (port == 0) return 0;
    absl::MutexLock lock(&mu);
    if (given->contains(port)) continue;
    if (!ReserveAcrossProcesses(port)) continue;
    given->insert(port);
    return port;
  }
  return 0;
}

}  // namespace ferry::testing
