// Postgres WAL positions (LSNs) as 64-bit integers, and their text form "XXXXXXXX/XXXXXXXX"
// (hexadecimal high and low 32 bits, as pg_lsn prints them).
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(uint64_t lsn, ParseLsn("16/B374D848"));
//   std::string text = FormatLsn(lsn);  // "16/B374D848"
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::pg {

// Parses "hi/lo" (1 to 8 hex digits each). kInvalidArgument on anything else.
[[nodiscard]] absl::StatusOr<uint64_t> ParseLsn(absl::string_view text);

// Formats as Postgres does: upper-case hex, no leading zeros.
std::string FormatLsn(uint64_t lsn);

// Microseconds between the Unix epoch and the Postgres epoch (2000-01-01 00:00:00 UTC), in
// which the replication protocol sends timestamps.
inline constexpr int64_t kPostgresEpochUnixMicros = 946684800LL * 1000000LL;

}  // namespace ferry::pg
