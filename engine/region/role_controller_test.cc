// RoleController: each transition is allowed only from its phase, is durable (a reopened
// controller sees it), and a restart settles whatever transitional phase a crash left.
#include "engine/region/role_controller.h"

#include <gtest/gtest.h>

#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

class RoleControllerTest : public ::testing::Test {
 protected:
  std::unique_ptr<RoleController> Open(Role initial = Role::kPrimary) {
    auto roles = RoleController::Open(dir_, "east", initial);
    EXPECT_TRUE(roles.ok()) << roles.status();
    return roles.ok() ? *std::move(roles) : nullptr;
  }
  ::ferry::testing::TempDir tmp_{"ferry-roles-test"};
  const std::string dir_ = tmp_.path();
};

TEST_F(RoleControllerTest, SwitchFlipsTheRoleUnderAHigherEpochDurably) {
  {
    auto roles = Open();
    ASSERT_TRUE(roles->BeginSwitch("op-1").ok());
    EXPECT_EQ(roles->Get().phase, RegionPhase::kSwitching);
    EXPECT_EQ(roles->role(), Role::kPrimary);
    EXPECT_EQ(roles->CompleteSwitch("op-2", 2).code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(roles->CompleteSwitch("op-1", 1).code(), absl::StatusCode::kFailedPrecondition);
    ASSERT_TRUE(roles->CompleteSwitch("op-1", 2).ok());
  }
  auto roles = Open();
  EXPECT_EQ(roles->Get(), (RegionRecord{.role = Role::kStandby, .epoch = 2}));
  // And back.
  ASSERT_TRUE(roles->BeginSwitch("op-3").ok());
  ASSERT_TRUE(roles->CompleteSwitch("op-3", 3).ok());
  EXPECT_EQ(roles->Get(), (RegionRecord{.role = Role::kPrimary, .epoch = 3}));
}

TEST_F(RoleControllerTest, RollBackLeavesRoleAndEpoch) {
  auto roles = Open();
  ASSERT_TRUE(roles->BeginSwitch("op-1").ok());
  EXPECT_EQ(roles->BeginSwitch("op-2").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(roles->RollBackSwitch("op-1").ok());
  EXPECT_EQ(roles->Get(), (RegionRecord{.role = Role::kPrimary, .epoch = 1}));
  EXPECT_EQ(roles->RollBackSwitch("op-1").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(RoleControllerTest, RestartRollsBackAnInterruptedSwitch) {
  ASSERT_TRUE(Open()->BeginSwitch("op-1").ok());
  auto roles = Open();
  auto recovered = roles->RecoverAfterRestart();
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ(*recovered, (RegionRecord{.role = Role::kPrimary, .epoch = 1}));
  EXPECT_EQ(Open()->Get(), *recovered);  // and durably so
}

TEST_F(RoleControllerTest, RestartCompletesAnInterruptedPromote) {
  {
    auto state = RegionState::Open(dir_, "east", Role::kStandby);
    ASSERT_TRUE(state.ok());
    ASSERT_TRUE((*state)
                    ->Write({.role = Role::kStandby,
                             .epoch = 4,
                             .phase = RegionPhase::kPromoting,
                             .operation = "promote-1"})
                    .ok());
  }
  auto recovered = Open(Role::kStandby)->RecoverAfterRestart();
  ASSERT_TRUE(recovered.ok());
  EXPECT_EQ(*recovered, (RegionRecord{.role = Role::kPrimary, .epoch = 4}));
}

TEST_F(RoleControllerTest, RestartKeepsFencedAndRejoining) {
  for (const RegionRecord& r :
       {RegionRecord{.role = Role::kPrimary, .epoch = 5, .phase = RegionPhase::kFenced},
        RegionRecord{.role = Role::kPrimary,
        .epoch = 5,
        .phase = RegionPhase::kRejoining,
        .operation = "rejoin-1"}}) {
    {
      auto state = RegionState::Open(dir_, "east", Role::kPrimary);
      ASSERT_TRUE(state.ok());
      ASSERT_TRUE((*state)->Write(r).ok());
    }
    auto recovered = Open()->RecoverAfterRestart();
    ASSERT_TRUE(recovered.ok());
    EXPECT_EQ(*recovered, r);
  }
}

TEST_F(RoleControllerTest, PrimaryThatLearnsAHigherEpochIsFenced) {
  auto roles = Open();
  auto fenced = roles->AdoptEpoch(1);
  ASSERT_TRUE(fenced.ok());
  EXPECT_FALSE(*fenced);  // not higher: nothing happens
  fenced = roles->AdoptEpoch(3);
  ASSERT_TRUE(fenced.ok());
  EXPECT_TRUE(*fenced);
  EXPECT_EQ(Open()->Get(),
            (RegionRecord{.role = Role::kPrimary, .epoch = 3, .phase = RegionPhase::kFenced}));
  EXPECT_EQ(roles->BeginSwitch("op-1").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(RoleControllerTest, RejoinTurnsAFencedPrimaryIntoAStandbyInDurableSteps) {
  {
    auto roles = Open();
    EXPECT_EQ(roles->BeginRejoin("rejoin-1").code(), absl::StatusCode::kFailedPrecondition);
    ASSERT_TRUE(roles->AdoptEpoch(3).ok());
    ASSERT_TRUE(roles->BeginRejoin("rejoin-1").ok());
    ASSERT_TRUE(roles->BeginRejoin("rejoin-1").ok());  // again: no change
    EXPECT_EQ(roles->BeginRejoin("rejoin-2").code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(roles->CompleteRejoin("rejoin-1").code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(roles->RejoinAsStandby("rejoin-1", 2).code(), absl::StatusCode::kFailedPrecondition);
  }
  {
    auto roles = Open();
    ASSERT_TRUE(roles->RecoverAfterRestart().ok());  // rejoining stays
    EXPECT_EQ(roles->Get(), (RegionRecord{.role = Role::kPrimary,
                                          .epoch = 3,
                                          .phase = RegionPhase::kRejoining,
                                          .operation = "rejoin-1"}));
    ASSERT_TRUE(roles->RejoinAsStandby("rejoin-1", 4).ok());
    ASSERT_TRUE(roles->RejoinAsStandby("rejoin-1", 4).ok());
  }
  auto roles = Open();
  EXPECT_EQ(roles->Get(), (RegionRecord{.role = Role::kStandby,
                                        .epoch = 4,
                                        .phase = RegionPhase::kRejoining,
                                        .operation = "rejoin-1"}));
  EXPECT_EQ(roles->CompleteRejoin("rejoin-9").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(roles->CompleteRejoin("rejoin-1").ok());
  EXPECT_EQ(Open()->Get(), (RegionRecord{.role = Role::kStandby, .epoch = 4}));
}

TEST_F(RoleControllerTest, StandbyAdoptsAHigherEpochAndStaysReplicating) {
  auto roles = Open(Role::kStandby);
  auto fenced = roles->AdoptEpoch(6);
  ASSERT_TRUE(fenced.ok());
  EXPECT_FALSE(*fenced);
  EXPECT_EQ(roles->Get(), (RegionRecord{.role = Role::kStandby, .epoch = 6}));
}

TEST_F(RoleControllerTest, PausedFlagIsDurableAndIndependentOfTheRole) {
  {
    auto roles = Open();
    ASSERT_TRUE(roles->SetPaused(true).ok());
    ASSERT_TRUE(roles->BeginSwitch("op-1").ok());
    ASSERT_TRUE(roles->CompleteSwitch("op-1", 2).ok());
  }
  auto roles = Open();
  EXPECT_TRUE(roles->paused());
  EXPECT_EQ(roles->role(), Role::kStandby);
  ASSERT_TRUE(roles->SetPaused(false).ok());
  EXPECT_FALSE(Open()->paused());
}

}  // namespace
}  // namespace ferry
