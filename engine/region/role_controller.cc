#include "engine/region/role_controller.h"

#include <spdlog/spdlog.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/base/kill_point.h"
#include "engine/base/status_macros.h"

namespace ferry {
namespace {

absl::Status NotFrom(const RegionRecord& r, const char* what) {
  return absl::FailedPreconditionError(absl::StrCat(what, " is not possible while the region is ",
                                                    std::string(RegionPhaseName(r.phase))));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RoleController>> RoleController::Open(const std::string& data_dir,
                                                                     const std::string& region,
                                                                     Role initial_role) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<RegionState> state,
                         RegionState::Open(data_dir, region, initial_role));
  return std::unique_ptr<RoleController>(new RoleController(std::move(state)));
}

absl::StatusOr<RegionRecord> RoleController::RecoverAfterRestart() {
  absl::MutexLock lock(&mu_);
  RegionRecord r = state_->Get();
  switch (r.phase) {
    case RegionPhase::kSwitching:
      if (r.role == Role::kPrimary && absl::StartsWith(r.operation, kReverseOperationPrefix)) {
        // The peer may have flipped already: only it can say (Daemon::ResolveSwitchover).
        spdlog::warn(
            "region {}: switchover {} was interrupted; staying fenced until the peer says "
            "whether it flipped",
            state_->region(), r.operation);
        break;
      }
      spdlog::warn("region {}: switchover {} was interrupted before the flip; rolling back",
                   state_->region(), r.operation);
      r.phase = RegionPhase::kReplicating;
      r.operation.clear();
      FERRY_RETURN_IF_ERROR(state_->Write(r));
      break;
    case RegionPhase::kPromoting:
      spdlog::warn("region {}: promote {} was interrupted after the epoch was raised; completing",
                   state_->region(), r.operation);
      r.role = Role::kPrimary;
      r.phase = RegionPhase::kReplicating;
      r.operation.clear();
      FERRY_RETURN_IF_ERROR(state_->Write(r));
      break;
    case RegionPhase::kReplicating:
    case RegionPhase::kFenced:
    case RegionPhase::kRejoining:
      break;
  }
  return r;
}

absl::Status RoleController::SetPaused(bool paused) {
  absl::MutexLock lock(&mu_);
  RegionRecord r = state_->Get();
  if (r.paused == paused) return absl::OkStatus();
  r.paused = paused;
  return state_->Write(r);
}

absl::StatusOr<bool> RoleController::AdoptEpoch(uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  RegionRecord r = state_->Get();
  if (epoch <= r.epoch) return false;
  r.epoch = epoch;
  const bool fence = r.role == Role::kPrimary &&
                     (r.phase == RegionPhase::kReplicating || r.phase == RegionPhase::kSwitching);
  if (fence) {
    r.phase = RegionPhase::kFenced;
    r.operation.clear();
  }
  FERRY_RETURN_IF_ERROR(state_->Write(r));
  if (fence) {
    spdlog::error("region {}: a peer runs epoch {}; this primary is fenced and ships no more",
                  state_->region(), epoch);
  }
  return fence;
}

absl::Status RoleController::BeginSwitch(const std::string& operation) {
  absl::MutexLock lock(&mu_);
  RegionRecord r = state_->Get();
  if (r.phase != RegionPhase::kReplicating) return NotFrom(r, "a switchover");
  if (operation.empty()) return absl::InvalidArgumentError("a switchover needs an operation id");
  r.phase = RegionPhase::kSwitching;
  r.operation = operation;
  FERRY_RETURN_IF_ERROR(state_->Write(r));
  KillPoint("role.switching");
  return absl::OkStatus();
}

absl::Status RoleController::CompleteSwitch(const std::string& operation, uint64_t new_epoch) {
  absl::MutexLock lock(&mu_);
  RegionRecord r = state_->Get();
  if (r.phase != RegionPhase::kSwitching || r.operation != operation) {
    return NotFrom(r, absl::StrCat("completing switchover ", operation).c_str());
  }
  if (new_epoch <= r.epoch) {
    return absl::FailedPreconditionError(
        absl::StrCat("a switchover must raise the epoch past ", r.epoch, ", got ", new_epoch));
  }
  r.role = r.role == Role::kPrimary ? Role::kStandby : Role::kPrimary;
  r.epoch = new_epoch;
  r.phase = RegionPhase::kReplicating;
  r.operation.clear();
  FERRY_RETURN_IF_ERROR(state_->Write(r));
  KillPoint("role.flipped");
  return absl::OkStatus();
}

absl::Status RoleController::BeginPromote(const std::string& operation, uint64_t new_epoch) {
  absl::MutexLock lock(&mu_);
  RegionRecord r = state_->Get();
  if (r.role != Role::kStandby || r.phase != RegionPhase::kReplicating) {
    return NotFrom(r, "a promote");
  }
  if (operation.empty()) return absl::InvalidArgumentError("a promote needs an operation id");
  if (new_epoch <= r.epoch) {
    return absl::FailedPreconditionError(
        absl::StrCat("a promote must raise the epoch past ", r.epoch, ", got ", new_epoch));
  }
  r.epoch = new_epoch;
  r.phase = RegionPhase::kPromoting;
  r.operation = operation;
  FERRY_RETURN_IF_ERROR(state_->Write(r));
  KillPoint("role.promoting");
  return absl::OkStatus();
}

absl::Status RoleController::CompletePromote(const std::string& operation) {
  absl::MutexLock lock(&mu_);
  RegionRecord r = state_->Get();
  if (r.phase != RegionPhase::kPromoting || r.operation != operation) {
    return NotFrom(r, absl::StrCat("completing promote ", operation).c_str());
  }
  r.role = Role::kPrimary;
  r.phase = RegionPhase::kReplicating;
  r.operation.clear();
  return state_->Write(r);
}

absl::Status RoleController::RollBackSwitch(const std::string& operation) {
  absl::MutexLock lock(&mu_);
  RegionRecord r = state_->Get();
  if (r.phase != RegionPhase::kSwitching || r.operation != operation) {
    return NotFrom(r, absl::StrCat("rolling back switchover ", operation).c_str());
  }
  r.phase = RegionPhase::kReplicating;
  r.operation.clear();
  return state_->Write(r);
}

absl::Status RoleController::BeginRejoin(const std::string& operation) {
  absl::MutexLock lock(&mu_);
  RegionRecord r = state_->Get();
  if (r.role == Role::kPrimary && r.phase == RegionPhase::kRejoining && r.operation == operation) {
    return absl::OkStatus();  // a rejoin that runs again
  }
  if (r.role != Role::kPrimary || r.phase != RegionPhase::kFenced) return NotFrom(r, "a rejoin");
  if (operation.empty()) return absl::InvalidArgumentError("a rejoin needs an operation id");
  r.phase = RegionPhase::kRejoining;
  r.operation = operation;
  return state_->Write(r);
}

absl::Status RoleController::RejoinAsStandby(const std::string& operation, uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  RegionRecord r = state_->Get();
  if (r.phase != RegionPhase::kRejoining || r.operation != operation) {
    return NotFrom(r, absl::StrCat("rejoin ", operation, " becoming a standby").c_str());
  }
  if (r.role == Role::kStandby) return absl::OkStatus();
  if (epoch < r.epoch) {
    return absl::FailedPreconditionError(
        absl::StrCat("a rejoin must not lower the epoch ", r.epoch, " to ", epoch));
  }
  r.role = Role::kStandby;
  r.epoch = epoch;
  FERRY_RETURN_IF_ERROR(state_->Write(r));
  KillPoint("role.rejoined_as_standby");
  return absl::OkStatus();
}

absl::Status RoleController::CompleteRejoin(const std::string& operation) {
  absl::MutexLock lock(&mu_);
  RegionRecord r = state_->Get();
  if (r.role != Role::kStandby || r.phase != RegionPhase::kRejoining || r.operation != operation) {
    return NotFrom(r, absl::StrCat("completing rejoin ", operation).c_str());
  }
  r.phase = RegionPhase::kReplicating;
  r.operation.clear();
  return state_->Write(r);
}

}  // namespace ferry
