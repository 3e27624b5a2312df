// ApplyGroup: apply's unit of work, consecutive inbound log records applied as one target
// transaction. The reader thread builds it (GroupBuilder) and dispatches it (CommitOrder); from
// then on only the worker holding it touches it, until it is retired.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "engine/api/sink.h"
#include "engine/apply/relation_catalog.h"
#include "engine/stats/table_counts.h"

namespace ferry {

struct ApplyGroup {
  ApplyGroup() = default;
  ApplyGroup(const ApplyGroup&) = delete;
  ApplyGroup& operator=(const ApplyGroup&) = delete;
  ~ApplyGroup() {
    for (size_t i = 0; i < lent.size() && i < txns.size(); ++i) lent[i].Return(&txns[i].second);
  }

  uint64_t id = 0;          // 1, 2, 3... in log order, across rounds
  uint64_t generation = 0;  // the round it was dispatched in (CommitOrder)
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;  // the progress its commit records
  uint64_t wait_for = 0;  // may start once this group committed
  bool stream = false;    // a multi-fragment transaction the worker reads from the log
  bool alone = false;     // holds one transaction that must be applied alone (a schema change)
  GroupTransactions txns;
  // lent[i]: the relations of txns[i] lent by the reader's RelationCatalog (GroupBuilder adds
  // both; a group made otherwise may leave lent empty). The transactions are read, never
  // modified.
  std::vector<LentRelations> lent;
  size_t bytes = 0;  // payload bytes of txns (compressed snapshot rows counted inflated)
  int64_t commit_time_us = 0;
  absl::Time opened;  // when its first record was read (on the clock)
  GroupContext context;
  // A streamed group's per-table counts, filled as the worker reads its fragments.
  TableCountDelta streamed_counts;

  // Source transactions in the group.
  size_t transactions() const { return stream ? 1 : txns.size(); }
};

using ApplyGroupPtr = std::shared_ptr<ApplyGroup>;

}  // namespace ferry
