// MemoryTableSide: a table held in memory, the test double of a region's table. Keys order by
// their text values (NULL first), which is all the comparison needs of an order: that both
// sides share it.
#pragma once

#include <algorithm>
#include <utility>
#include <vector>

#include "consistency/leaf_index.h"

namespace ferry::consistency::testing {

struct MemoryRow {
  Values key;     // keyless tables: one value, the row's text
  Values values;  // the compared columns
};

class MemoryTableSide : public IndexedTableSide {
 public:
  explicit MemoryTableSide(std::vector<MemoryRow> rows) : rows_(std::move(rows)) {
    std::stable_sort(rows_.begin(), rows_.end(),
                     [](const MemoryRow& a, const MemoryRow& b) { return a.key < b.key; });
  }
  uint64_t scans() const { return scans_; }

 protected:
  absl::Status Scan(const KeyRange& range, bool, int, const RowCallback& row) override {
    ++scans_;
    for (const MemoryRow& r : rows_) {
      if (range.begin.has_value() && r.key < *range.begin) continue;
      if (range.end.has_value() && !(r.key < *range.end)) break;
      if (!row(ScannedRow{HashValues(r.key), HashValues(r.values), r.key})) break;
    }
    return absl::OkStatus();
  }

 private:
  std::vector<MemoryRow> rows_;
  uint64_t scans_ = 0;
};

}  // namespace ferry::consistency::testing
