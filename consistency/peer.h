// StandbyPeer: what the verify's coordinator (on the primary) asks of the standby's verifier,
// in this process (LocalStandbyPeer, consistency/postgres/coordinator.h) or over gRPC
// (GrpcStandbyPeer, consistency/grpc/verify_client.h).
#pragma once

#include <compare>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "consistency/comparison.h"
#include "consistency/schema.h"
#include "consistency/table_side.h"

namespace ferry::consistency {

struct TableName {
  std::string schema;
  std::string name;
  friend bool operator==(const TableName&, const TableName&) = default;
  friend auto operator<=>(const TableName&, const TableName&) = default;
};

// Thread safety: OpenTable may run on another thread than the coordinator's (it scans while the
// primary scans); one call at a time, except CancelScan.
class StandbyPeer {
 public:
  virtual ~StandbyPeer() = default;
  [[nodiscard]] virtual absl::StatusOr<std::vector<TableName>> ListTables() = 0;
  // kNotFound when the standby has no such table.
  [[nodiscard]] virtual absl::StatusOr<TableSchema> ReadSchema(const TableName& table) = 0;
  // Scans the table per `spec` and returns its side; valid until the next OpenTable.
  [[nodiscard]] virtual absl::StatusOr<TableSide*> OpenTable(const TableSpec& spec) = 0;
  // Makes a running OpenTable end soon with kCancelled (its statement cancelled in Postgres,
  // or its call cancelled), and every later one at once: the verify is over. Thread safety:
  // any thread, while OpenTable runs on another; may be called again (idempotent).
  virtual void CancelScan() {}
  // --repair: writes the primary's rows for the differing keys on the standby, skipping keys
  // its apply changed since the cut (docs/verify.md). kUnimplemented where not supported.
  [[nodiscard]] virtual absl::StatusOr<RepairCounts> Repair(const TableSpec& spec,
                                                            const std::vector<RepairRow>& rows) {
    (void)spec;
    (void)rows;
    return absl::UnimplementedError("this standby cannot repair");
  }
};

}  // namespace ferry::consistency
