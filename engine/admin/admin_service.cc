#include "engine/admin/admin_service.h"

#include <spdlog/spdlog.h>

#include "engine/api/sink.h"

namespace ferry {

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::string& longer = a.size() >= b.size() ? a : b;
  for (size_t i = 0; i < longer.size(); ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0;
    const unsigned char y = i < b.size() ? b[i] : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

absl::StatusOr<absl::Duration> LongVerbTimeout(int64_t timeout_ms, absl::Duration fallback,
                                               const char* verb) {
  constexpr int64_t kMaxTimeoutMs = int64_t{24} * 3600 * 1000;
  if (timeout_ms < 0 || timeout_ms > kMaxTimeoutMs) {
    return absl::InvalidArgumentError(
        absl::StrCat(verb, ": timeout must be between 0 (the default, ",
                     absl::FormatDuration(fallback), ") and 24 hours"));
  }
  return timeout_ms == 0 ? fallback : absl::Milliseconds(timeout_ms);
}

grpc::Status ToGrpcStatus(const absl::Status& s) {
  // absl and gRPC share the canonical codes (google.rpc.Code).
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

grpc::Status AdminService::Authenticate(const grpc::ServerContext& context) const {
  if (token_.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  static constexpr char kBearer[] = "Bearer ";
  if (it == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "admin token required");
  }
  const std::string value(it->second.data(), it->second.size());
  if (value.size() > 4096 || value.rfind(kBearer, 0) != 0 ||
      !ConstantTimeEquals(value.substr(sizeof(kBearer) - 1), token_)) {
    spdlog::warn("admin call from {} refused: wrong token", context.peer());
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong admin token");
  }
  return grpc::Status::OK;
}

grpc::Status AdminService::Status(grpc::ServerContext* context, const v1::StatusRequest*,
                                  v1::StatusReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  *reply = backend_->Status();
  return grpc::Status::OK;
}

grpc::Status AdminService::Pause(grpc::ServerContext* context, const v1::PauseRequest*,
                                 v1::PauseReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  absl::StatusOr<bool> was = backend_->Pause();
  if (!was.ok()) {
    spdlog::error("admin: pause failed: {}", was.status().ToString());
    return ToGrpcStatus(was.status());
  }
  reply->set_was_paused(*was);
  spdlog::info("admin: pause (was {})", reply->was_paused() ? "paused" : "running");
  return grpc::Status::OK;
}

grpc::Status AdminService::Resume(grpc::ServerContext* context, const v1::ResumeRequest*,
                                  v1::ResumeReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  absl::StatusOr<bool> was = backend_->Resume();
  if (!was.ok()) {
    spdlog::error("admin: resume failed: {}", was.status().ToString());
    return ToGrpcStatus(was.status());
  }
  reply->set_was_paused(*was);
  spdlog::info("admin: resume (was {})", reply->was_paused() ? "paused" : "running");
  return grpc::Status::OK;
}

grpc::Status AdminService::ResumeTable(grpc::ServerContext* context,
                                       const v1::ResumeTableRequest* request,
                                       v1::ResumeTableReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  const std::string& table = request->table();
  const size_t dot = table.find('.');
  if (table.size() > 1024 || dot == std::string::npos || dot == 0 || dot + 1 == table.size()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "resume-table needs a table as schema.name (at most 1024 bytes)");
  }
  absl::StatusOr<uint64_t> from = backend_->ResumeTable(table);
  if (!from.ok()) {
    spdlog::warn("admin: resume-table {} refused: {}", table, from.status().ToString());
    return ToGrpcStatus(from.status());
  }
  reply->set_table(table);
  reply->set_resumed_from_seq(*from);
  spdlog::info("admin: table {} resumed from inbound seq {}", table, *from);
  return grpc::Status::OK;
}

grpc::Status AdminService::Reseed(grpc::ServerContext* context, const v1::ReseedRequest* request,
                                  v1::ReseedReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  const std::string& id = request->discard_log_id();
  if (id != "unrecorded" && !IsValidLogId(id)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "reseed needs the log id the target's progress counts (32 lowercase hex "
                        "digits, as status shows it) or \"unrecorded\"");
  }
  absl::StatusOr<v1::ReseedReply> done = backend_->Reseed(id == "unrecorded" ? "" : id);
  if (!done.ok()) {
    spdlog::warn("admin: reseed (discarding log {}) refused: {}", id, done.status().ToString());
    return ToGrpcStatus(done.status());
  }
  *reply = *std::move(done);
  reply->set_discarded_log_id(id);
  spdlog::warn(
      "admin: reseed: the target's progress (seq {}) of log {} discarded; applying log {} "
      "from its beginning",
      reply->discarded_applied_seq(), id, reply->inbound_log_id());
  return grpc::Status::OK;
}

grpc::Status AdminService::Resnapshot(grpc::ServerContext* context,
                                      const v1::ResnapshotRequest* request,
                                      v1::ResnapshotReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  const std::string& table = request->table();
  const size_t dot = table.find('.');
  // Names are passed on as data (never spliced into SQL); only their outline is checked here.
  if (table.size() > 1024 || dot == std::string::npos || dot == 0 || dot + 1 == table.size() ||
      table.find('\0') != std::string::npos) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "resnapshot needs a table as schema.name (at most 1024 bytes)");
  }
  absl::StatusOr<v1::ResnapshotReply> done = backend_->Resnapshot(table);
  if (!done.ok()) {
    spdlog::warn("admin: resnapshot {} refused: {}", table, done.status().ToString());
    return ToGrpcStatus(done.status());
  }
  *reply = *std::move(done);
  reply->set_table(table);
  spdlog::info("admin: table {} re-snapshotted on the source: {} rows (copy {})", table,
               reply->rows(), reply->id());
  return grpc::Status::OK;
}

