// GroupBuilder: cuts decoded inbound records into groups (one target transaction each) and works
// out what each group must wait for.
//
// A group collects consecutive records until it holds max_transactions source transactions or
// max_bytes payload bytes, or the range it is in changes between fast and careful (a range that
// failed with kAborted is applied again serially, change by change). Each transaction's
// Footprint (the keys it touches, footprint.h) goes to the DependencyTracker, which says which
// earlier uncommitted group the group must wait for; a relation the builder has not seen in this
// round, or whose shape changed, makes the transaction a barrier (the session may run DDL). A
// large transaction (more than one fragment) is a group of its own, streamed from the log by the
// worker: a barrier that waits for every group before it.
//
// When a group goes out (Close) the sink plans it (Sink::Plan), so that encoding its statements
// overlaps with the target executing earlier groups. When to close a group that is not full is
// the reader thread's decision (it knows the commit order); MayGrow() says whether it still may.
//
// Thread safety: not thread-safe; owned by the scheduler's reader thread.
//
// Example (the reader thread, simplified):
//   Footprint fp = builder.FootprintOf(record.txn);
//   if (builder.MustClose(record.seq)) Dispatch(builder.Close());
//   builder.Add(std::move(record), fp, order.committed());
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "engine/api/sink.h"
#include "engine/apply/apply_group.h"
#include "engine/apply/dependency_tracker.h"
#include "engine/apply/inbound_reader.h"
#include "engine/base/clock.h"

namespace ferry {

struct GroupLimits {
  size_t max_transactions = 1000;
  size_t max_bytes = 8 << 20;
  // A group that is not full may keep collecting for at most this long after its first record.
  absl::Duration max_delay = absl::Milliseconds(20);
  Clock* clock = Clock::Real();  // not owned
};

class GroupBuilder {
 public:
  // `sink` (unique keys, plans) must outlive the builder.
  GroupBuilder(const GroupLimits& limits, Sink* sink);
  GroupBuilder(const GroupBuilder&) = delete;
  GroupBuilder& operator=(const GroupBuilder&) = delete;

  // A new round: drops the open group and forgets dependencies, relation shapes and unique
  // keys. Group ids go on growing; careful ranges stay.
  void Reset();
  // The id the next group gets.
  uint64_t next_group_id() const { return next_group_id_; }
  // Groups starting at or below `seq` run serially and change by change from now on.
  void CarefulThrough(uint64_t seq);

  // The group being collected; null when none.
  const ApplyGroup* open() const { return open_.get(); }
  // The open group may keep collecting: not careful, not full, and not older than max_delay.
  bool MayGrow() const;

  // Adds a heartbeat (nothing to apply; the group's progress passes it).
  void AddHeartbeat(uint64_t seq);
  // The footprint of a complete transaction, made a barrier when it introduces or changes a
  // relation's shape (remembered for the rest of the round).
  Footprint FootprintOf(const v1::Transaction& txn);
  // The open group cannot take the transaction at `seq` (with footprint `next`): Close() it
  // first.
  bool MustClose(uint64_t seq) const;
  bool MustClose(uint64_t seq, const Footprint& next) const;
  // Adds a complete transaction with its footprint, opening a group when none is open.
  // `committed`: the highest committed group id.
  void Add(InboundRecord record, const Footprint& footprint, uint64_t committed);
  // Closes the open group and returns it, planned; null when none is open.
  ApplyGroupPtr Close();
  // The group of a large transaction whose first fragment is at `seq`. No group may be open.
  ApplyGroupPtr Stream(uint64_t seq, uint64_t committed);
  // Relation shapes may have changed behind the builder's back (by a streamed transaction).
  void ForgetShapes() { known_shapes_.clear(); }
  // Bounds the tracker's memory: forgets groups <= committed once it holds many.
  void ForgetCommitted(uint64_t committed);

 private:
  void Open(uint64_t first_seq);
  const UniqueKeys& UniqueKeysFor(const v1::Relation& relation);

  // Constant after construction.
  const GroupLimits limits_;
  Sink* const sink_;

  uint64_t next_group_id_ = 1;
  uint64_t careful_until_ = 0;  // groups starting at or below this seq run serial + careful
  ApplyGroupPtr open_;
  DependencyTracker tracker_;
  absl::flat_hash_map<uint32_t, uint64_t> known_shapes_;  // relation id -> schema hash
  absl::flat_hash_map<std::string, UniqueKeys> unique_keys_;
};

}  // namespace ferry
