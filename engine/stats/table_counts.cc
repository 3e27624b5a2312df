#include "engine/stats/table_counts.h"

#include <algorithm>

namespace ferry {

void CountTransaction(const v1::Transaction& txn, TableCountDelta& delta) {
  // Transactions name few relations: a linear lookup beats building a map.
  CountTransaction(
      txn,
      [&](uint32_t relation_id) -> const v1::Relation* {
        for (const v1::Relation& r : txn.relations()) {
          if (r.relation_id() == relation_id) return &r;
        }
        return nullptr;
      },
      delta);
}

void CountTransaction(const v1::Transaction& txn,
                      absl::FunctionRef<const v1::Relation*(uint32_t relation_id)> find,
                      TableCountDelta& delta) {
  if (txn.changes_size() == 0) return;
  uint32_t last_id = 0;
  TableCount* last = nullptr;
  for (const v1::Change& c : txn.changes()) {
    if (c.op() == v1::MESSAGE || c.op() == v1::OPERATION_UNSPECIFIED) continue;
    if (last == nullptr || c.relation_id() != last_id) {
      const v1::Relation* r = find(c.relation_id());
      if (r == nullptr) continue;
      last = &delta[r->schema() + "." + r->name()];
      last_id = c.relation_id();
    }
    if (txn.snapshot()) {
      if (c.op() == v1::INSERT) ++last->snapshot_rows;
      if (c.op() == v1::COPY) last->snapshot_rows += c.copy_row_count();
      continue;
    }
    ++last->changes;
    last->last_commit_us = std::max(last->last_commit_us, txn.commit_time_us());
  }
}

void TableCounts::Add(const TableCountDelta& delta) {
  if (delta.empty()) return;
  absl::MutexLock lock(&mu_);
  for (const auto& [table, d] : delta) {
    TableCount& c = counts_[table];
    c.changes += d.changes;
    c.snapshot_rows += d.snapshot_rows;
    c.last_commit_us = std::max(c.last_commit_us, d.last_commit_us);
  }
}

std::map<std::string, TableCount> TableCounts::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return counts_;
}

}  // namespace ferry
