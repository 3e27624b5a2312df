// EventBatchApplier: the object path's sink step for a batch of logged SourceEvents (in log
// order): decodes them, keeps each key once (an object overwritten ten times in the batch is
// copied at most once), and applies the keys in parallel through ObjectApplier (which makes
// each equal the source's current state; the same key never twice at once).
//
// Exactly-once effect without a transaction: applying a key is idempotent (a replay finds the
// target equal and writes nothing), so the caller may record its progress after the batch
// succeeded, and replay the batch after a crash or an error.
//
// Errors: kDataLoss for an event that cannot be decoded (names the seq's position in the
// batch), kFailedPrecondition for a format newer than this ferryd or an event of another
// bucket, else the first ObjectApplier error (the batch is to be retried as a whole).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "connectors/s3/object_applier.h"
#include "proto/change.pb.h"

namespace ferry::s3 {

struct BatchResult {
  uint64_t events = 0;        // s3.object events read
  uint64_t dead_letters = 0;  // s3.dead_letter events (kept in the log, nothing to apply)
  uint64_t keys = 0;          // distinct keys applied
  uint64_t written = 0;
  uint64_t deleted = 0;
  uint64_t already_equal = 0;
  uint64_t bytes = 0;
  uint64_t reconciles = 0;  // s3.reconcile events: every key of the target was looked at too
};

class EventBatchApplier {
 public:
  // `applier` must outlive this; `source_bucket` is the bucket events must name.
  EventBatchApplier(ObjectApplier* applier, std::string source_bucket, int parallelism = 4)
      : applier_(applier),
        source_bucket_(std::move(source_bucket)),
        parallelism_(parallelism < 1 ? 1 : parallelism) {}

  [[nodiscard]] absl::StatusOr<BatchResult> Apply(const std::vector<v1::SourceEvent>& events);

 private:
  ObjectApplier* const applier_;
  const std::string source_bucket_;
  const int parallelism_;
};

}  // namespace ferry::s3
