// RegionState: this region's role (primary or standby) and epoch, persisted in data_dir.
//
// The role in the config is only the initial one: after the first start the persisted role
// wins, because promote and reverse change it at run time. The epoch fences old primaries
// (invariant 6): every change of direction bumps it, receivers refuse lower epochs.
//
// File format (data_dir/region.state, written atomically: temp file, fsync, rename, fsync dir):
//   ferry-region-state 1
//   region=east
//   role=primary
//   epoch=3
//   checksum=<16 hex digits: XXH3-64 of the lines above, newlines included>
// A newer version number is refused; a bad checksum is reported as corruption.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/base/role.h"

namespace ferry {

// Parses "primary" or "standby".
absl::StatusOr<Role> ParseRole(std::string_view name);

class RegionState {
 public:
  // Loads data_dir/region.state, or creates it with `initial_role` and epoch 1. Fails with
  // kFailedPrecondition when the file belongs to another region (a data_dir must never be
  // shared by two regions), kDataLoss when it is corrupt.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<RegionState>> Open(
      const std::string& data_dir, const std::string& region, Role initial_role);

  Role role() const;
  uint64_t epoch() const;
  const std::string& region() const { return region_; }

  // Durably sets role and epoch. The epoch never decreases (kFailedPrecondition otherwise).
  [[nodiscard]] absl::Status Set(Role role, uint64_t epoch);
  // Durably raises the epoch to `epoch` when it is higher (a peer's newer epoch); keeps role.
  [[nodiscard]] absl::Status AdoptEpoch(uint64_t epoch);

 private:
  RegionState(std::string path, std::string region) : path_(std::move(path)), region_(region) {}
  absl::Status WriteLocked(Role role, uint64_t epoch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const std::string region_;
  mutable absl::Mutex mu_;
  Role role_ ABSL_GUARDED_BY(mu_) = Role::kStandby;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace ferry
