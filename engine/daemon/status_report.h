// StatusReport: assembles the admin StatusReply (what `ferryctl status`, /metrics and the
// health endpoints show) from plain snapshots of the region's parts. A pure function of its
// input: the daemon takes the snapshots (under its locks), this turns them into the reply, and
// the unit tests feed it snapshots and a time of their choosing.
//
// Example:
//   StatusSnapshot s = ...;  // region state, logs, the running pipeline's statuses, now
//   v1::StatusReply reply = AssembleStatus(s);
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "engine/api/source.h"
#include "engine/apply/apply_scheduler.h"
#include "engine/log/durable_log.h"
#include "engine/region/region_state.h"
#include "engine/replication/receiver.h"
#include "engine/replication/shipper.h"
#include "engine/stats/table_counts.h"
#include "proto/admin.pb.h"

namespace ferry {

// While primary.
struct PrimarySnapshot {
  uint64_t captured_position = 0;
  std::string captured_position_text;  // as the source formats it
  SourceHealth source;
  replication::ShipperStatus shipper;
  std::string capture_error;    // the error the source stopped with; "" while capturing
  UncapturedReport uncaptured;  // Source::Uncaptured(captured_position)
};

// While standby.
struct StandbySnapshot {
  replication::ReceiverStatus receiver;
  ApplyStatus apply;
};

struct StatusSnapshot {
  std::string region;
  std::string version;
  RegionRecord state;
  absl::Time started;
  absl::Time now;
  LogStats outbound;
  LogStats inbound;
  std::string peer_region;   // configured
  std::string peer_address;  // configured (where a primary ships)
  std::optional<PrimarySnapshot> primary;
  std::optional<StandbySnapshot> standby;
  std::string pipeline_error;  // the role's pipeline could not start
  std::string fence;           // "raised", "lifted" or "" (StatusReply.fence)
  std::string fence_error;
  v1::Divergence divergence;  // a fenced old primary's (StatusReply.divergence)
  // The source commit (or heartbeat) time in microseconds of the record at `seq` of the
  // outbound (true) or inbound (false) log; 0 when unknown. Used for lag and RPO seconds.
  std::function<int64_t(bool outbound, uint64_t seq)> record_time_us;
  // Payload bytes of the records from `seq` to the end of the outbound (true) or inbound
  // (false) log (DurableLog::PayloadBytesFrom); 0 when unknown. Used for lag bytes.
  std::function<uint64_t(bool outbound, uint64_t seq)> bytes_from;
  // Per table, what this region captured (primary) or applied (standby) since ferryd started.
  std::map<std::string, TableCount> table_counts;
};

v1::StatusReply AssembleStatus(const StatusSnapshot& s);

// Fills r.tables (table_report.cc): every table the snapshot knows, by name, with its state,
// counts and lag. Called by AssembleStatus once the region's lag is in `r`.
void AssembleTables(const StatusSnapshot& s, v1::StatusReply& r);

// Seconds since the source committed the record at `seq` of the outbound (true) or inbound log,
// as of s.now; 0 when unknown.
double RecordAgeSeconds(const StatusSnapshot& s, bool outbound, uint64_t seq);

// What the primary last reported holding beyond `inbound_next_seq` (its ShipperProgress, as the
// receiver kept it), as of `now`: a promote's loss bound.
v1::LossBound LossBoundOf(const replication::ReceiverStatus& received, uint64_t inbound_next_seq,
                          absl::Time now);

}  // namespace ferry
