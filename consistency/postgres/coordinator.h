// The verify's coordinator, run by the primary's ferryd: for each table, compare the schemas,
// scan the primary's copy while the standby scans its own, then compare top-down
// (comparison.h). The standby is a StandbyPeer: in-process for tests (LocalStandbyPeer), over
// gRPC between two ferryd (engine side).
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(auto primary, VerifySession::Open(primary_dsn, snapshot));
//   LocalStandbyPeer standby(std::move(standby_session));
//   FERRY_ASSIGN_OR_RETURN(VerifyReport report, RunVerify(*primary, standby, {}));
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "consistency/comparison.h"
#include "consistency/postgres/pg_verify_session.h"
#include "consistency/verify_report.h"

namespace ferry::consistency {

// A standby read in this process through its own VerifySession.
class LocalStandbyPeer : public StandbyPeer {
 public:
  // `repair_dsn`: where Repair writes ("" = no repair).
  explicit LocalStandbyPeer(std::unique_ptr<VerifySession> session, std::string repair_dsn = "")
      : session_(std::move(session)), repair_dsn_(std::move(repair_dsn)) {}
  absl::StatusOr<std::vector<TableName>> ListTables() override { return session_->ListTables(); }
  absl::StatusOr<TableSchema> ReadSchema(const TableName& table) override {
    return session_->ReadSchema(table);
  }
  absl::StatusOr<TableSide*> OpenTable(const TableSpec& spec) override;
  absl::StatusOr<RepairCounts> Repair(const TableSpec& spec,
                                      const std::vector<RepairRow>& rows) override;
  void CancelScan() override;
  uint64_t rows_read() const { return rows_read_; }

 private:
  absl::Status CheckCancelled() const;

  std::unique_ptr<VerifySession> session_;
  std::atomic<bool> cancelled_{false};
  const std::string repair_dsn_;
  std::unique_ptr<PgTableSide> table_;
  uint64_t rows_read_ = 0;
};

// Errors: the sessions' and the peer's (kUnavailable: a database or the peer went away),
// options.compare.check_cancelled's. A table missing on one side is a difference, not an error.
[[nodiscard]] absl::StatusOr<VerifyReport> RunVerify(VerifySession& primary, StandbyPeer& standby,
                                                     const VerifyOptions& options);

}  // namespace ferry::consistency
