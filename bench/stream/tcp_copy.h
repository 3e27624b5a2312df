// The plain TCP baseline of the stream benchmark: a client writes N bytes over one TCP
// connection to a sink that reads them all and then acknowledges with one byte. Put a FaultProxy
// between them to give the copy the same network as the replication stream.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(auto sink, TcpSink::Start());
//   FERRY_ASSIGN_OR_RETURN(auto proxy, testing::FaultProxy::Start("127.0.0.1", sink->port()));
//   FERRY_ASSIGN_OR_RETURN(absl::Duration took, CopyOverTcp(proxy->port(), bytes));
#pragma once

#include <cstdint>
#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ferry::bench {

// Serves one connection on 127.0.0.1: reads an 8-byte little-endian length, then that many
// bytes, then writes one byte and closes. Thread-safe; the destructor joins the serving thread.
class TcpSink {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<TcpSink>> Start();
  ~TcpSink();
  TcpSink(const TcpSink&) = delete;
  TcpSink& operator=(const TcpSink&) = delete;

  int port() const { return port_; }
  // What went wrong while serving (OK until then); valid after the client got its ack.
  absl::Status status() const { return status_; }

 private:
  TcpSink(int listen_fd, int port);
  void Serve();

  const int listen_fd_;
  const int port_;
  absl::Status status_;  // written by the serving thread before it acknowledges
  std::thread thread_;
};

// Connects to 127.0.0.1:port, then writes the length and `bytes` bytes and waits for the
// sink's acknowledgement. Returns the time from the first byte written to the ack received
// (the connection set-up is not counted). kUnavailable on socket errors.
[[nodiscard]] absl::StatusOr<absl::Duration> CopyOverTcp(int port, uint64_t bytes);

}  // namespace ferry::bench
