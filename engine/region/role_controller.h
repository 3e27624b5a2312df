// RoleController: the only code that changes this region's state (role, epoch, phase, paused,
// operation); see region_state.h for the phases. Every change is durable before it returns, and
// each method checks that its transition is allowed from the current phase, so that a caller
// (the daemon, a switchover, a promote) cannot leave the file in a state a restart cannot read.
//
// The controller does not start or stop pipelines: the daemon does, around these calls
// ("stop one pipeline, persist the new state, start the other").
//
// Thread-safe: the methods serialise on the controller's mutex, so two transitions never
// interleave.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(auto roles, RoleController::Open(dir, "east", Role::kPrimary));
//   FERRY_RETURN_IF_ERROR(roles->RecoverAfterRestart().status());
//   FERRY_RETURN_IF_ERROR(roles->BeginSwitch("op-17"));
//   ... drain ...
//   FERRY_RETURN_IF_ERROR(roles->CompleteSwitch(/*new_epoch=*/roles->epoch() + 1));
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/base/role.h"
#include "engine/region/region_state.h"

namespace ferry {

// Operation ids of a planned switchover (ferryctl reverse) start with this.
inline constexpr char kReverseOperationPrefix[] = "reverse-";

class RoleController {
 public:
  // Opens (or creates) data_dir/region.state; errors as RegionState::Open.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<RoleController>> Open(
      const std::string& data_dir, const std::string& region, Role initial_role);

  RegionRecord Get() const { return state_->Get(); }
  Role role() const { return state_->role(); }
  uint64_t epoch() const { return state_->epoch(); }
  bool paused() const { return state_->Get().paused; }

  // Settles a transitional phase a crash left behind: switching rolls back (the flip never
  // happened: same role, same epoch, replicating), except a primary's switchover (operation
  // kReverseOperationPrefix...), which stays: its peer may have flipped already, and the daemon
  // asks it before rolling back or completing; promoting completes (the epoch was raised
  // first: primary, replicating); rejoining stays (the rejoin resumes when asked again). Returns
  // the record afterwards. Call once at start, before any pipeline runs.
  [[nodiscard]] absl::StatusOr<RegionRecord> RecoverAfterRestart();

  // Durably sets the paused flag (any phase).
  [[nodiscard]] absl::Status SetPaused(bool paused);

  // A peer announced `epoch`. Higher than ours: adopted; a primary in replicating or switching
  // is fenced at once (it must never ship again under its old epoch). Returns whether this
  // region was fenced by the call.
  [[nodiscard]] absl::StatusOr<bool> AdoptEpoch(uint64_t epoch);

  // A planned change of direction, in three durable steps. BeginSwitch: replicating ->
  // switching (the role and epoch unchanged). CompleteSwitch: the flip, switching ->
  // replicating in the other role under `new_epoch` (> the current epoch). RollBackSwitch:
  // switching -> replicating in the same role. kFailedPrecondition from any other phase, or
  // when `operation` does not match the running one.
  [[nodiscard]] absl::Status BeginSwitch(const std::string& operation);
  [[nodiscard]] absl::Status CompleteSwitch(const std::string& operation, uint64_t new_epoch);
  [[nodiscard]] absl::Status RollBackSwitch(const std::string& operation);

  // An unplanned failover on a standby, in two durable steps. BeginPromote: replicating
  // standby -> promoting under `new_epoch` (> the current epoch: raised first, so a restart
  // completes the promote). CompletePromote: promoting -> replicating primary.
  [[nodiscard]] absl::Status BeginPromote(const std::string& operation, uint64_t new_epoch);
  [[nodiscard]] absl::Status CompletePromote(const std::string& operation);

  // A failback of a former primary fenced by a promote elsewhere (ferryctl rejoin), in three
  // durable steps. BeginRejoin: fenced primary -> rejoining primary (its database stays fenced,
  // no pipeline runs; again with the same operation: no change). RejoinAsStandby: rejoining
  // primary -> rejoining standby under `epoch` (the new primary's, never lower; again: no
  // change). CompleteRejoin: rejoining standby -> replicating standby.
  [[nodiscard]] absl::Status BeginRejoin(const std::string& operation);
  [[nodiscard]] absl::Status RejoinAsStandby(const std::string& operation, uint64_t epoch);
  [[nodiscard]] absl::Status CompleteRejoin(const std::string& operation);

 private:
  explicit RoleController(std::unique_ptr<RegionState> state) : state_(std::move(state)) {}

  absl::Mutex mu_;  // serialises read-modify-write transitions
  const std::unique_ptr<RegionState> state_;
};

}  // namespace ferry
