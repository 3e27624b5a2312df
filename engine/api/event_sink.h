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

#include <vector>

#include "absl/status/status.h"
#include "proto/change.pb.h"

namespace ferry {

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Called from one thread at a time.
  [[nodiscard]] virtual absl::Status ApplyEvents(const std::vector<v1::SourceEvent>& events) = 0;
};

}  // namespace ferry
