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
// Log identity. Seqs mean something only with the id of the log they count (the shipping
// region's outbound log, engine/api/sink.h UpstreamLog). Origins are cluster-wide: they survive
// dropdb/createdb of the target, and a re-created peer starts a new log at seq 1, so progress
// alone would claim seqs of a log it never saw. The id is therefore kept where the progress is,
// in the cluster-wide origin catalog too: a marker origin ferry_<source_region>_log_<log_id>,
// never held by a session and never advanced. The invariant: whenever a worker origin of the
// region holds progress > 0, exactly one marker of the region exists and names the log that
// progress counts. It holds under a crash at any instant because of the order of writes, each
// one statement that commits or not:
//   - a marker is created or replaced only while no worker origin holds progress (LoadProgress
//     with progress 0, DiscardProgress after dropping every worker origin), and always before the
//     first group of the new log commits;
//   - while progress > 0 the marker is never touched (only read), except by DiscardProgress,
//     which drops the worker origins first and the markers last: a crash between leaves either
//     progress with its marker (still a mismatch: run it again) or a marker without progress
//     (nothing is counted; the next LoadProgress rebinds it).
// Progress written by a ferryd before markers existed (no marker) is adopted for the upstream
// log only when the inbound log holds the record right after it (UpstreamLog); otherwise it is
// reported as not recorded (""), a mismatch.
//
// Errors: the failed statement's status (common/sqlstate.h); kUnavailable for a busy origin.
//
// Example:
//   FERRY_RETURN_IF_ERROR(CreateOrigin(*pipe, OriginName("east", 3, 0)));
//   FERRY_RETURN_IF_ERROR(HoldOrigin(*pipe, OriginName("east", 3, 0)));
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "connectors/postgres/sink/pipeline.h"
#include "engine/api/sink.h"

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

// ferry_<source_region>_log_<log_id>: the marker naming the log the region's progress counts.
std::string LogMarkerName(const std::string& source_region, const std::string& log_id);

// What the target's progress is and which log it counts.
struct LoadedProgress {
  uint64_t applied_seq = 0;  // 0: nothing applied yet
  std::string log_id;        // the log applied_seq counts (see SinkState::log_id)
};

// The committed progress of `source_region` for applying `upstream`. When it counts
// upstream.log_id (or there is none, and then the marker is set to upstream.log_id first), the
// origins of epochs other than `epoch` are folded into this epoch's w0 and dropped;
// kUnavailable when one of them is still held by a session. When it counts another log, nothing
// is changed and the result names that log.
[[nodiscard]] absl::StatusOr<LoadedProgress> LoadProgress(Pipeline& pipe,
                                                          const std::string& source_region,
                                                          uint64_t epoch,
                                                          const UpstreamLog& upstream);

// The progress of `source_region`, flushed to the target's WAL first, and the log recorded for
// it ("" unless exactly one marker exists). Changes nothing.
[[nodiscard]] absl::StatusOr<TargetProgress> ReadCommittedProgress(
    Pipeline& pipe, const std::string& source_region);

// Sink::DiscardProgress (engine/api/sink.h) for `source_region`: drops every worker origin of
// the region (any epoch), then every marker but `keep_log_id`'s. Kill point
// "reseed.origin_dropped" after each worker origin dropped.
[[nodiscard]] absl::StatusOr<uint64_t> DiscardProgress(Pipeline& pipe,
                                                       const std::string& source_region,
                                                       const std::string& discard_log_id,
                                                       const std::string& keep_log_id);

// The progress of `source_region` whose commit is flushed to the target's WAL (the maximum of
// pg_replication_origin_progress(..., flush => true) over its apply origins, which flushes the
// WAL through each origin's last commit first), and the run token ferry.target_run holds for
// the region, read in the same statement (nullopt when there is no row: target_incarnation.h).
struct DurableProgressAndToken {
  uint64_t seq = 0;
  std::optional<std::string> run_token;
};
[[nodiscard]] absl::StatusOr<DurableProgressAndToken> DurableProgress(
    Pipeline& pipe, const std::string& source_region);

}  // namespace ferry::pg_sink
