// VerifyPeerService: the standby's half of the verify exchange (proto/verify.proto), hosted on
// the standby's replication listener. It freezes the standby's apply for the cut (CutBarrier,
// lent by the daemon), opens a session on the standby's database at the cut (open_peer, given
// by ferryd, which knows the connector), and answers the coordinator's digests and rows.
//
// One verify at a time: a BeginCut ends the running verify, if any (the primary, the only
// coordinator, runs one at a time, so a new one means the previous coordinator is gone), and
// the old verify's calls are refused. A freeze is lifted after the BeginCut's cut_timeout_ms
// even if SetCut never comes, so a dead coordinator never holds apply.
//
// A running scan (OpenTable) stops inside its statement when its call is cancelled (the
// coordinator was cancelled, or its ferryd died), when EndVerify names its verify, when a
// BeginCut supersedes it, and when the service is destroyed (StandbyPeer::CancelScan).
//
// Thread safety: gRPC calls it from its threads; calls are serialised by one mutex (a scan
// holds it: the coordinator sends one call at a time anyway); the scan being run is also
// published under scan_mu_, which the cancelling calls take without waiting for mu_.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "consistency/peer.h"
#include "proto/verify.grpc.pb.h"

namespace ferry::consistency {

// The standby's apply, as the verify needs it (ApplyScheduler's FreezeForCut and friends).
class CutBarrier {
 public:
  virtual ~CutBarrier() = default;
  // kFailedPrecondition naming why a cut cannot be taken now (apply paused, not a standby).
  [[nodiscard]] virtual absl::Status Freeze() = 0;
  virtual void SetCut(uint64_t position) = 0;
  // OK once apply holds at the cut; otherwise why it does not: kDeadlineExceeded after
  // `timeout`, kFailedPrecondition when it never will (apply stopped for good, with its error).
  [[nodiscard]] virtual absl::Status WaitForCut(absl::Duration timeout) = 0;
  virtual void Release() = 0;
  virtual uint64_t applied_seq() = 0;
};

struct VerifyServiceOptions {
  std::string region;
  // The replication token; empty: not checked (tests and plaintext demos only).
  std::string token;
  // Opens a session on this region's database; its snapshot is taken when it opens.
  std::function<absl::StatusOr<std::unique_ptr<StandbyPeer>>()> open_peer;
  // Lent by the daemon; must outlive the service.
  CutBarrier* barrier = nullptr;
  // Bounds on what a peer may ask.
  int max_ranges = 4096;
  uint64_t max_leaf_rows = uint64_t{1} << 20;
  // Rows a Repair call may carry.
  int max_repair_rows = 100000;
  uint32_t max_cut_timeout_ms = 10 * 60 * 1000;
};

class VerifyPeerService final : public v1::VerifyPeer::Service {
 public:
  explicit VerifyPeerService(VerifyServiceOptions options);
  ~VerifyPeerService() override;  // ends the verify, lifts a freeze

  grpc::Status BeginCut(grpc::ServerContext* context, const v1::BeginCutRequest* request,
                        v1::BeginCutReply* reply) override;
  grpc::Status SetCut(grpc::ServerContext* context, const v1::SetCutRequest* request,
                      v1::SetCutReply* reply) override;
  grpc::Status ListTables(grpc::ServerContext* context, const v1::VerifyCall* request,
                          v1::TableList* reply) override;
  grpc::Status ReadSchema(grpc::ServerContext* context, const v1::TableRequest* request,
                          v1::TableSchemaReply* reply) override;
  grpc::Status OpenTable(grpc::ServerContext* context, const v1::OpenTableRequest* request,
                         v1::OpenTableReply* reply) override;
  grpc::Status RangeDigests(grpc::ServerContext* context, const v1::RangeDigestsRequest* request,
                            v1::RangeDigestsReply* reply) override;
  grpc::Status RangeRows(grpc::ServerContext* context, const v1::RangeRowsRequest* request,
                         v1::RangeRowsReply* reply) override;
  grpc::Status CutDigests(grpc::ServerContext* context, const v1::CutDigestsRequest* request,
                          v1::CutDigestsReply* reply) override;
  grpc::Status Repair(grpc::ServerContext* context, const v1::RepairRequest* request,
                      v1::RepairReply* reply) override;
  grpc::Status EndVerify(grpc::ServerContext* context, const v1::VerifyCall* request,
                         v1::EndVerifyReply* reply) override;

 private:
  grpc::Status Authenticate(const grpc::ServerContext& context) const;
  // The running verify is `id` (and it has a session when `need_session`).
  grpc::Status CheckVerify(const std::string& id, bool need_session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Lifts the freeze at `deadline` unless SetCut settled it (the watchdog thread).
  void Watch(uint64_t generation, absl::Time deadline);
  // Cancels the scan running now, if any (of verify `id`; every verify when `id` is empty).
  void CancelScan(const std::string& id) ABSL_LOCKS_EXCLUDED(scan_mu_);

  // Constant after construction.
  const VerifyServiceOptions options_;

  absl::Mutex mu_;
  std::string verify_id_ ABSL_GUARDED_BY(mu_);  // "" when none runs
  bool frozen_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // of the freeze, for the watchdog
  absl::Time last_call_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<StandbyPeer> peer_ ABSL_GUARDED_BY(mu_);
  TableSide* table_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread watchdog_;  // joined by the next BeginCut and the destructor (under no lock)
  absl::Mutex watchdog_mu_ ABSL_ACQUIRED_BEFORE(mu_);

  // The scan OpenTable runs now (its peer lives while mu_ is held by that call).
  absl::Mutex scan_mu_ ABSL_ACQUIRED_AFTER(mu_);
  StandbyPeer* scanning_ ABSL_GUARDED_BY(scan_mu_) = nullptr;
  std::string scanning_id_ ABSL_GUARDED_BY(scan_mu_);
};

}  // namespace ferry::consistency
