#include "consistency/grpc/verify_service.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "consistency/grpc/wire.h"
#include "engine/base/kill_point.h"

namespace ferry::consistency {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

bool SameToken(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

VerifyPeerService::VerifyPeerService(VerifyServiceOptions options) : options_(std::move(options)) {}

VerifyPeerService::~VerifyPeerService() {
  CancelScan("");
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    EndLocked();
  }
  absl::MutexLock lock(&watchdog_mu_);
  if (watchdog_.joinable()) watchdog_.join();
}

grpc::Status VerifyPeerService::Authenticate(const grpc::ServerContext& context) const {
  if (options_.token.empty()) return grpc::Status::OK;
  auto it = context.client_metadata().find("authorization");
  if (it == context.client_metadata().end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "verify: no token");
  }
  const std::string got(it->second.data(), it->second.size());
  if (!SameToken(got, "Bearer " + options_.token)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "verify: wrong token");
  }
  return grpc::Status::OK;
}

void VerifyPeerService::CancelScan(const std::string& id) {
  absl::MutexLock lock(&scan_mu_);
  if (scanning_ != nullptr && (id.empty() || id == scanning_id_)) scanning_->CancelScan();
}

grpc::Status VerifyPeerService::CheckVerify(const std::string& id, bool need_session) {
  if (verify_id_.empty() || id != verify_id_) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("verify: ", id, " is not the verify running here"));
  }
  if (need_session && peer_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "verify: no cut taken yet");
  }
  last_call_ = absl::Now();
  return grpc::Status::OK;
}

void VerifyPeerService::EndLocked() {
  if (frozen_) {
    options_.barrier->Release();
    frozen_ = false;
  }
  ++generation_;
  table_ = nullptr;
  peer_.reset();
  verify_id_.clear();
}

void VerifyPeerService::Watch(uint64_t generation, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto settled = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || generation_ != generation || !frozen_;
  };
  mu_.AwaitWithDeadline(absl::Condition(&settled), deadline);
  if (!settled()) {
    // The coordinator never set the cut: give apply back and end the verify.
    EndLocked();
  }
}

grpc::Status VerifyPeerService::BeginCut(grpc::ServerContext* context,
                                         const v1::BeginCutRequest* request,
                                         v1::BeginCutReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  if (!wire::ValidVerifyId(request->verify_id())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "verify: malformed verify id");
  }
  if (request->cut_timeout_ms() == 0 || request->cut_timeout_ms() > options_.max_cut_timeout_ms) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("verify: cut_timeout_ms must be in [1, ", options_.max_cut_timeout_ms, "]"));
  }
  CancelScan("");  // a scan of the verify this one supersedes
  absl::MutexLock watch_lock(&watchdog_mu_);
  uint64_t generation = 0;
  {
    absl::MutexLock lock(&mu_);
    // Only the primary coordinates, and it runs one verify at a time: a new one means the
    // previous coordinator is gone (its ferryd was killed or restarted). Its calls are refused
    // from now on.
    if (!verify_id_.empty()) EndLocked();
  }
  if (watchdog_.joinable()) watchdog_.join();  // it ends: the verify it watched has ended
  absl::MutexLock lock(&mu_);
  if (absl::Status s = options_.barrier->Freeze(); !s.ok()) return ToGrpc(s);
  verify_id_ = request->verify_id();
  frozen_ = true;
  generation = ++generation_;
  last_call_ = absl::Now();
  watchdog_ = std::thread(&VerifyPeerService::Watch, this, generation,
                          absl::Now() + absl::Milliseconds(request->cut_timeout_ms()));
  reply->set_region(options_.region);
  return grpc::Status::OK;
}

