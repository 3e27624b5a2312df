// The region's database fence (invariant 8 of DESIGN.md): while it is raised the database
// refuses application writes, naming Ferry's fence and the region to write to; Ferry's own apply
// still writes. The engine owns the interface, a connector implements it (Postgres:
// connectors/postgres/source/postgres_fence.h).
//
// The daemon raises it whenever the region is not the writable primary (a standby, a primary
// that is switching over or was fenced by a higher epoch) and lifts it only once the region is
// the primary under its epoch and its capture is in place.
//
// Example (a switchover's first steps on the primary):
//   FERRY_RETURN_IF_ERROR(fence->Raise({.message = ..., .hint = ...}, /*end_sessions=*/true));
//   FERRY_ASSIGN_OR_RETURN(uint64_t marker, fence->Mark("reverse-3-1"));
//   ... wait until the capture is past `marker` ...
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ferry {

struct FenceNotice {
  std::string message;  // the error an application's write gets
  std::string hint;     // what to do instead (the region to write to)
};

// Thread-compatible: the daemon calls it from one thread at a time.
class DatabaseFence {
 public:
  virtual ~DatabaseFence() = default;
  // Raises the fence (a raised fence takes the new notice). With `end_sessions`, also ends the
  // sessions whose transaction began before the fence (they may have passed its check already)
  // and waits for them to exit: kUnavailable when one did not. Idempotent.
  [[nodiscard]] virtual absl::Status Raise(const FenceNotice& notice, bool end_sessions) = 0;
  // Lifts the fence. Idempotent.
  [[nodiscard]] virtual absl::Status Lift() = 0;
  // Commits a marker into the source's history, after everything committed before this call,
  // carrying what a new primary needs (Postgres: every sequence's value). Returns the marker's
  // source position: the capture holds everything committed before the fence once its
  // CapturedPosition() is past it.
  [[nodiscard]] virtual absl::StatusOr<uint64_t> Mark(const std::string& operation) = 0;
  // A promote's last step before this database takes writes as the new primary: moves every
  // sequence `gap` increments past its value, beyond what the lost primary may have handed out
  // after its last report. Default: nothing to move.
  [[nodiscard]] virtual absl::Status AdvanceSequences(int64_t gap) {
    (void)gap;
    return absl::OkStatus();
  }
};

}  // namespace ferry
