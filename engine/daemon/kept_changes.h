// The row changes of a log's transaction records as quarantine entries (engine/api/quarantine.h;
// docs/operations.md, "Rejoin" and "Promote"): what a rejoin keeps of the former primary's
// outbound log beyond the divergence point, and what a promote keeps of the changes received for
// tables stopped on the standby.
//
// Each insert, update and delete becomes one QuarantinedChange (its key as a JSON object of the
// key's columns, the new row where the stream carries one; unchanged TOAST values left out);
// a truncate, one per truncated table. Messages (schema changes, sequence values) are counted as
// skipped. Changes are numbered by their place among the record's row changes, whichever tables
// are wanted, so that two collections of one record name a change alike.
//
// A source event record (a bucket's object event) becomes an entry through `event` (the
// connector's: DaemonFactories::kept_event), index 0, its epoch the event's; without `event`, or
// when it returns nullopt, the record is counted in other_records.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "absl/status/statusor.h"
#include "engine/log/durable_log.h"
#include "proto/change.pb.h"
#include "proto/replication.pb.h"

namespace ferry {

struct KeptCount {
  uint64_t changes = 0;        // handed to `keep`
  uint64_t transactions = 0;   // their source transactions
  uint64_t skipped = 0;        // messages, not rows
  uint64_t other_records = 0;  // records that are not transactions and were not kept
  // Records of an initial copy's or a re-seed's rows: not changes, not kept (a rejoin's
  // comparison keeps the rows the peer lacks as anomalies).
  uint64_t snapshot_records = 0;
  uint64_t objects = 0;  // source events kept (a bucket's object events), in `changes` too
  // Changes of a transaction copy without its last fragment (captured again after a restart
  // of the capture, or cut off at the log's end): not kept.
  uint64_t partial = 0;
};

// Reads `log`'s transaction records from `from` to its end. The changes `wanted` accepts, by
// table and record seq (null: every one), go to `keep` in batches (at most 500 changes or about 1
// MiB), the batch cleared after each call. kDataLoss for a transaction or source event record
// that does not parse, and `event`'s errors.
using KeptEventFn =
    std::function<absl::StatusOr<std::optional<v1::QuarantinedChange>>(const v1::SourceEvent&)>;
[[nodiscard]] absl::StatusOr<KeptCount> CollectKeptChanges(
    const DurableLog& log, uint64_t from,
    const std::function<bool(const v1::Relation&, uint64_t seq)>& wanted,
    const std::function<absl::Status(v1::QuarantineBatch&)>& keep, const KeptEventFn& event = {});

}  // namespace ferry
