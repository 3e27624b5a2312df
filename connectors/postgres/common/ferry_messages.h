// Ferry's own logical messages on a Postgres source: their prefixes, shared by the capture that
// checks their signature (connectors/postgres/source/ddl_capture.h) and the sink that replays
// them (connectors/postgres/sink/ddl_replay.h). Payloads: proto/pg_messages.proto.
#pragma once

namespace ferry::pg {

// The schema of Ferry's own objects on each region's database; its tables are not replicated.
inline constexpr char kFerrySchema[] = "ferry";

inline constexpr char kFerryMessagePrefix[] = "ferry.";
inline constexpr char kDdlMessagePrefix[] = "ferry.ddl";
inline constexpr char kTruncateMessagePrefix[] = "ferry.truncate";
// A table's re-snapshot (ferryctl resnapshot); payload PgResnapshotMessage.
inline constexpr char kResnapshotMessagePrefix[] = "ferry.resnapshot";

}  // namespace ferry::pg