grpc::Status VerifyPeerService::SetCut(grpc::ServerContext* context,
                                       const v1::SetCutRequest* request, v1::SetCutReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (auto s = CheckVerify(request->verify_id(), false); !s.ok()) return s;
  if (!frozen_ || peer_ != nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "verify: the cut is set already");
  }
  if (request->position() == 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "verify: cut position 0");
  }
  options_.barrier->SetCut(request->position());
  // Waiting holds mu_: the watchdog cannot lift the freeze under us; the wait is bounded by the
  // call's own deadline.
  const absl::Duration wait = context->deadline() == std::chrono::system_clock::time_point::max()
                                  ? absl::Minutes(1)
                                  : absl::FromChrono(context->deadline()) - absl::Now();
  if (absl::Status reached = options_.barrier->WaitForCut(wait); !reached.ok()) {
    EndLocked();
    return ToGrpc(absl::Status(reached.code(), absl::StrCat("verify: ", reached.message())));
  }
  absl::StatusOr<std::unique_ptr<StandbyPeer>> peer = options_.open_peer();
  reply->set_applied_seq(options_.barrier->applied_seq());
  options_.barrier->Release();  // the snapshot is taken: apply goes on
  frozen_ = false;
  if (!peer.ok()) {
    EndLocked();
    return ToGrpc(peer.status());
  }
  peer_ = std::move(*peer);
  KillPoint("verify.standby_cut_taken");
  return grpc::Status::OK;
}

grpc::Status VerifyPeerService::ListTables(grpc::ServerContext* context,
                                           const v1::VerifyCall* request, v1::TableList* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (auto s = CheckVerify(request->verify_id(), true); !s.ok()) return s;
  absl::StatusOr<std::vector<TableName>> tables = peer_->ListTables();
  if (!tables.ok()) return ToGrpc(tables.status());
  for (const TableName& t : *tables) {
    v1::TableId* id = reply->add_tables();
    id->set_schema(t.schema);
    id->set_name(t.name);
  }
  return grpc::Status::OK;
}

grpc::Status VerifyPeerService::ReadSchema(grpc::ServerContext* context,
                                           const v1::TableRequest* request,
                                           v1::TableSchemaReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (auto s = CheckVerify(request->verify_id(), true); !s.ok()) return s;
  absl::StatusOr<TableSchema> schema =
      peer_->ReadSchema({request->table().schema(), request->table().name()});
  if (absl::IsNotFound(schema.status())) return grpc::Status::OK;  // exists = false
  if (!schema.ok()) return ToGrpc(schema.status());
  reply->set_exists(true);
  for (const ColumnSchema& c : schema->columns) {
    v1::ColumnInfo* info = reply->add_columns();
    info->set_name(c.name);
    info->set_type(c.type);
    info->set_collation(c.collation);
  }
  for (const std::string& k : schema->key_columns) reply->add_key_columns(k);
  reply->set_key_constraint(schema->key_constraint);
  return grpc::Status::OK;
}

grpc::Status VerifyPeerService::OpenTable(grpc::ServerContext* context,
                                          const v1::OpenTableRequest* request,
                                          v1::OpenTableReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (auto s = CheckVerify(request->verify_id(), true); !s.ok()) return s;
  absl::StatusOr<TableSpec> spec = wire::FromProto(*request);
  if (!spec.ok()) return ToGrpc(spec.status());
  table_ = nullptr;
  {
    absl::MutexLock scan_lock(&scan_mu_);
    scanning_ = peer_.get();
    scanning_id_ = verify_id_;
  }
  // Cancels the scan once the coordinator's call is cancelled (gRPC's synchronous API tells
  // only when asked): checked every 50 ms, and the cancel sent again until the scan ends (a
  // cancel sent between two statements is lost).
  absl::Notification scanned;
  std::thread watcher([&] {
    while (!scanned.WaitForNotificationWithTimeout(absl::Milliseconds(50))) {
      if (context->IsCancelled()) CancelScan("");
    }
  });
  absl::StatusOr<TableSide*> side = peer_->OpenTable(*spec);
  scanned.Notify();
  watcher.join();
  {
    absl::MutexLock scan_lock(&scan_mu_);
    scanning_ = nullptr;
    scanning_id_.clear();
  }
  if (!side.ok()) return ToGrpc(side.status());
  table_ = *side;
  reply->set_rows(0);
  return grpc::Status::OK;
}

grpc::Status VerifyPeerService::RangeDigests(grpc::ServerContext* context,
                                             const v1::RangeDigestsRequest* request,
                                             v1::RangeDigestsReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (auto s = CheckVerify(request->verify_id(), true); !s.ok()) return s;
  if (table_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "verify: no table open");
  }
  if (request->ranges_size() > options_.max_ranges) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("verify: more than ", options_.max_ranges, " ranges"));
  }
  std::vector<KeyRange> ranges;
  ranges.reserve(request->ranges_size());
  for (const auto& r : request->ranges()) ranges.push_back(wire::FromProto(r));
  absl::StatusOr<std::vector<Digest>> digests = table_->RangeDigests(ranges);
  if (!digests.ok()) return ToGrpc(digests.status());
  for (const Digest& d : *digests) wire::ToProto(d, reply->add_digests());
  return grpc::Status::OK;
}

grpc::Status VerifyPeerService::RangeRows(grpc::ServerContext* context,
                                          const v1::RangeRowsRequest* request,
                                          v1::RangeRowsReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (auto s = CheckVerify(request->verify_id(), true); !s.ok()) return s;
  if (table_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "verify: no table open");
  }
  const uint64_t limit = std::min(request->limit(), options_.max_leaf_rows);
  absl::StatusOr<std::vector<ScannedRow>> rows =
      table_->RangeRows(wire::FromProto(request->range()), limit);
  if (!rows.ok()) return ToGrpc(rows.status());
  for (const ScannedRow& r : *rows) wire::ToProto(r, reply->add_rows());
  return grpc::Status::OK;
}

grpc::Status VerifyPeerService::CutDigests(grpc::ServerContext* context,
                                           const v1::CutDigestsRequest* request,
                                           v1::CutDigestsReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (auto s = CheckVerify(request->verify_id(), true); !s.ok()) return s;
  if (table_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "verify: no table open");
  }
  if (request->cut_low_size() > options_.max_ranges) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("verify: more than ", options_.max_ranges, " cuts"));
  }
  if (request->cut_low_size() != request->cut_high_size()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "verify: malformed cuts");
  }
  std::vector<Hash128> cuts;
  cuts.reserve(request->cut_low_size());
  for (int i = 0; i < request->cut_low_size(); ++i) {
    cuts.push_back(Hash128{request->cut_low(i), request->cut_high(i)});
  }
  absl::StatusOr<std::vector<std::optional<Digest>>> digests =
      table_->CutDigests(wire::FromProto(request->range()), cuts);
  if (!digests.ok()) return ToGrpc(digests.status());
  for (const std::optional<Digest>& d : *digests) {
    wire::ToProto(d.value_or(Digest{}), reply->add_digests());
    reply->add_found(d.has_value());
  }
  return grpc::Status::OK;
}

grpc::Status VerifyPeerService::Repair(grpc::ServerContext* context,
                                       const v1::RepairRequest* request, v1::RepairReply* reply) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (auto s = CheckVerify(request->verify_id(), true); !s.ok()) return s;
  if (request->rows_size() > options_.max_repair_rows) {
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("verify: more than ", options_.max_repair_rows, " rows to repair"));
  }
  absl::StatusOr<TableSpec> spec = wire::FromProto(request->table());
  if (!spec.ok()) return ToGrpc(spec.status());
  std::vector<RepairRow> rows;
  rows.reserve(request->rows_size());
  for (const auto& r : request->rows()) rows.push_back(wire::FromProto(r));
  absl::StatusOr<RepairCounts> counts = peer_->Repair(*spec, rows);
  if (!counts.ok()) return ToGrpc(counts.status());
  reply->set_applied(counts->applied);
  reply->set_skipped(counts->skipped);
  return grpc::Status::OK;
}

grpc::Status VerifyPeerService::EndVerify(grpc::ServerContext* context,
                                          const v1::VerifyCall* request, v1::EndVerifyReply*) {
  if (auto s = Authenticate(*context); !s.ok()) return s;
  if (!request->verify_id().empty()) CancelScan(request->verify_id());
  absl::MutexLock lock(&mu_);
  if (verify_id_.empty() || request->verify_id() != verify_id_) return grpc::Status::OK;
  EndLocked();
  return grpc::Status::OK;
}

}  // namespace ferry::consistency
