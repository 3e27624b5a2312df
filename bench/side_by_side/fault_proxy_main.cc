// fault_proxy_main: a TCP proxy with a fixed one-way latency, for scripts/bench.sh.
//
//   fault_proxy_main TARGET_HOST TARGET_PORT ONE_WAY_LATENCY_MS
//
// Listens on 127.0.0.1 on a free port, prints that port on stdout (one line, flushed) once it
// accepts connections, forwards every connection to TARGET_HOST:TARGET_PORT with the latency
// added in each direction (a round trip gains twice ONE_WAY_LATENCY_MS), and runs until
// SIGTERM or SIGINT. Exit codes: 0 after a signal, 1 when the proxy cannot start, 2 usage.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "tests/support/fault_proxy.h"

int main(int argc, char** argv) {
  int port = 0;
  int latency_ms = 0;
  if (argc != 4 || !absl::SimpleAtoi(argv[2], &port) || !absl::SimpleAtoi(argv[3], &latency_ms) ||
      port <= 0 || port > 65535 || latency_ms < 0) {
    std::fprintf(stderr, "usage: fault_proxy_main TARGET_HOST TARGET_PORT ONE_WAY_LATENCY_MS\n");
    return 2;
  }
  // Block the signals before any thread starts, so that only sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto proxy = ferry::testing::FaultProxy::Start(argv[1], port);
  if (!proxy.ok()) {
    std::fprintf(stderr, "fault_proxy_main: %s\n", proxy.status().ToString().c_str());
    return 1;
  }
  (*proxy)->SetLatency(absl::Milliseconds(latency_ms));
  std::printf("%d\n", (*proxy)->port());
  std::fflush(stdout);

  int received = 0;
  sigwait(&signals, &received);
  const ferry::testing::FaultProxyStats stats = (*proxy)->stats();
  std::fprintf(stderr,
               "fault_proxy_main: signal %d; %llu connections, %llu bytes to target, %llu bytes "
               "to client\n",
               received, static_cast<unsigned long long>(stats.connections_accepted),
               static_cast<unsigned long long>(stats.bytes_to_target),
               static_cast<unsigned long long>(stats.bytes_to_client));
  (*proxy)->Stop();
  return 0;
}
