// AdminService: the gRPC admin service (proto/admin.proto) of ferryd. It authenticates the
// caller and forwards to an AdminBackend, which the daemon implements; so the service holds no
// replication state of its own and is tested with a fake backend.
//
// Thread safety: gRPC calls the service from its own threads; the backend must be thread-safe.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/admin.grpc.pb.h"

namespace ferry {

class AdminBackend {
 public:
  virtual ~AdminBackend() = default;
  virtual v1::StatusReply Status() = 0;
  // Both return whether the pipeline was paused before the call, or why the call failed (the
  // code reaches the caller: kUnavailable when the choice could not be persisted, and then
  // nothing changed).
  virtual absl::StatusOr<bool> Pause() = 0;
  virtual absl::StatusOr<bool> Resume() = 0;
  // Re-applies a stopped table ("schema.name") from the change that stopped it; returns that
  // change's inbound sequence. Errors as the ResumeTable RPC in proto/admin.proto.
  virtual absl::StatusOr<uint64_t> ResumeTable(const std::string& table) = 0;
  // Re-seeds this standby: discards the target's progress of the upstream log `discard_log_id`
  // ("" = unrecorded). Errors as the Reseed RPC in proto/admin.proto.
  virtual absl::StatusOr<v1::ReseedReply> Reseed(const std::string& discard_log_id) {
    (void)discard_log_id;
    return absl::UnimplementedError("reseed is not supported here");
  }
  // Re-snapshots one table ("schema.name") from this primary's source. Errors as the
  // Resnapshot RPC in proto/admin.proto.
  virtual absl::StatusOr<v1::ResnapshotReply> Resnapshot(const std::string& table) {
    (void)table;
    return absl::UnimplementedError("resnapshot is not supported here");
  }
  // Verifies the regions (docs/verify.md): `emit` receives the progress events and the last
  // one with the summary; `cancelled` says whether the caller went away. Errors as the Verify
  // RPC in proto/admin.proto.
  virtual absl::Status Verify(const v1::VerifyRequest& request,
                              const std::function<void(const v1::VerifyEvent&)>& emit,
                              const std::function<bool()>& cancelled) {
    (void)request;
    (void)emit;
    (void)cancelled;
    return absl::UnimplementedError("verify is not supported here");
  }
  // A planned switchover, sent to either region, waiting at most `timeout`. Errors as the
  // Reverse RPC in proto/admin.proto.
  virtual absl::StatusOr<v1::ReverseReply> Reverse(absl::Duration timeout) {
    (void)timeout;
    return absl::UnimplementedError("reverse is not supported here");
  }
  // An unplanned failover of this standby. Errors as the Promote RPC in proto/admin.proto.
  virtual absl::StatusOr<v1::PromoteReply> Promote(bool force, absl::Duration timeout) {
    (void)force;
    (void)timeout;
    return absl::UnimplementedError("promote is not supported here");
  }
  // A failback of this former primary. Errors as the Rejoin RPC in proto/admin.proto.
  virtual absl::StatusOr<v1::RejoinReply> Rejoin(absl::Duration timeout) {
    (void)timeout;
    return absl::UnimplementedError("rejoin is not supported here");
  }
  // An operator's verb on the quarantine. Errors as the Quarantine RPC in proto/admin.proto.
  virtual absl::StatusOr<v1::QuarantineReply> Quarantine(const v1::QuarantineRequest& request) {
    (void)request;
    return absl::UnimplementedError("the quarantine is not supported here");
  }
};

class AdminService final : public v1::Admin::Service {
 public:
  // `backend` must outlive the service. An empty token means no authentication (the admin
  // listener should then be bound to loopback; ferryd warns otherwise).
  AdminService(AdminBackend* backend, std::string token)
      : backend_(backend), token_(std::move(token)) {}

  grpc::Status Status(grpc::ServerContext* context, const v1::StatusRequest* request,
                      v1::StatusReply* reply) override;
  grpc::Status Pause(grpc::ServerContext* context, const v1::PauseRequest* request,
                     v1::PauseReply* reply) override;
  grpc::Status Resume(grpc::ServerContext* context, const v1::ResumeRequest* request,
                      v1::ResumeReply* reply) override;
  grpc::Status ResumeTable(grpc::ServerContext* context, const v1::ResumeTableRequest* request,
                           v1::ResumeTableReply* reply) override;
  grpc::Status Reseed(grpc::ServerContext* context, const v1::ReseedRequest* request,
                      v1::ReseedReply* reply) override;
  grpc::Status Resnapshot(grpc::ServerContext* context, const v1::ResnapshotRequest* request,
                          v1::ResnapshotReply* reply) override;
  grpc::Status Verify(grpc::ServerContext* context, const v1::VerifyRequest* request,
                      grpc::ServerWriter<v1::VerifyEvent>* writer) override;
  grpc::Status Reverse(grpc::ServerContext* context, const v1::ReverseRequest* request,
                       v1::ReverseReply* reply) override;
  grpc::Status Promote(grpc::ServerContext* context, const v1::PromoteRequest* request,
                       v1::PromoteReply* reply) override;
  grpc::Status Rejoin(grpc::ServerContext* context, const v1::RejoinRequest* request,
                      v1::RejoinReply* reply) override;
  grpc::Status Quarantine(grpc::ServerContext* context, const v1::QuarantineRequest* request,
                          v1::QuarantineReply* reply) override;

 private:
  grpc::Status Authenticate(const grpc::ServerContext& context) const;

  AdminBackend* const backend_;
  const std::string token_;
};

// A long verb's timeout_ms: 0 gives `fallback`; 1 ms to 24 hours; INVALID_ARGUMENT naming `verb`
// otherwise.
absl::StatusOr<absl::Duration> LongVerbTimeout(int64_t timeout_ms, absl::Duration fallback,
                                               const char* verb);

// The gRPC status of the same code and message.
grpc::Status ToGrpcStatus(const absl::Status& s);

// Compares in time independent of where the strings differ (tokens must not leak by timing).
bool ConstantTimeEquals(const std::string& a, const std::string& b);

}  // namespace ferry
