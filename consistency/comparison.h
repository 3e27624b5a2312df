// CompareTable: the coordinator's top-down comparison of one table between the primary (whose
// LeafIndex it holds) and the standby (a TableSide, local or over gRPC).
//
// The primary's leaves are the tree's leaves; an inner node is a run of consecutive leaves and
// its range runs from its first leaf's start key to the next node's (the first node from the
// first row, the last to the last row), so the ranges of one level cover every key. Each round
// asks the standby for the digests of the nodes that differed in the round before (one call a
// round, in chunks), splitting each into `fanout` children; a differing single leaf is cut into
// runs of about 1/16th of it at content-defined boundaries of the primary's rows, the standby
// answers each run's digest, each differing run is cut again the same way, and runs of a few
// dozen rows are compared row by row (key hash -> row hash). Identical tables cost one digest;
// the bytes on the wire grow with the differences times the tree's depth, not with the table.
//
// Keyed tables report keys missing on the standby, extra on the standby and changed; keyless
// tables (multisets) report counts of rows missing and extra. At most `max_keys` keys are kept
// over the three lists; counts are always complete.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "consistency/leaf_index.h"
#include "consistency/table_side.h"

namespace ferry::consistency {

struct CompareOptions {
  // Children of a differing node.
  int fanout = 16;
  // Ranges a RangeDigests call carries at most.
  size_t ranges_per_call = 1024;
  // Keys kept in a report (the counts go on).
  uint64_t max_keys = 1000;
  // Rows a differing leaf may hold on the standby before the table fails (kResourceExhausted):
  // bounds the memory of a leaf comparison.
  uint64_t max_leaf_rows = 1 << 20;
  // Called between calls to the standby and during the scans (from their threads too: it must
  // be thread-safe); a non-OK status (cancelled, deadline) stops the comparison with it.
  std::function<absl::Status()> check_cancelled;
};

// What a repair does for one differing key: make the standby's row equal to the primary's at
// the cut, unless the standby's row changed since the cut (its hash then differs from
// `standby_row_hash`, or it appeared or vanished).
//
// Keyless tables (multisets): one target per differing row value; `key` holds the row's text
// (ROW(...)::text, the keyless order key), `standby_row_hash` its row hash, and the copies each
// side held at the cut. The repair inserts or deletes copies until the standby holds
// `primary_copies`, unless the standby's count of that row changed since the cut.
struct RepairTarget {
  Values key;
  std::optional<Hash128> standby_row_hash;  // the standby's row at the cut; nullopt: absent
  bool remove = false;                      // the primary has no such key: delete it
  uint64_t primary_copies = 0;              // keyless only
  uint64_t standby_copies = 0;              // keyless only
};

// A target with the primary's row at the cut (the compared columns' values, TableSpec order);
// `values` is nullopt when the key is to be deleted.
struct RepairRow {
  RepairTarget target;
  std::optional<Values> values;
};

struct RepairCounts {
  uint64_t applied = 0;  // rows written (inserted, updated or deleted)
  uint64_t skipped = 0;  // rows the standby changed since the cut: left to apply
};

struct TableDifferences {
  std::string table;  // schema.name
  bool keyless = false;
  std::vector<std::string> key_columns;  // names of a key's values
  std::vector<Values> missing;           // keys the primary holds and the standby not
  std::vector<Values> extra;             // keys the standby holds and the primary not
  std::vector<Values> changed;           // keys both hold with different values
  uint64_t missing_count = 0;            // keyless: rows (a duplicate counts each time)
  uint64_t extra_count = 0;
  uint64_t changed_count = 0;
  std::vector<std::string> schema;  // schema differences, one sentence each
  // The DDL that gives the standby's table the primary's schema (TablePlan::standby_ddl).
  std::vector<std::string> standby_ddl;
  std::vector<std::string> notes;  // e.g. "key collations differ: ordered by COLLATE C"
  // Some keys were not kept (max_keys); keyless: more than max_keys distinct rows differ, and
  // only max_keys of them are repair targets.
  bool truncated = false;
  // One per kept key (keyless: per kept differing row value), in the order found (--repair).
  std::vector<RepairTarget> repair_targets;
  // --repair: what it did to this table, or why it did nothing.
  bool repair_attempted = false;
  RepairCounts repaired;
  std::string repair_note;

  uint64_t differences() const {
    return missing_count + extra_count + changed_count + schema.size();
  }
  bool equal() const { return differences() == 0; }
};

struct CompareStats {
  uint64_t rounds = 0;           // calls to RangeDigests and CutDigests
  uint64_t ranges_compared = 0;  // digests asked of the standby
  uint64_t leaves_compared = 0;  // leaves compared row by row
  uint64_t rows_exchanged = 0;   // rows of the differing runs compared row by row, both sides
};

// Compares the rows of one table; fills the row lists and counts of `out` (its table, schema
// and notes are the caller's). `primary` has built its index. Errors: those of the sides, and
// `check_cancelled`'s.
[[nodiscard]] absl::Status CompareTable(IndexedTableSide& primary, TableSide& standby,
                                        const CompareOptions& options, TableDifferences* out,
                                        CompareStats* stats);

}  // namespace ferry::consistency
