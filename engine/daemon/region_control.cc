#include "engine/daemon/region_control.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/admin/admin_service.h"
#include "engine/base/status_macros.h"
#include "engine/region/role_controller.h"

namespace ferry {
namespace {

absl::Status FromGrpc(const grpc::Status& s, const char* call) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("peer's ", call, ": ", s.error_message()));
}

void SetDeadline(grpc::ClientContext& context, absl::Time deadline) {
  // gRPC's deadlines are on the system clock. A peer that was down a moment ago is waited for
  // until the deadline, not failed at once while the channel backs off.
  context.set_deadline(absl::ToChronoTime(deadline));
  context.set_wait_for_ready(true);
}

}  // namespace

bool IsValidOperationId(const std::string& id) {
  if (!absl::StartsWith(id, kReverseOperationPrefix)) return false;
  const size_t rest = id.size() - std::string(kReverseOperationPrefix).size();
  if (rest < 1 || rest > 64) return false;
  for (char c : id) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '-') return false;
  }
  return true;
}

bool IsValidRejoinId(const std::string& id) {
  if (!absl::StartsWith(id, kRejoinOperationPrefix)) return false;
  const size_t rest = id.size() - std::string(kRejoinOperationPrefix).size();
  if (rest < 1 || rest > 64) return false;
  for (char c : id) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '-') return false;
  }
  return true;
}

grpc::Status RegionControlService::Check(const std::string& token,
                                         const std::string& region) const {
  if (!token_.empty() && !ConstantTimeEquals(token, token_)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong replication token");
  }
  if (region == region_ || (!peer_region_.empty() && region != peer_region_)) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("region \"", absl::CHexEscape(region.substr(0, 64)),
                                     "\" is not this region's peer"));
  }
  return grpc::Status::OK;
}

grpc::Status RegionControlService::Switchover(grpc::ServerContext* context,
                                              const v1::SwitchoverRequest* request,
                                              v1::RegionInfo* reply) {
  if (auto s = Check(request->token(), request->region()); !s.ok()) return s;
  if (!IsValidOperationId(request->operation())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed switchover operation id");
  }
  if (request->new_epoch() != request->epoch() + 1 || request->through_seq() == 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "a switchover raises the epoch by one and names a through_seq >= 1");
  }
  absl::StatusOr<v1::RegionInfo> info =
      backend_->AcceptSwitchover(*request, absl::FromChrono(context->deadline()));
  if (!info.ok()) return ToGrpcStatus(info.status());
  *reply = *std::move(info);
  return grpc::Status::OK;
}

grpc::Status RegionControlService::Probe(grpc::ServerContext* context,
                                         const v1::ProbeRequest* request, v1::RegionInfo* reply) {
  (void)context;
  if (auto s = Check(request->token(), request->region()); !s.ok()) return s;
  if (!request->abort_operation().empty() && !IsValidOperationId(request->abort_operation())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed switchover operation id");
  }
  *reply = backend_->Probe(request->abort_operation());
  return grpc::Status::OK;
}

grpc::Status RegionControlService::Reverse(grpc::ServerContext* context,
                                           const v1::ReverseCall* request,
                                           v1::ReverseOutcome* reply) {
  (void)context;
  if (auto s = Check(request->token(), request->region()); !s.ok()) return s;
  absl::StatusOr<absl::Duration> timeout =
      LongVerbTimeout(request->timeout_ms(), absl::Seconds(60), "reverse");
  if (!timeout.ok()) return ToGrpcStatus(timeout.status());
  absl::StatusOr<v1::ReverseOutcome> done = backend_->ReverseForPeer(*timeout);
  if (!done.ok()) return ToGrpcStatus(done.status());
  *reply = *std::move(done);
  return grpc::Status::OK;
}

absl::StatusOr<std::unique_ptr<RegionControlClient>> RegionControlClient::Create(
    const std::string& peer_address, const replication::TlsOptions& tls, std::string token,
    std::string region) {
  FERRY_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                         replication::ChannelCredentialsFor(tls));
  grpc::ChannelArguments args;
  // Reconnect within a second of the peer coming back (gRPC's default backoff grows to 2 min).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  auto channel = grpc::CreateCustomChannel(peer_address, credentials, args);
  return std::unique_ptr<RegionControlClient>(new RegionControlClient(
      v1::RegionControl::NewStub(channel), std::move(token), std::move(region)));
}

