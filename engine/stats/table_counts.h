// TableCounts: per-table counters of what a region captured (primary) or applied (standby),
// for `ferryctl tables`, status and the per-table /metrics series (issue #20). Keyed by table
// ("schema.name", as stored, unquoted) and never by anything finer: its size is bounded by the
// number of replicated tables (tables dropped upstream keep their entry until ferryd restarts).
// In memory only: the counts start at 0 when ferryd starts (the daemon keeps the applied
// tables' names, not their counts).
//
// Thread-safe. Callers count a whole group of transactions at once (one lock per group).
//
// Example:
//   TableCounts applied;
//   TableCountDelta delta;
//   CountTransaction(txn, delta);         // for each transaction of a committed group
//   applied.Add(delta);
//   for (const auto& [table, c] : applied.Snapshot()) ...
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "proto/change.pb.h"

namespace ferry {

struct TableCount {
  uint64_t changes = 0;        // row changes (INSERT, UPDATE, DELETE, TRUNCATE), snapshots aside
  uint64_t snapshot_rows = 0;  // rows of an initial snapshot or a re-snapshot
  int64_t last_commit_us = 0;  // the latest source commit time among the changes (0: none)
};

using TableCountDelta = std::map<std::string, TableCount>;

// Adds the row changes of one transaction (or fragment) to `delta`, per table named by the
// transaction's relations. Messages (schema changes, Ferry's markers) are not row changes;
// changes of a relation the transaction does not describe are not counted.
void CountTransaction(const v1::Transaction& txn, TableCountDelta& delta);
// The same, with the relations found by `find` (nullptr: not described) instead of in the
// transaction (a fragment whose relations are shared, engine/api/shared_relation.h).
void CountTransaction(const v1::Transaction& txn,
                      absl::FunctionRef<const v1::Relation*(uint32_t relation_id)> find,
                      TableCountDelta& delta);

class TableCounts {
 public:
  void Add(const TableCountDelta& delta) ABSL_LOCKS_EXCLUDED(mu_);
  std::map<std::string, TableCount> Snapshot() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, TableCount> counts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry
