#include "engine/replication/server.h"

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <climits>

#include "absl/strings/str_cat.h"
#include "engine/replication/receiver.h"

namespace ferry::replication {

ReplicationServer::ReplicationServer(std::function<void()> before_shutdown,
                                     std::unique_ptr<grpc::Server> server, int port)
    : before_shutdown_(std::move(before_shutdown)), server_(std::move(server)), port_(port) {}

ReplicationServer::~ReplicationServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<ReplicationServer>> ReplicationServer::Start(
    const ReplicationServerOptions& options, Receiver* receiver) {
  if (receiver == nullptr) return absl::InvalidArgumentError("replication server: no receiver");
  return Start(options, {receiver}, [receiver] { receiver->Shutdown(); });
}

absl::StatusOr<std::unique_ptr<ReplicationServer>> ReplicationServer::Start(
    const ReplicationServerOptions& options, const std::vector<grpc::Service*>& services,
    std::function<void()> before_shutdown) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      ServerCredentialsFor(options.tls);
  if (!credentials.ok()) return credentials.status();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen_address, *credentials, &port);
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<size_t>(options.max_message_bytes, INT_MAX)));
  builder.SetMaxSendMessageSize(
      static_cast<int>(std::min<size_t>(options.max_send_message_bytes, INT_MAX)));
  // The shipper's own keepalive is the Ping frame; allow gRPC pings too without GOAWAY.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for replication on ", options.listen_address));
  }
  return std::unique_ptr<ReplicationServer>(
      new ReplicationServer(std::move(before_shutdown), std::move(server), port));
}

void ReplicationServer::Shutdown() {
  if (server_ == nullptr) return;
  if (before_shutdown_) before_shutdown_();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server_->Wait();
}

}  // namespace ferry::replication
