// The names of the cursors and state entries Ferry keeps in its durable logs, in one place: each
// is part of the on-disk format (engine/log/log_format.md), so a rename is a format change.
//
// Outbound log (what this region captured):
//   captured        cursor: the source position completely durable here (the capture target)
//   source/<key>    state: a source connector's own durable state (opaque to the engine)
//   acked           cursor: every record below it is durable in the peer's inbound log
//   peer_applied    cursor: the peer's "applied" cursor as last reported in an Ack
//   replication/log_id  state: random id of this outbound log (32 hex digits)
//   admin/paused    state: where ferryd kept the paused flag before region.state version 2
//                   (read once at start and migrated)
//   dr/last_change, dr/last_verify  state: the last switchover or promote and the last verify
//                   (serialized ferry.v1.DrEvent / VerifyOutcome; engine/daemon/dr_history.h)
// Inbound log (what the peer shipped here):
//   applied         cursor: maintained by apply; the receiver reports it to the shipper
//   apply_retain_from  cursor: records from here on are kept for stopped tables
//   stats/applied_tables  state: every table apply has applied here, one schema.name a line
//                   (status lists them from a restarted standby's start; engine/daemon)
//   replication/peer_log_id, replication/peer_log_epoch  state: the shipper whose log this copies
//                   (the identity apply binds the target's progress to: engine/api/sink.h)
#pragma once

namespace ferry {

inline constexpr char kCapturedCursor[] = "captured";
inline constexpr char kSourceStatePrefix[] = "source/";
inline constexpr char kAckedCursor[] = "acked";
inline constexpr char kPeerAppliedCursor[] = "peer_applied";
inline constexpr char kLogIdState[] = "replication/log_id";
inline constexpr char kLegacyPausedState[] = "admin/paused";
inline constexpr char kDrLastChangeState[] = "dr/last_change";
inline constexpr char kDrLastVerifyState[] = "dr/last_verify";

inline constexpr char kAppliedCursor[] = "applied";
inline constexpr char kApplyRetainCursor[] = "apply_retain_from";
inline constexpr char kAppliedTablesState[] = "stats/applied_tables";
inline constexpr char kPeerLogIdState[] = "replication/peer_log_id";
inline constexpr char kPeerLogEpochState[] = "replication/peer_log_epoch";

}  // namespace ferry
