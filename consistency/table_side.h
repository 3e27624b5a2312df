// TableSide: one region's view of one table at the verify's cut, as the comparison needs it.
//
// Rows are ordered by the table's key (the primary key's columns; for a keyless table the whole
// row's text). A key range is half open, [begin, end); an absent bound is unbounded. Both
// regions order keys the same way (TableSpec::key_collate_c when their key collations differ),
// so a range names the same rows on both sides.
//
// Thread safety: one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "consistency/row_hash.h"

namespace ferry::consistency {

// What both regions need to read a table the same way. The coordinator (primary) makes it
// after comparing the schemas and sends it to the standby.
struct TableSpec {
  std::string schema;
  std::string name;
  // The columns hashed, in name order: the columns both regions have.
  std::vector<std::string> columns;
  // The key's columns in key order; empty for a keyless table (compared as a multiset, ordered
  // by the row's text).
  std::vector<std::string> key_columns;
  // Order (and compare bounds) by the key columns' text in the "C" collation, because the two
  // regions' key collations differ.
  bool key_collate_c = false;
  // A leaf holds 2^leaf_bits rows on average.
  int leaf_bits = 10;
  // Each side reads at most this many rows a second (0: no limit), so that a verify leaves the
  // databases' I/O and CPU to replication and the application.
  uint64_t max_rows_per_second = 0;

  bool keyless() const { return key_columns.empty(); }
  std::string qualified() const { return schema + "." + name; }
};

struct KeyRange {
  std::optional<Values> begin;  // nullopt: from the first row
  std::optional<Values> end;    // nullopt: to the last row
};

struct ScannedRow {
  Hash128 key_hash;  // hash of the key's values (keyless: of the row's text)
  Hash128 row_hash;  // hash of the compared columns' values
  Values key;        // the key's values as text
};

class TableSide {
 public:
  virtual ~TableSide() = default;
  // The digest of each range, in the order given. Errors: kUnavailable (the connection to the
  // database or the peer broke: the verify fails), kInvalidArgument (a malformed range).
  [[nodiscard]] virtual absl::StatusOr<std::vector<Digest>> RangeDigests(
      const std::vector<KeyRange>& ranges) = 0;
  // Every row of `range` in key order; at most `limit` rows (kResourceExhausted past it).
  [[nodiscard]] virtual absl::StatusOr<std::vector<ScannedRow>> RangeRows(const KeyRange& range,
                                                                          uint64_t limit) = 0;
  // The rows of `range` cut into runs at the rows whose key hashes are `cuts` (in key order):
  // one entry per cut plus one for the run before the first, each the digest of its run, or
  // nullopt when no row here has that cut's key hash (the run before it then goes on past it).
  // kUnimplemented where not supported (the comparison then reads the whole range's rows).
  [[nodiscard]] virtual absl::StatusOr<std::vector<std::optional<Digest>>> CutDigests(
      const KeyRange& range, const std::vector<Hash128>& cuts) {
    (void)range;
    (void)cuts;
    return absl::UnimplementedError("no cut digests");
  }
};

}  // namespace ferry::consistency