absl::StatusOr<v1::RegionInfo> RegionControlClient::Switchover(v1::SwitchoverRequest request,
                                                               absl::Time deadline) const {
  request.set_token(token_);
  request.set_region(region_);
  grpc::ClientContext context;
  SetDeadline(context, deadline);
  v1::RegionInfo reply;
  FERRY_RETURN_IF_ERROR(FromGrpc(stub_->Switchover(&context, request, &reply), "switchover"));
  return reply;
}

absl::StatusOr<v1::RegionInfo> RegionControlClient::Probe(const std::string& abort_operation,
                                                          absl::Time deadline,
                                                          bool wait_for_ready) const {
  v1::ProbeRequest request;
  request.set_token(token_);
  request.set_region(region_);
  request.set_abort_operation(abort_operation);
  grpc::ClientContext context;
  SetDeadline(context, deadline);
  context.set_wait_for_ready(wait_for_ready);
  v1::RegionInfo reply;
  FERRY_RETURN_IF_ERROR(FromGrpc(stub_->Probe(&context, request, &reply), "probe"));
  return reply;
}

absl::StatusOr<v1::ReverseOutcome> RegionControlClient::Reverse(absl::Duration timeout,
                                                                absl::Time deadline) const {
  v1::ReverseCall request;
  request.set_token(token_);
  request.set_region(region_);
  request.set_timeout_ms(absl::ToInt64Milliseconds(timeout));
  grpc::ClientContext context;
  SetDeadline(context, deadline);
  v1::ReverseOutcome reply;
  FERRY_RETURN_IF_ERROR(FromGrpc(stub_->Reverse(&context, request, &reply), "reverse"));
  return reply;
}

grpc::Status RegionControlService::Quarantine(grpc::ServerContext* context,
                                              const v1::QuarantineBatch* request,
                                              v1::QuarantineKept* reply) {
  (void)context;
  if (auto s = Check(request->token(), request->region()); !s.ok()) return s;
  if (!IsValidRejoinId(request->operation())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed rejoin operation id");
  }
  absl::StatusOr<v1::QuarantineKept> kept = backend_->KeepQuarantined(*request);
  if (!kept.ok()) return ToGrpcStatus(kept.status());
  *reply = *std::move(kept);
  return grpc::Status::OK;
}

grpc::Status RegionControlService::RejoinRepair(grpc::ServerContext* context,
                                                const v1::RejoinRepairRequest* request,
                                                v1::RejoinRepairReply* reply) {
  (void)context;
  if (auto s = Check(request->token(), request->region()); !s.ok()) return s;
  if (!IsValidRejoinId(request->operation())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed rejoin operation id");
  }
  absl::StatusOr<absl::Duration> timeout =
      LongVerbTimeout(request->timeout_ms(), absl::Seconds(300), "rejoin repair");
  if (!timeout.ok()) return ToGrpcStatus(timeout.status());
  absl::StatusOr<v1::RejoinRepairReply> done = backend_->RepairForRejoin(
      request->operation(), request->region(), request->repair(), request->bucket(), *timeout);
  if (!done.ok()) return ToGrpcStatus(done.status());
  *reply = *std::move(done);
  return grpc::Status::OK;
}

absl::StatusOr<v1::QuarantineKept> RegionControlClient::Quarantine(v1::QuarantineBatch batch,
                                                                   absl::Time deadline) const {
  batch.set_token(token_);
  batch.set_region(region_);
  grpc::ClientContext context;
  SetDeadline(context, deadline);
  v1::QuarantineKept reply;
  FERRY_RETURN_IF_ERROR(FromGrpc(stub_->Quarantine(&context, batch, &reply), "quarantine"));
  return reply;
}

absl::StatusOr<v1::RejoinRepairReply> RegionControlClient::RejoinRepair(
    const std::string& operation, bool repair, absl::Time deadline, bool bucket) const {
  v1::RejoinRepairRequest request;
  request.set_bucket(bucket);
  request.set_token(token_);
  request.set_region(region_);
  request.set_operation(operation);
  request.set_repair(repair);
  request.set_timeout_ms(std::max<int64_t>(1, absl::ToInt64Milliseconds(deadline - absl::Now())));
  grpc::ClientContext context;
  SetDeadline(context, deadline + absl::Seconds(5));
  v1::RejoinRepairReply reply;
  FERRY_RETURN_IF_ERROR(FromGrpc(stub_->RejoinRepair(&context, request, &reply), "rejoin repair"));
  return reply;
}

}  // namespace ferry
