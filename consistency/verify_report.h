// What a verify is asked and what it finds, independent of the database and the transport: the
// engine sees these (engine/daemon/daemon_verify.cc); consistency/postgres fills them.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "consistency/comparison.h"
#include "consistency/peer.h"

namespace ferry::consistency {

struct VerifyOptions {
  // Tables to compare; empty: every table either region has (VerifySession::ListTables).
  std::vector<TableName> tables;
  int leaf_bits = 10;
  CompareOptions compare;
  // --repair: make the standby's differing keys equal to the primary's at the cut.
  bool repair = false;
  // Rows a second each side reads at most (0: no limit; TableSpec::max_rows_per_second).
  uint64_t max_rows_per_second = 0;
  // Called after each table with its result (progress).
  std::function<void(const TableDifferences&)> on_table;
  // Called when a table's comparison begins, with "comparing schema.name" (progress).
  std::function<void(const std::string&)> on_step;
  // Checked between tables (after the first): true ends this cut's comparison, the tables
  // not compared yet going to VerifyReport::remaining (RunRegionVerify takes a new cut).
  std::function<bool()> cut_expired;
  // The tables were listed at an earlier cut: one neither region has now was dropped since,
  // and is reported so (a note) instead of failing the verify.
  bool listed_before = false;
};

struct VerifyReport {
  std::vector<TableDifferences> tables;
  CompareStats stats;
  uint64_t primary_rows_read = 0;
  uint64_t primary_bytes_read = 0;
  // Tables left for a new cut (VerifyOptions::cut_expired).
  std::vector<TableName> remaining;

  uint64_t differences() const {
    uint64_t n = 0;
    for (const auto& t : tables) n += t.differences();
    return n;
  }
  bool truncated() const {
    for (const auto& t : tables) {
      if (t.truncated) return true;
    }
    return false;
  }
};

struct RegionVerifyOptions {
  std::string primary_dsn;
  std::string verify_id;  // [A-Za-z0-9_-]{1,64}; names the slot too
  absl::Duration cut_timeout = absl::Seconds(30);
  // A cut's snapshot holds back the primary's xmin (vacuum) while the tables are read at it:
  // once a cut is this old, the next table is read at a new cut. A table is never split, so
  // the xmin is held for at most this plus one table's comparison.
  absl::Duration max_cut_age = absl::Minutes(1);
  VerifyOptions verify;
};

struct RegionVerifyResult {
  VerifyReport report;
  uint64_t cut_position = 0;  // the first cut's
  int cuts = 0;               // cuts taken (a new one when a cut grew older than max_cut_age)
  std::string standby_region;
  uint64_t wire_bytes = 0;
  // --repair: the verify of the repaired tables at a new cut, when something was repaired.
  std::optional<VerifyReport> recheck;
};

}  // namespace ferry::consistency
