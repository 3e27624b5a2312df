// The two regions' control channel for a planned switchover (proto/replication.proto, service
// RegionControl): the service a daemon hosts on its replication listener, and the client it
// calls its peer's with. Every request carries the replication token (compared in constant
// time) and the caller's region (the configured peer only); operation ids are checked before a
// backend sees them.
//
// Example:
//   RegionControlService service(&daemon, token, "west");   // hosted with the ReceiverRouter
//   FERRY_ASSIGN_OR_RETURN(auto peer, RegionControlClient::Create(address, tls, token, "east"));
//   FERRY_ASSIGN_OR_RETURN(v1::RegionInfo info, peer->Probe("", absl::Now() + absl::Seconds(5)));
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/replication/credentials.h"
#include "proto/replication.grpc.pb.h"

namespace ferry {

// What the service asks of its daemon. Thread-safe.
class RegionControlBackend {
 public:
  virtual ~RegionControlBackend() = default;
  // The standby's side of a switchover (RegionControl.Switchover). `deadline` is the caller's.
  virtual absl::StatusOr<v1::RegionInfo> AcceptSwitchover(const v1::SwitchoverRequest& request,
                                                          absl::Time deadline) = 0;
  // RegionControl.Probe; a non-empty `abort_operation` is aborted unless it flipped here.
  virtual v1::RegionInfo Probe(const std::string& abort_operation) = 0;
  // RegionControl.Reverse: the peer (a standby) was asked to reverse; run it here.
  virtual absl::StatusOr<v1::ReverseOutcome> ReverseForPeer(absl::Duration timeout) = 0;
  // RegionControl.Quarantine: the peer (a rejoining former primary) has these changes kept
  // here. RegionControl.RejoinRepair: compare with the peer and repair it (a verify); `bucket`:
  // the buckets (verify --bucket), else the databases.
  virtual absl::StatusOr<v1::QuarantineKept> KeepQuarantined(const v1::QuarantineBatch& batch) = 0;
  virtual absl::StatusOr<v1::RejoinRepairReply> RepairForRejoin(const std::string& operation,
                                                                const std::string& region,
                                                                bool repair, bool bucket,
                                                                absl::Duration timeout) = 0;
};

// A switchover's operation id as the daemons make them: "reverse-", then 1 to 64 of [a-z0-9-].
bool IsValidOperationId(const std::string& id);
// A rejoin's id: kRejoinOperationPrefix, then at most 64 of [a-z0-9-].
bool IsValidRejoinId(const std::string& id);
inline constexpr char kRejoinOperationPrefix[] = "rejoin-";

class RegionControlService final : public v1::RegionControl::Service {
 public:
  // `backend` must outlive the service. An empty token is not checked; an empty peer region
  // accepts any caller region but the own one.
  RegionControlService(RegionControlBackend* backend, std::string region, std::string token,
                       std::string peer_region)
      : backend_(backend),
        region_(std::move(region)),
        token_(std::move(token)),
        peer_region_(std::move(peer_region)) {}

  grpc::Status Switchover(grpc::ServerContext* context, const v1::SwitchoverRequest* request,
                          v1::RegionInfo* reply) override;
  grpc::Status Probe(grpc::ServerContext* context, const v1::ProbeRequest* request,
                     v1::RegionInfo* reply) override;
  grpc::Status Reverse(grpc::ServerContext* context, const v1::ReverseCall* request,
                       v1::ReverseOutcome* reply) override;
  grpc::Status Quarantine(grpc::ServerContext* context, const v1::QuarantineBatch* request,
                          v1::QuarantineKept* reply) override;
  grpc::Status RejoinRepair(grpc::ServerContext* context, const v1::RejoinRepairRequest* request,
                            v1::RejoinRepairReply* reply) override;

 private:
  grpc::Status Check(const std::string& token, const std::string& region) const;

  RegionControlBackend* const backend_;
  const std::string region_;
  const std::string token_;
  const std::string peer_region_;
};

// Thread-safe.
class RegionControlClient {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<RegionControlClient>> Create(
      const std::string& peer_address, const replication::TlsOptions& tls, std::string token,
      std::string region);

  [[nodiscard]] absl::StatusOr<v1::RegionInfo> Switchover(v1::SwitchoverRequest request,
                                                          absl::Time deadline) const;
  // `wait_for_ready` false: a peer that refuses connections fails the call at once (a promote's
  // check of a lost primary) instead of at the deadline.
  [[nodiscard]] absl::StatusOr<v1::RegionInfo> Probe(const std::string& abort_operation,
                                                     absl::Time deadline,
                                                     bool wait_for_ready = true) const;
  [[nodiscard]] absl::StatusOr<v1::ReverseOutcome> Reverse(absl::Duration timeout,
                                                           absl::Time deadline) const;
  [[nodiscard]] absl::StatusOr<v1::QuarantineKept> Quarantine(v1::QuarantineBatch batch,
                                                              absl::Time deadline) const;
  [[nodiscard]] absl::StatusOr<v1::RejoinRepairReply> RejoinRepair(const std::string& operation,
                                                                   bool repair, absl::Time deadline,
                                                                   bool bucket = false) const;

 private:
  RegionControlClient(std::unique_ptr<v1::RegionControl::Stub> stub, std::string token,
                      std::string region)
      : stub_(std::move(stub)), token_(std::move(token)), region_(std::move(region)) {}
  const std::unique_ptr<v1::RegionControl::Stub> stub_;
  const std::string token_;
  const std::string region_;
};

}  // namespace ferry
