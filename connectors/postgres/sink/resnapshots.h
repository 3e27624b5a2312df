// ResnapshotRegistry: the re-snapshots every session of one PostgresSink committed, so that a
// group dispatched before one committed (its skip filter still lists the table as stopped)
// applies the table's later changes all the same. A group that touches the table waits for the
// re-snapshot's group to commit (its TRUNCATE and authenticated message are barriers,
// engine/apply/footprint.h), so it sees the entry. Thread-safe.
#pragma once

#include <cstdint>
#include <map>

#include "absl/synchronization/mutex.h"
#include "engine/api/sink.h"

namespace ferry::pg_sink {

class ResnapshotRegistry {
 public:
  // `table` was re-snapshotted by a committed group at log seq `seq`.
  void Record(const TableName& table, uint64_t seq) {
    absl::MutexLock lock(&mu_);
    uint64_t& at = latest_[table];
    if (seq > at) at = seq;
  }
  // Forgets everything (a new apply round, see PostgresSink::LoadState).
  void Clear() {
    absl::MutexLock lock(&mu_);
    latest_.clear();
  }
  // Whether a committed re-snapshot of `table` at or after `stop_seq` and at or before
  // `txn_seq` (the transaction being applied) replaced the stopped table's copy.
  bool Lifts(const TableName& table, uint64_t stop_seq, uint64_t txn_seq) const {
    absl::MutexLock lock(&mu_);
    auto it = latest_.find(table);
    return it != latest_.end() && it->second >= stop_seq && it->second <= txn_seq;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<TableName, uint64_t> latest_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::pg_sink
