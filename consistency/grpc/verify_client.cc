#include "consistency/grpc/verify_client.h"

#include <grpcpp/grpcpp.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "consistency/grpc/wire.h"

namespace ferry::consistency {
namespace {

absl::Status FromGrpc(const grpc::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("standby verifier, ", what, ": ", s.error_message()));
}

}  // namespace

GrpcStandbyPeer::GrpcStandbyPeer(std::shared_ptr<grpc::Channel> channel, GrpcPeerOptions options)
    : stub_(v1::VerifyPeer::NewStub(std::move(channel))),
      options_(std::move(options)),
      verify_id_(options_.verify_id) {}

void GrpcStandbyPeer::Prepare(grpc::ClientContext* context, absl::Duration timeout) const {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  if (!options_.token.empty()) context->AddMetadata("authorization", "Bearer " + options_.token);
}

absl::StatusOr<std::string> GrpcStandbyPeer::BeginCut(absl::Duration cut_timeout) {
  grpc::ClientContext context;
  Prepare(&context, options_.call_timeout);
  v1::BeginCutRequest request;
  request.set_verify_id(verify_id_);
  request.set_cut_timeout_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(cut_timeout)));
  v1::BeginCutReply reply;
  if (auto s = FromGrpc(stub_->BeginCut(&context, request, &reply), "freezing apply"); !s.ok()) {
    return s;
  }
  return reply.region();
}

absl::Status GrpcStandbyPeer::SetCut(uint64_t position, absl::Duration timeout) {
  grpc::ClientContext context;
  Prepare(&context, timeout);
  v1::SetCutRequest request;
  request.set_verify_id(verify_id_);
  request.set_position(position);
  v1::SetCutReply reply;
  return FromGrpc(stub_->SetCut(&context, request, &reply), "taking the standby's cut");
}

void GrpcStandbyPeer::End() {
  grpc::ClientContext context;
  Prepare(&context, absl::Seconds(10));
  v1::VerifyCall request;
  request.set_verify_id(verify_id_);
  v1::EndVerifyReply reply;
  (void)stub_->EndVerify(&context, request, &reply);
}

absl::StatusOr<std::vector<TableName>> GrpcStandbyPeer::ListTables() {
  grpc::ClientContext context;
  Prepare(&context, options_.call_timeout);
  v1::VerifyCall request;
  request.set_verify_id(verify_id_);
  v1::TableList reply;
  if (auto s = FromGrpc(stub_->ListTables(&context, request, &reply), "listing tables"); !s.ok()) {
    return s;
  }
  wire_bytes_ += request.ByteSizeLong() + reply.ByteSizeLong();
  std::vector<TableName> out;
  for (const auto& t : reply.tables()) out.push_back({t.schema(), t.name()});
  return out;
}

absl::StatusOr<TableSchema> GrpcStandbyPeer::ReadSchema(const TableName& table) {
  grpc::ClientContext context;
  Prepare(&context, options_.call_timeout);
  v1::TableRequest request;
  request.set_verify_id(verify_id_);
  request.mutable_table()->set_schema(table.schema);
  request.mutable_table()->set_name(table.name);
  v1::TableSchemaReply reply;
  if (auto s = FromGrpc(stub_->ReadSchema(&context, request, &reply), "reading a schema");
      !s.ok()) {
    return s;
  }
  wire_bytes_ += request.ByteSizeLong() + reply.ByteSizeLong();
  if (!reply.exists()) {
    return absl::NotFoundError(absl::StrCat("no table ", table.schema, ".", table.name));
  }
  TableSchema schema{.schema = table.schema, .name = table.name};
  for (const auto& c : reply.columns())
    schema.columns.push_back({c.name(), c.type(), c.collation()});
  schema.key_columns.assign(reply.key_columns().begin(), reply.key_columns().end());
  schema.key_constraint = reply.key_constraint();
  return schema;
}

void GrpcStandbyPeer::CancelScan() {
  absl::MutexLock lock(&scan_mu_);
  scan_cancelled_ = true;
  if (scan_call_ != nullptr) scan_call_->TryCancel();
}

