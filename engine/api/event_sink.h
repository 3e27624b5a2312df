// The interface between the engine and a target of non-transaction events (a bucket, next to
// the database's Sink): the standby applies the SourceEvents of its inbound log through it.
// The engine owns it; a connector implements it (connectors/s3: BucketEventSink).
//
// Contract: ApplyEvents is idempotent. Applying events that were applied before (a replay
// after a crash, before the engine recorded its progress) changes nothing in the target. This
// is what lets the engine record its progress after the call, outside the target, and still
// have an exactly-once effect (invariant 3). Events come in log order; the sink may apply
// events of independent keys in parallel.
//
// Errors: kUnavailable / kAborted: retry the same events later (the target or the source of
// the bodies is away). Anything else stops the event apply with the error in status (an
// operator must look: a malformed event, a newer format).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "proto/change.pb.h"

namespace ferry {

// What applying one event writes in the target, for status and metrics (objects and bytes
// pending, as S3 replication reports them).
struct EventWeight {
  uint64_t objects = 0;  // keys made equal (0 for an event that writes nothing)
  uint64_t bytes = 0;    // body bytes to copy, as the source said at capture
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Called from one thread at a time.
  [[nodiscard]] virtual absl::Status ApplyEvents(const std::vector<v1::SourceEvent>& events) = 0;
  // The weight of one event (an event it cannot read weighs what the default says). Pure: reads
  // nothing but the event; thread-safe (called beside ApplyEvents). Default: one object, no
  // bytes.
  virtual EventWeight Weigh(const v1::SourceEvent& event) const {
    (void)event;
    return {.objects = 1, .bytes = 0};
  }
  // What the sink writes, for status (a bucket's name). Default: "".
  virtual std::string target_name() const { return ""; }
  // Called from another thread when the owner stops: a running ApplyEvents returns soon (within
  // about a second, kCancelled, nothing recorded: its events are applied again by the next
  // sink), and later calls fail. A copy stalled on an unreachable bucket must not hold a role
  // change or a shutdown. Default: nothing (ApplyEvents returns when it returns).
  virtual void Cancel() {}
};

}  // namespace ferry
