// --repair (docs/verify.md): the primary reads its rows for the differing keys at the cut
// (ReadRepairRows, in the verify's own snapshot), the standby writes them (RepairOnStandby).
//
// On the standby, one transaction, with its own replication origin ("ferry_verify_repair", so
// the writes are never captured as the application's) and session_replication_role = replica
// (as apply's sessions): each key's current row is locked (FOR UPDATE) and hashed as the verify
// hashed it; only a row still as it was at the cut (or still absent) is written. A row apply
// changed since the cut is skipped: apply carries the primary's later state for it. Values
// reach SQL as quoted literals of their text, under the verify's session settings.
//
// Keyless tables (multisets): each differing row value's copies are locked and counted; when
// the count is still the standby's at the cut, surplus copies are deleted by their tuple ids
// and missing ones inserted, so the standby holds the primary's count; otherwise the row is
// skipped (apply changed its copies since the cut).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "consistency/comparison.h"
#include "consistency/postgres/pg_verify_session.h"

namespace ferry::consistency {

// Rows a keyless repair call inserts or deletes at most (the sum of its targets' differences).
inline constexpr uint64_t kMaxRepairCopies = 100000;

[[nodiscard]] absl::StatusOr<std::vector<RepairRow>> ReadRepairRows(
    VerifySession& primary, const TableSpec& spec, const std::vector<RepairTarget>& targets);

// `spec` and `rows` come from the peer: checked against the standby's catalog and for widths,
// NUL bytes, duplicates and (keyless) values matching their hash (kInvalidArgument); more than
// kMaxRepairCopies keyless rows is kResourceExhausted.
[[nodiscard]] absl::StatusOr<RepairCounts> RepairOnStandby(const std::string& dsn,
                                                           const TableSpec& spec,
                                                           const std::vector<RepairRow>& rows);

}  // namespace ferry::consistency
