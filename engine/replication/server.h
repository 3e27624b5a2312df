// ReplicationServer: the gRPC server that hosts a Receiver on the replication listener, with
// mutual TLS when configured and the stream's message size limit.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(auto server, ReplicationServer::Start(
//       {.listen_address = "127.0.0.1:0", .tls = tls}, receiver.get()));
//   int port = server->port();
//   ...
//   server->Shutdown();  // before the receiver is destroyed
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/replication/credentials.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace ferry::replication {

class Receiver;

struct ReplicationServerOptions {
  // host:port; port 0 picks a free port (see port()).
  std::string listen_address = "127.0.0.1:0";
  // Mutual TLS; all empty: plaintext.
  TlsOptions tls;
  // Largest message accepted from the shipper; larger ones end the stream with
  // RESOURCE_EXHAUSTED.
  size_t max_message_bytes = size_t{16} << 20;
  // Largest reply: acks only (1 MiB), unless a service with larger replies shares the listener
  // (the verifier's carry rows: the daemon raises it to max_message_bytes).
  size_t max_send_message_bytes = size_t{1} << 20;
};

// Thread safety: port() from any thread; Shutdown() from the owner (not concurrently with itself).
class ReplicationServer {
 public:
  // `receiver` must outlive the server. kUnavailable when the address cannot be bound,
  // kInvalidArgument for incomplete TLS options.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ReplicationServer>> Start(
      const ReplicationServerOptions& options, Receiver* receiver);
  // Hosts `services` (which must outlive the server; a daemon's ReceiverRouter and control
  // service). `before_shutdown` runs first in Shutdown() (it ends long-running streams).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ReplicationServer>> Start(
      const ReplicationServerOptions& options, const std::vector<grpc::Service*>& services,
      std::function<void()> before_shutdown);
  ~ReplicationServer();  // Shutdown()

  int port() const { return port_; }
  // Ends the receiver's stream, stops accepting and waits for handlers. Idempotent.
  void Shutdown();

 private:
  ReplicationServer(std::function<void()> before_shutdown, std::unique_ptr<grpc::Server> server,
                    int port);
  const std::function<void()> before_shutdown_;
  std::unique_ptr<grpc::Server> server_;
  const int port_;
};

}  // namespace ferry::replication