grpc::Status AdminService::Verify(grpc::ServerContext* context, const v1::VerifyRequest* request,
                                  grpc::ServerWriter<v1::VerifyEvent>* writer) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  if (request->tables_size() > 10000) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "verify: at most 10000 tables");
  }
  for (const std::string& table : request->tables()) {
    const size_t dot = table.find('.');
    if (table.size() > 1024 || dot == std::string::npos || dot == 0 || dot + 1 == table.size() ||
        table.find('\0') != std::string::npos) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "verify needs tables as schema.name (at most 1024 bytes)");
    }
  }
  absl::Status done = backend_->Verify(
      *request, [writer](const v1::VerifyEvent& event) { writer->Write(event); },
      [context] { return context->IsCancelled(); });
  if (!done.ok()) spdlog::warn("admin: verify failed: {}", done.ToString());
  return ToGrpcStatus(done);
}

// The whole switchover runs in this call (ferryctl waits for it); the timeout bounds the part
// before the flip, after which the switchover completes.
grpc::Status AdminService::Reverse(grpc::ServerContext* context, const v1::ReverseRequest* request,
                                   v1::ReverseReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  absl::StatusOr<absl::Duration> timeout =
      LongVerbTimeout(request->timeout_ms(), absl::Seconds(60), "reverse");
  if (!timeout.ok()) return ToGrpcStatus(timeout.status());
  spdlog::warn("admin: reverse requested (timeout {})", absl::FormatDuration(*timeout));
  absl::StatusOr<v1::ReverseReply> done = backend_->Reverse(*timeout);
  if (!done.ok()) {
    spdlog::warn("admin: reverse failed: {}", done.status().ToString());
    return ToGrpcStatus(done.status());
  }
  *reply = *std::move(done);
  spdlog::warn("admin: reverse {} done: {} is primary under epoch {}", reply->operation(),
               reply->new_primary(), reply->epoch());
  return grpc::Status::OK;
}

grpc::Status AdminService::Promote(grpc::ServerContext* context, const v1::PromoteRequest* request,
                                   v1::PromoteReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  absl::StatusOr<absl::Duration> timeout =
      LongVerbTimeout(request->timeout_ms(), absl::Seconds(60), "promote");
  if (!timeout.ok()) return ToGrpcStatus(timeout.status());
  spdlog::warn("admin: promote requested{}", request->force() ? " (--force)" : "");
  absl::StatusOr<v1::PromoteReply> done = backend_->Promote(request->force(), *timeout);
  if (!done.ok()) {
    spdlog::warn("admin: promote failed: {}", done.status().ToString());
    return ToGrpcStatus(done.status());
  }
  *reply = *std::move(done);
  spdlog::warn("admin: promote {} done: primary under epoch {}", reply->operation(),
               reply->epoch());
  return grpc::Status::OK;
}

grpc::Status AdminService::Rejoin(grpc::ServerContext* context, const v1::RejoinRequest* request,
                                  v1::RejoinReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  absl::StatusOr<absl::Duration> timeout =
      LongVerbTimeout(request->timeout_ms(), absl::Seconds(300), "rejoin");
  if (!timeout.ok()) return ToGrpcStatus(timeout.status());
  spdlog::warn("admin: rejoin requested");
  absl::StatusOr<v1::RejoinReply> done = backend_->Rejoin(*timeout);
  if (!done.ok()) {
    spdlog::warn("admin: rejoin failed: {}", done.status().ToString());
    return ToGrpcStatus(done.status());
  }
  *reply = *std::move(done);
  spdlog::warn("admin: rejoin {} done: standby of {} under epoch {}, {} change(s) quarantined",
               reply->operation(), reply->new_primary(), reply->epoch(), reply->quarantined());
  return grpc::Status::OK;
}

grpc::Status AdminService::Quarantine(grpc::ServerContext* context,
                                      const v1::QuarantineRequest* request,
                                      v1::QuarantineReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  const bool decision = request->verb() == "reapply" || request->verb() == "discard";
  if (decision) spdlog::warn("admin: quarantine {} {}", request->verb(), request->id());
  absl::StatusOr<v1::QuarantineReply> done = backend_->Quarantine(*request);
  if (!done.ok()) {
    if (decision)
      spdlog::warn("admin: quarantine {} refused: {}", request->verb(), done.status().ToString());
    return ToGrpcStatus(done.status());
  }
  *reply = *std::move(done);
  if (decision) spdlog::warn("admin: quarantine: {}", reply->outcome());
  return grpc::Status::OK;
}

}  // namespace ferry
