// Table replay: how a stopped table catches up (ApplyScheduler::ResumeTable, defined in
// table_replay.cc beside it).
//
// A table stops at a transaction boundary, stop.seq; apply skips its later changes but keeps
// them in the inbound log (cursor apply_retain_from). Once an operator fixed the cause,
// ResumeTable holds dispatching, waits until nothing is in flight, and ReplayStoppedTable
// applies the table's changes from stop.seq up to the committed progress in ONE target
// transaction (GroupContext::only_table) that also clears the stop; only then does apply go on,
// with the table no longer skipped. Each source transaction's part in the table is applied
// whole (its fragments are kept until the last one; a restarted transaction discards them).
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "engine/api/sink.h"
#include "engine/apply/inbound_reader.h"

namespace ferry {

// Replays `stop.table`'s changes of the records [stop.seq, until_seq] through a new session
// (number `session`) and commits them, clearing the stop. On an error nothing is committed;
// kFailedPrecondition with the table's fault as message when the table cannot take a change.
[[nodiscard]] absl::Status ReplayStoppedTable(const InboundReader& inbound, Sink& sink, int session,
                                              const TableStop& stop, uint64_t until_seq);

}  // namespace ferry
