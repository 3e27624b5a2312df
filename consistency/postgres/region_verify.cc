#include "consistency/postgres/region_verify.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"
#include "consistency/postgres/primary_cut.h"
#include "engine/base/status_macros.h"

namespace ferry::consistency {
namespace {

std::string SlotNameFor(const std::string& verify_id) {
  std::string slot = "ferry_verify_";
  for (char c : verify_id) {
    slot.push_back(std::isalnum(static_cast<unsigned char>(c))
                       ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
                       : '_');
  }
  return slot.substr(0, 63);
}

absl::StatusOr<RegionVerifyResult> RunWithFrozenStandby(const RegionVerifyOptions& options,
                                                        GrpcStandbyPeer& standby,
                                                        RegionVerifyResult result) {
  FERRY_ASSIGN_OR_RETURN(
      auto cut,
      PrimaryCut::Create(options.primary_dsn, SlotNameFor(options.verify_id), options.cut_timeout));
  const absl::Time taken = absl::Now();
  result.cut_position = cut->position();
  FERRY_ASSIGN_OR_RETURN(auto primary, VerifySession::Open(options.primary_dsn, cut->snapshot()));
  FERRY_RETURN_IF_ERROR(cut->CommitMarker(options.primary_dsn, options.verify_id));
  cut->Release();
  FERRY_RETURN_IF_ERROR(standby.SetCut(result.cut_position, options.cut_timeout));
  VerifyOptions verify = options.verify;
  verify.cut_expired = [&] { return absl::Now() - taken >= options.max_cut_age; };
  FERRY_ASSIGN_OR_RETURN(result.report, RunVerify(*primary, standby, verify));
  return result;
}

absl::StatusOr<RegionVerifyResult> RunOnce(const RegionVerifyOptions& options,
                                           GrpcStandbyPeer& standby) {
  RegionVerifyResult result;
  // The freeze outlasts both waits of the cut (the primary's slot, the standby reaching it).
  FERRY_ASSIGN_OR_RETURN(result.standby_region,
                         standby.BeginCut(options.cut_timeout * 2 + absl::Seconds(10)));
  absl::StatusOr<RegionVerifyResult> done = RunWithFrozenStandby(options, standby, result);
  standby.End();
  return done;
}

// Cut after cut until every table is compared: each cut's tables are read at its snapshot, and
// a new one is taken when it is older than max_cut_age (its verify id suffixed "-cN").
absl::StatusOr<RegionVerifyResult> RunCuts(RegionVerifyOptions options, GrpcStandbyPeer& standby) {
  const std::string verify_id = options.verify_id;
  FERRY_ASSIGN_OR_RETURN(RegionVerifyResult result, RunOnce(options, standby));
  result.cuts = 1;
  while (!result.report.remaining.empty()) {
    options.verify.tables = std::move(result.report.remaining);
    options.verify.listed_before = true;
    result.report.remaining.clear();
    if (options.verify.on_step) options.verify.on_step("taking a new cut");
    options.verify_id = absl::StrCat(verify_id, "-c", ++result.cuts);
    standby.set_verify_id(options.verify_id);
    FERRY_ASSIGN_OR_RETURN(RegionVerifyResult next, RunOnce(options, standby));
    VerifyReport& into = result.report;
    for (TableDifferences& t : next.report.tables) into.tables.push_back(std::move(t));
    into.stats.rounds += next.report.stats.rounds;
    into.stats.ranges_compared += next.report.stats.ranges_compared;
    into.stats.leaves_compared += next.report.stats.leaves_compared;
    into.stats.rows_exchanged += next.report.stats.rows_exchanged;
    into.primary_rows_read += next.report.primary_rows_read;
    into.primary_bytes_read += next.report.primary_bytes_read;
    into.remaining = std::move(next.report.remaining);
  }
  result.wire_bytes = standby.wire_bytes();
  return result;
}

}  // namespace

absl::StatusOr<RegionVerifyResult> RunRegionVerify(const RegionVerifyOptions& options,
                                                   GrpcStandbyPeer& standby) {
  FERRY_ASSIGN_OR_RETURN(RegionVerifyResult result, RunCuts(options, standby));
  if (!options.verify.repair) return result;
  // Verify again, at a new cut, every table a repair wrote to.
  RegionVerifyOptions again = options;
  again.verify.repair = false;
  again.verify.tables.clear();
  for (const TableDifferences& t : result.report.tables) {
    if (t.repair_attempted) {
      const size_t dot = t.table.find('.');
      again.verify.tables.push_back({t.table.substr(0, dot), t.table.substr(dot + 1)});
    }
  }
  if (again.verify.tables.empty()) return result;
  standby.set_verify_id(options.verify_id + "-recheck");
  again.verify_id = options.verify_id + "-recheck";
  FERRY_ASSIGN_OR_RETURN(RegionVerifyResult recheck, RunCuts(again, standby));
  result.recheck = std::move(recheck.report);
  result.wire_bytes = standby.wire_bytes();
  return result;
}

}  // namespace ferry::consistency
