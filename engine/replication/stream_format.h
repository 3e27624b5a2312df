// Constants of the replication stream (proto/replication.md) and the cursor and state names the
// shipper and receiver keep in their durable logs. The prose spec and this header change together.
#pragma once

#include <cstdint>

namespace ferry::replication {

// Hello.protocol_version. A receiver refuses a shipper with a different version.
inline constexpr uint32_t kProtocolVersion = 1;

// Outbound log (primary).
// Every record below "acked" is durable in the peer's inbound log (an exclusive bound).
inline constexpr char kAckedCursor[] = "acked";
// The peer's "applied" cursor as last reported in an Ack.
inline constexpr char kPeerAppliedCursor[] = "peer_applied";
// Random id of the outbound log (32 hex digits), created by the first Shipper::Start.
inline constexpr char kLogIdState[] = "replication/log_id";

// Inbound log (standby).
// Maintained by apply; the receiver reports it in Welcome and Ack.
inline constexpr char kAppliedCursor[] = "applied";
// The log_id and epoch of the shipper whose log this inbound log copies.
inline constexpr char kPeerLogIdState[] = "replication/peer_log_id";
inline constexpr char kPeerLogEpochState[] = "replication/peer_log_epoch";

}  // namespace ferry::replication
