// Replication origins: where the sink keeps its progress in the target, atomically with the
// data. Session k of a sink holds origin ferry_<source_region>_<epoch>_w<k>
// (pg_replication_origin_session_setup: one session may hold an origin at a time, hence one per
// worker), and every group commits with pg_replication_origin_xact_setup(<its last log seq as
// an LSN>, <source commit time>). Progress is the maximum over every ferry_<source_region>_*
// origin: groups commit in log order, so the maximum is a consistent prefix, and the seq space
// (the region's inbound log) continues across epochs. Origins of another epoch are folded into
// this epoch's w0 and dropped; the drop fails while an applier of the old epoch still holds one
// (kUnavailable), which fences a zombie applier out.
//
// Errors: the failed statement's status (common/sqlstate.h); kUnavailable for a busy origin.
//
// Example:
//   FERRY_RETURN_IF_ERROR(CreateOrigin(*pipe, OriginName("east", 3, 0)));
//   FERRY_RETURN_IF_ERROR(HoldOrigin(*pipe, OriginName("east", 3, 0)));
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "connectors/postgres/sink/pipeline.h"

namespace ferry::pg_sink {

// ferry_<source_region>_<epoch>_w<worker>.
std::string OriginName(const std::string& source_region, uint64_t epoch, int worker);

// Creates origin `name` when it does not exist.
[[nodiscard]] absl::Status CreateOrigin(Pipeline& pipe, const std::string& name);

// Makes `name` the origin of this connection's transactions. kUnavailable when another session
// holds it (most often our own previous incarnation whose backend has not noticed yet that we
// died: retry later).
[[nodiscard]] absl::Status HoldOrigin(Pipeline& pipe, const std::string& name);

// Queues pg_replication_origin_xact_setup(progress_seq as an LSN, commit_time_us as the source
// commit time) into the open transaction; its result goes to `callback`. The connection must
// hold an origin (HoldOrigin).
[[nodiscard]] absl::Status QueueProgress(Pipeline& pipe, uint64_t progress_seq,
                                         int64_t commit_time_us, ResultCallback callback);

// The committed progress of `source_region` (0: nothing applied yet), after folding the
// origins of epochs other than `epoch` into this epoch's w0 and dropping them. kUnavailable
// when one of them is still held by a session.
[[nodiscard]] absl::StatusOr<uint64_t> LoadProgress(Pipeline& pipe,
                                                    const std::string& source_region,
                                                    uint64_t epoch);

// The progress of `source_region` whose commit is flushed to the target's WAL (the maximum of
// pg_replication_origin_progress(..., flush => true) over its origins).
[[nodiscard]] absl::StatusOr<uint64_t> DurableProgress(Pipeline& pipe,
                                                       const std::string& source_region);

}  // namespace ferry::pg_sink
