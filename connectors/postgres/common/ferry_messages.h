// Ferry's own logical messages on a Postgres source: their prefixes, shared by the capture that
// checks their signature (connectors/postgres/source/ddl_capture.h) and the sink that replays
// them (connectors/postgres/sink/ddl_replay.h). Payloads: proto/pg_messages.proto.
#pragma once

namespace ferry::pg {

// The schema of Ferry's own objects on each region's database; its tables are not replicated,
// except the quarantine (docs/operations.md, "Rejoin"), which both regions keep.
inline constexpr char kFerrySchema[] = "ferry";
inline constexpr char kQuarantineTable[] = "quarantine";

inline constexpr char kFerryMessagePrefix[] = "ferry.";
inline constexpr char kDdlMessagePrefix[] = "ferry.ddl";
inline constexpr char kTruncateMessagePrefix[] = "ferry.truncate";
// A table's re-snapshot (ferryctl resnapshot); payload PgResnapshotMessage.
inline constexpr char kResnapshotMessagePrefix[] = "ferry.resnapshot";
// Sequence values, periodically and at a switchover's fence; payload PgSequencesMessage.
inline constexpr char kSequencesMessagePrefix[] = "ferry.sequences";

// Gives every table without it the fence's trigger (sql/ddl_capture.sql, ferry.fence_guard), when
// Ferry's schema is installed. Apply runs it after creating a table: the capture's event trigger
// adds the trigger on the primary, but event triggers do not fire for apply.
inline constexpr char kAddFenceTriggers[] =
    "DO $ferry$BEGIN IF to_regprocedure('ferry.add_fence_triggers()') IS NOT NULL THEN "
    "PERFORM ferry.add_fence_triggers(); END IF; END$ferry$";

}  // namespace ferry::pg
