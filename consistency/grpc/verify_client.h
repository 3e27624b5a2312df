// GrpcStandbyPeer: the coordinator's view of the standby's VerifyPeerService
// (proto/verify.proto). Every call carries the verify id and the replication token and has its
// own deadline; replies are checked (sizes, counts) before use.
//
// Thread safety: as StandbyPeer (one call at a time; CancelScan from any thread).
#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "consistency/peer.h"
#include "proto/verify.grpc.pb.h"

namespace ferry::consistency {

struct GrpcPeerOptions {
  std::string verify_id;
  std::string token;  // "" sends none
  // Deadline of a scan (OpenTable) and of every other call.
  absl::Duration scan_timeout = absl::Hours(2);
  absl::Duration call_timeout = absl::Minutes(5);
};

class GrpcStandbyPeer : public StandbyPeer, private TableSide {
 public:
  GrpcStandbyPeer(std::shared_ptr<grpc::Channel> channel, GrpcPeerOptions options);

  // The cut's two steps on the standby (VerifyPeer.BeginCut / SetCut). The region's name.
  [[nodiscard]] absl::StatusOr<std::string> BeginCut(absl::Duration cut_timeout);
  [[nodiscard]] absl::Status SetCut(uint64_t position, absl::Duration timeout);
  // Ends the verify on the standby (best effort: a new verify ends it too).
  void End();
  // The next verify's id (a --repair's re-check).
  void set_verify_id(std::string id) { verify_id_ = std::move(id); }

  absl::StatusOr<std::vector<TableName>> ListTables() override;
  absl::StatusOr<TableSchema> ReadSchema(const TableName& table) override;
  absl::StatusOr<TableSide*> OpenTable(const TableSpec& spec) override;
  absl::StatusOr<RepairCounts> Repair(const TableSpec& spec,
                                      const std::vector<RepairRow>& rows) override;
  // Cancels the OpenTable call in flight (the standby then cancels its scan) and refuses the
  // later ones.
  void CancelScan() override;

  // Bytes of the messages sent and received (serialized protobuf sizes).
  uint64_t wire_bytes() const { return wire_bytes_; }

 private:
  absl::StatusOr<std::vector<Digest>> RangeDigests(const std::vector<KeyRange>& ranges) override;
  absl::StatusOr<std::vector<ScannedRow>> RangeRows(const KeyRange& range, uint64_t limit) override;
  absl::StatusOr<std::vector<std::optional<Digest>>> CutDigests(
      const KeyRange& range, const std::vector<Hash128>& cuts) override;
  void Prepare(grpc::ClientContext* context, absl::Duration timeout) const;

  std::unique_ptr<v1::VerifyPeer::Stub> stub_;
  const GrpcPeerOptions options_;
  std::string verify_id_;
  uint64_t wire_bytes_ = 0;

  absl::Mutex scan_mu_;
  grpc::ClientContext* scan_call_ ABSL_GUARDED_BY(scan_mu_) = nullptr;  // OpenTable's, in flight
  bool scan_cancelled_ ABSL_GUARDED_BY(scan_mu_) = false;
};

}  // namespace ferry::consistency
