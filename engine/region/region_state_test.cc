#include "engine/region/region_state.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

class RegionStateTest : public ::testing::Test {
 protected:
  ::ferry::testing::TempDir tmp_{"ferry-region-test"};
  const std::string dir_ = tmp_.path();
};

TEST_F(RegionStateTest, FirstOpenUsesInitialRoleAndEpochOne) {
  auto state = RegionState::Open(dir_, "east", Role::kPrimary);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ((*state)->role(), Role::kPrimary);
  EXPECT_EQ((*state)->epoch(), 1u);
}

TEST_F(RegionStateTest, PersistedRoleWinsOverConfiguredOne) {
  {
    auto state = RegionState::Open(dir_, "east", Role::kPrimary);
    ASSERT_TRUE(state.ok());
    ASSERT_TRUE((*state)->Set(Role::kStandby, 4).ok());
  }
  auto state = RegionState::Open(dir_, "east", Role::kPrimary);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ((*state)->role(), Role::kStandby);
  EXPECT_EQ((*state)->epoch(), 4u);
}

TEST_F(RegionStateTest, EpochNeverGoesBack) {
  auto state = RegionState::Open(dir_, "east", Role::kPrimary);
  ASSERT_TRUE((*state)->Set(Role::kPrimary, 5).ok());
  EXPECT_EQ((*state)->Set(Role::kStandby, 3).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*state)->AdoptEpoch(2).ok());
  EXPECT_EQ((*state)->epoch(), 5u);
  ASSERT_TRUE((*state)->AdoptEpoch(9).ok());
  EXPECT_EQ((*state)->epoch(), 9u);
  EXPECT_EQ((*state)->role(), Role::kPrimary);
}

TEST_F(RegionStateTest, DataDirOfAnotherRegionIsRefused) {
  ASSERT_TRUE(RegionState::Open(dir_, "east", Role::kPrimary).ok());
  auto other = RegionState::Open(dir_, "west", Role::kStandby);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(other.status().message().find("belongs to region 'east'"), std::string::npos);
}

TEST_F(RegionStateTest, CorruptFileIsReportedNotReplaced) {
  ASSERT_TRUE(RegionState::Open(dir_, "east", Role::kPrimary).ok());
  const std::string path = dir_ + "/region.state";
  std::string text;
  {
    std::ifstream in(path);
    std::getline(in, text, '\0');
  }
  text.replace(text.find("role=primary"), 12, "role=standby");  // checksum no longer matches
  {
    std::ofstream out(path, std::ios::trunc);
    out << text;
  }
  auto state = RegionState::Open(dir_, "east", Role::kPrimary);
  EXPECT_EQ(state.status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace ferry
