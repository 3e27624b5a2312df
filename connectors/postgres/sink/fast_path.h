// The fast path's plan: a group whose every change fits one ChangeBatch (change_batch.h),
// encoded ahead into set-based statements by PostgresSink::Plan on the scheduler's reader
// thread, so that the encoding overlaps with the target's work on earlier groups. A session
// uses the plan when every table in it is verified and batchable on its connection
// (PostgresSession::PlanUsable, fast_path.cc); otherwise Apply does the work itself.
//
// fast_path.cc also holds the session's side of the fast path: changes folded into the batch,
// statements queued in the pipeline with their row counts checked when the results come back
// (client side) or by the statement itself (RowCountCheckedSql), and the one round trip of
// PrepareAndCommit. Any mismatch or error there is kAborted: the scheduler re-applies the range
// on the careful path (careful_path.cc).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "connectors/postgres/sink/change_batch.h"
#include "engine/api/sink.h"
#include "proto/change.pb.h"

namespace ferry::pg_sink {

// Batched statements hold at most this many rows or value bytes.
inline constexpr size_t kBatchRows = 10000;
inline constexpr size_t kBatchBytes = 16 << 20;

// A group whose every change went into one ChangeBatch: its statements, array literals
// encoded, and the relations they need verified. Points into the group's transactions.
struct PlannedGroup final : GroupPlan {
  std::vector<ChangeBatch::Statement> statements;
  std::vector<const v1::Relation*> relations;  // one per table
};

// The plan of `txns`, or nullptr when some change needs the long way (Apply): a fragmented
// transaction, a change naming no relation, a row image the session would refuse (values over
// `max_value_bytes` included), or a change ChangeBatch cannot take. Touches no connection.
std::shared_ptr<const GroupPlan> PlanGroup(const GroupTransactions& txns, size_t max_value_bytes);

}  // namespace ferry::pg_sink