absl::StatusOr<TableSide*> GrpcStandbyPeer::OpenTable(const TableSpec& spec) {
  grpc::ClientContext context;
  Prepare(&context, options_.scan_timeout);
  v1::OpenTableRequest request;
  request.set_verify_id(verify_id_);
  wire::ToProto(spec, &request);
  v1::OpenTableReply reply;
  {
    absl::MutexLock lock(&scan_mu_);
    if (scan_cancelled_) return absl::CancelledError("verify: the scan was cancelled");
    scan_call_ = &context;
  }
  grpc::Status called = stub_->OpenTable(&context, request, &reply);
  {
    absl::MutexLock lock(&scan_mu_);
    scan_call_ = nullptr;
  }
  if (auto s = FromGrpc(called, "scanning " + spec.qualified()); !s.ok()) return s;
  wire_bytes_ += request.ByteSizeLong() + reply.ByteSizeLong();
  return static_cast<TableSide*>(this);
}

absl::StatusOr<RepairCounts> GrpcStandbyPeer::Repair(const TableSpec& spec,
                                                     const std::vector<RepairRow>& rows) {
  grpc::ClientContext context;
  Prepare(&context, options_.call_timeout);
  v1::RepairRequest request;
  request.set_verify_id(verify_id_);
  wire::ToProto(spec, request.mutable_table());
  for (const RepairRow& r : rows) wire::ToProto(r, request.add_rows());
  v1::RepairReply reply;
  if (auto s = FromGrpc(stub_->Repair(&context, request, &reply), "repairing " + spec.qualified());
      !s.ok()) {
    return s;
  }
  wire_bytes_ += request.ByteSizeLong() + reply.ByteSizeLong();
  return RepairCounts{reply.applied(), reply.skipped()};
}

absl::StatusOr<std::vector<Digest>> GrpcStandbyPeer::RangeDigests(
    const std::vector<KeyRange>& ranges) {
  grpc::ClientContext context;
  Prepare(&context, options_.call_timeout);
  v1::RangeDigestsRequest request;
  request.set_verify_id(verify_id_);
  for (const KeyRange& r : ranges) wire::ToProto(r, request.add_ranges());
  v1::RangeDigestsReply reply;
  if (auto s = FromGrpc(stub_->RangeDigests(&context, request, &reply), "digests"); !s.ok()) {
    return s;
  }
  wire_bytes_ += request.ByteSizeLong() + reply.ByteSizeLong();
  std::vector<Digest> out;
  out.reserve(reply.digests_size());
  for (const auto& d : reply.digests()) out.push_back(wire::FromProto(d));
  return out;  // the comparison checks the count
}

absl::StatusOr<std::vector<ScannedRow>> GrpcStandbyPeer::RangeRows(const KeyRange& range,
                                                                   uint64_t limit) {
  grpc::ClientContext context;
  Prepare(&context, options_.call_timeout);
  v1::RangeRowsRequest request;
  request.set_verify_id(verify_id_);
  wire::ToProto(range, request.mutable_range());
  request.set_limit(limit);
  v1::RangeRowsReply reply;
  if (auto s = FromGrpc(stub_->RangeRows(&context, request, &reply), "rows"); !s.ok()) return s;
  wire_bytes_ += request.ByteSizeLong() + reply.ByteSizeLong();
  if (static_cast<uint64_t>(reply.rows_size()) > limit) {
    return absl::DataLossError(
        absl::StrCat("standby verifier sent ", reply.rows_size(), " rows for at most ", limit));
  }
  std::vector<ScannedRow> out;
  out.reserve(reply.rows_size());
  for (const auto& r : reply.rows()) out.push_back(wire::FromProto(r));
  return out;
}

absl::StatusOr<std::vector<std::optional<Digest>>> GrpcStandbyPeer::CutDigests(
    const KeyRange& range, const std::vector<Hash128>& cuts) {
  grpc::ClientContext context;
  Prepare(&context, options_.call_timeout);
  v1::CutDigestsRequest request;
  request.set_verify_id(verify_id_);
  wire::ToProto(range, request.mutable_range());
  for (const Hash128& c : cuts) {
    request.add_cut_low(c.low);
    request.add_cut_high(c.high);
  }
  v1::CutDigestsReply reply;
  if (auto s = FromGrpc(stub_->CutDigests(&context, request, &reply), "run digests"); !s.ok()) {
    return s;
  }
  wire_bytes_ += request.ByteSizeLong() + reply.ByteSizeLong();
  if (reply.digests_size() != reply.found_size()) {
    return absl::DataLossError("standby verifier sent run digests and flags that disagree");
  }
  std::vector<std::optional<Digest>> out;
  out.reserve(reply.digests_size());
  for (int i = 0; i < reply.digests_size(); ++i) {
    out.push_back(reply.found(i) ? std::optional<Digest>(wire::FromProto(reply.digests(i)))
                                 : std::nullopt);
  }
  return out;  // the comparison checks the count
}

}  // namespace ferry::consistency
