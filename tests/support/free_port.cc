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

// What FreePort keeps for its process. A forked child starts its own: it must not draw the
// sequence its parent is about to draw, and locks on the file description it inherited are its
// parent's.
struct ProcessPorts {
  pid_t pid = 0;
  std::mt19937 rng;
  // /tmp/ferry-test-ports.lock, whose byte N this process locks while it holds port N: tests run
  // side by side (ctest -j), and a ferryd one test stopped and started again found its admin
  // port bound by a listener of another test, whose FreePort had drawn the port in between. -1
  // when the file cannot be opened for writing (another user's): ports are then only unique
  // within a process.
  int reservations = -1;
  // Ports this process was given: the kernel hands a released port out again readily, and a
  // test naming several listeners at once (metrics beside replication) got two of them one port.
  std::set<int> given;
};

ABSL_CONST_INIT absl::Mutex mu(absl::kConstInit);

ProcessPorts& ThisProcess() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
  static ProcessPorts* const ports = new ProcessPorts();
  if (ports->pid != ::getpid()) {
    ports->pid = ::getpid();
    ports->rng.seed(std::random_device{}() ^ ports->pid);
    if (ports->reservations >= 0) ::close(ports->reservations);
    ports->reservations = ::open("/tmp/ferry-test-ports.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    // Every user running tests shares the file; umask may have narrowed the mode.
    if (ports->reservations >= 0) ::fchmod(ports->reservations, 0666);
    ports->given.clear();
  }
  return *ports;
}

// A port free a moment ago, below the kernel's range for outgoing connections: a port in that
// range can be taken by any process's connection while the listener that names it restarts (a
// ferryd stopped and started again found its replication port in use). On a machine whose range
// leaves no room below it, one the kernel picks. 0 when none was found.
int AnyFreePort(std::mt19937& rng) {
  constexpr int kBottom = 10000;
  const int top = EphemeralLow() - 1;
  if (top <= kBottom) return BindAndRelease(0);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = std::uniform_int_distribution<int>(kBottom, top)(rng);
    if (BindAndRelease(port) != 0) return port;
  }
  return 0;
}

// Locks `port`'s byte of the reservation file for the rest of this process's life (an
// open-file-description lock: the kernel drops it when the process exits, however it exits).
// False when another process holds it.
bool ReserveAcrossProcesses(const ProcessPorts& ports, int port) {
  if (ports.reservations < 0) return true;
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = port;
  lock.l_len = 1;
  return ::fcntl(ports.reservations, F_OFD_SETLK, &lock) == 0;
}

}  // namespace

int FreePort() {
  absl::MutexLock lock(&mu);
  ProcessPorts& ports = ThisProcess();
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int port = AnyFreePort(ports.rng);
    if (port == 0) return 0;
    if (ports.given.contains(port) || !ReserveAcrossProcesses(ports, port)) continue;
    ports.given.insert(port);
    return port;
  }
  return 0;
}

}  // namespace ferry::testing
