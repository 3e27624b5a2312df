// RegionState: this region's persisted state machine: role (primary or standby), epoch, the
// phase it is in, whether an operator paused it, and the operation that is changing it.
//
// The role in the config is only the initial one: after the first start the persisted role
// wins, because promote and reverse change it at run time. The epoch fences old primaries
// (invariant 6): every change of direction bumps it, receivers refuse lower epochs. Only the
// RoleController (role_controller.h) changes a RegionState; everything else reads it.
//
// Phases and transitions (docs/region-states.md has the diagram and what a restart does):
//   replicating  steady state of either role.
//   switching    a planned change of direction began (operation set); the role and epoch are
//                still the old ones. A restart rolls back to replicating in the old role.
//   promoting    a standby raised the epoch and is becoming primary (operation set). A restart
//                completes it: primary, replicating.
//   fenced       a primary that learned of a higher epoch: never ships again under its epoch.
//   rejoining    a fenced region being repaired into a standby (operation set). A restart
//                resumes it.
//
// File format (data_dir/region.state, written atomically: temp file, fsync, rename, fsync dir):
//   ferry-region-state 2
//   region=east
//   role=primary
//   epoch=3
//   state=replicating
//   paused=0
//   operation=                      (empty, or the id of the operation in progress)
//   checksum=<16 hex digits: XXH3-64 of the lines above, newlines included>
// Version 1 files (region, role, epoch only) are read as replicating, not paused, no operation.
// A newer version number is refused; a bad checksum or an unknown value is corruption.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/base/role.h"

namespace ferry {

enum class RegionPhase { kReplicating, kSwitching, kPromoting, kFenced, kRejoining };

// "replicating", "switching", "promoting", "fenced", "rejoining" (status' `state`).
std::string_view RegionPhaseName(RegionPhase phase);
absl::StatusOr<RegionPhase> ParseRegionPhase(std::string_view name);
// Whether the phase is a step of an operation (it then carries the operation's id).
bool IsTransitional(RegionPhase phase);

// One persisted value of the state machine.
struct RegionRecord {
  Role role = Role::kStandby;
  uint64_t epoch = 1;
  RegionPhase phase = RegionPhase::kReplicating;
  bool paused = false;
  std::string operation;  // set exactly while the phase is transitional

  bool operator==(const RegionRecord&) const = default;
};

class RegionState {
 public:
  // Loads data_dir/region.state, or creates it with `initial_role` and epoch 1. Fails with
  // kFailedPrecondition when the file belongs to another region (a data_dir must never be
  // shared by two regions), kDataLoss when it is corrupt.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<RegionState>> Open(
      const std::string& data_dir, const std::string& region, Role initial_role);

  RegionRecord Get() const;
  Role role() const { return Get().role; }
  uint64_t epoch() const { return Get().epoch; }
  const std::string& region() const { return region_; }

  // Durably replaces the record. Refused (kFailedPrecondition, nothing written) when the epoch
  // would go back, or when `operation` is not set exactly for a transitional phase. kUnavailable
  // when the file cannot be written; the state in memory is then unchanged.
  [[nodiscard]] absl::Status Write(const RegionRecord& record);

 private:
  RegionState(std::string path, std::string region) : path_(std::move(path)), region_(region) {}
  absl::Status WriteLocked(const RegionRecord& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const std::string region_;
  mutable absl::Mutex mu_;
  RegionRecord record_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry
