// FaultProxy: a user-space TCP proxy that puts network faults between a client and a server,
// for tests and benchmarks on machines without tc/netem.
//
// Start() listens on 127.0.0.1 on a free port; each accepted connection is forwarded to the
// target. Faults are switched while connections are open, from any thread:
//
//   SetLatency(d)      each byte is written d after it was read, in each direction (so a round
//                      trip gains 2d). Order is kept and throughput is not reduced: data is
//                      queued with a timestamp, like a long fat pipe, up to
//                      FaultProxyOptions::max_buffered_bytes per direction and connection.
//   SetBandwidth(bps)  a token bucket per direction and connection; 0 = unlimited. A burst of
//                      BurstBytes(bps) may pass at once, so N bytes take at least
//                      (N - BurstBytes(bps)) / bps seconds.
//   SetBlackhole(on)   a partition: no byte moves in either direction, connections stay open,
//                      new connections are accepted by the proxy but not connected to the
//                      target. Bytes already read stay queued; nothing is lost. Turning it off
//                      resumes forwarding (and connects the waiting connections), like TCP
//                      after a healed partition.
//   DropConnections()  resets (RST, SO_LINGER 0) both sides of every connection, including
//                      those still in the accept queue.
//   CorruptBytes(n, direction, skip)
//                      in `direction`, lets `skip` bytes pass, then XORs 0x01 into each of
//                      the next n bytes (counted across all connections, in the order the
//                      proxy reads them).
//
// Every setter takes effect before it returns: once SetBlackhole(true) returns, no further
// byte is forwarded; once DropConnections() returns, the peers' sockets are reset.
//
// Example:
//   auto proxy = FaultProxy::Start("127.0.0.1", pg->port());
//   ASSERT_TRUE(proxy.ok()) << proxy.status();
//   (*proxy)->SetLatency(absl::Milliseconds(40));   // 80 ms round trips
//   ... connect to 127.0.0.1:(*proxy)->port() ...
//   (*proxy)->SetBlackhole(true);                    // partition
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ferry::testing {

struct FaultProxyOptions {
  // Bytes that one direction of one connection may hold (read, not yet written). Bounds
  // memory; with latency L a direction carries at most max_buffered_bytes / L bytes a second.
  size_t max_buffered_bytes = size_t{64} << 20;
  // Largest single read.
  size_t read_chunk_bytes = size_t{64} << 10;
};

enum class ProxyDirection {
  kToTarget,  // client -> target
  kToClient,  // target -> client
  kBoth,
};

struct FaultProxyStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_open = 0;
  uint64_t connections_dropped = 0;  // by DropConnections
  uint64_t bytes_to_target = 0;      // written to the target
  uint64_t bytes_to_client = 0;      // written to clients
  uint64_t bytes_corrupted = 0;
};

// Thread safety: every public method may be called from any thread. The proxy runs one
// event-loop thread (epoll, non-blocking sockets) that owns all connections.
class FaultProxy {
 public:
  // Resolves target_host once, listens on 127.0.0.1:0 and starts the loop thread.
  // Errors: kInvalidArgument when the host does not resolve, kInternal for socket errors.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<FaultProxy>> Start(
      const std::string& target_host, int target_port, const FaultProxyOptions& options = {});
  ~FaultProxy();  // Stop()

  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // The listening port on 127.0.0.1.
  int port() const;
  // "127.0.0.1:PORT".
  std::string address() const;

  // One-way delay added in each direction; zero removes it. Bytes already queued keep the
  // time they were given; later bytes never overtake earlier ones.
  void SetLatency(absl::Duration one_way);
  // Bytes per second in each direction of each connection; 0 = unlimited.
  void SetBandwidth(uint64_t bytes_per_second);
  void SetBlackhole(bool on);
  void DropConnections();
  // Replaces any corruption still pending in `direction` (see the file comment).
  void CorruptBytes(uint64_t count, ProxyDirection direction = ProxyDirection::kBoth,
                    uint64_t skip = 0);
  // Closes the listener and resets every connection; joins the loop thread. Idempotent.
  void Stop();

  FaultProxyStats stats() const;

  // The token-bucket burst for a bandwidth: 20 ms worth of bytes, at least 1500.
  static uint64_t BurstBytes(uint64_t bytes_per_second);

  class Loop;  // the implementation; public only so that fault_proxy.cc may name it

 private:
  explicit FaultProxy(std::unique_ptr<Loop> loop);
  std::unique_ptr<Loop> loop_;
};

}  // namespace ferry::testing
