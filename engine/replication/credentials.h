// Transport security of the replication stream: mutual TLS between regions. Options carry PEM
// contents (the daemon reads the files named in its config); all three empty means plaintext
// (tests and the local demo only: the daemon warns).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace grpc {
class ChannelCredentials;
class ServerCredentials;
}  // namespace grpc

namespace ferry::replication {

struct TlsOptions {
  std::string ca_pem;    // CA that signs the peer region's certificate
  std::string cert_pem;  // this region's certificate chain
  std::string key_pem;   // this region's private key

  bool enabled() const { return !ca_pem.empty() || !cert_pem.empty() || !key_pem.empty(); }
};

// Server side: requires and verifies a client certificate signed by ca_pem. kInvalidArgument
// when only some of the three are given.
[[nodiscard]] absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const TlsOptions& tls);
// Client side: verifies the server against ca_pem and presents cert_pem.
[[nodiscard]] absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const TlsOptions& tls);

}  // namespace ferry::replication
