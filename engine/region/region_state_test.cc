#include "engine/region/region_state.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <fstream>

#include "absl/strings/str_format.h"
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
    ASSERT_TRUE((*state)->Write({.role = Role::kStandby, .epoch = 4}).ok());
  }
  auto state = RegionState::Open(dir_, "east", Role::kPrimary);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ((*state)->role(), Role::kStandby);
  EXPECT_EQ((*state)->epoch(), 4u);
}

TEST_F(RegionStateTest, EpochNeverGoesBack) {
  auto state = RegionState::Open(dir_, "east", Role::kPrimary);
  ASSERT_TRUE((*state)->Write({.role = Role::kPrimary, .epoch = 5}).ok());
  EXPECT_EQ((*state)->Write({.role = Role::kStandby, .epoch = 3}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*state)->epoch(), 5u);
  EXPECT_EQ((*state)->role(), Role::kPrimary);
}

TEST_F(RegionStateTest, EveryFieldSurvivesAReopen) {
  const RegionRecord record{.role = Role::kStandby,
                            .epoch = 7,
                            .phase = RegionPhase::kPromoting,
                            .paused = true,
                            .operation = "promote-42"};
  {
    auto state = RegionState::Open(dir_, "east", Role::kPrimary);
    ASSERT_TRUE(state.ok());
    ASSERT_TRUE((*state)->Write(record).ok());
  }
  auto state = RegionState::Open(dir_, "east", Role::kPrimary);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ((*state)->Get(), record);
}

TEST_F(RegionStateTest, OperationIdIsSetExactlyInTransitionalStates) {
  auto state = RegionState::Open(dir_, "east", Role::kPrimary);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ((*state)->Write({.role = Role::kPrimary, .phase = RegionPhase::kSwitching}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*state)->Write({.role = Role::kPrimary, .operation = "op"}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      (*state)
          ->Write(
              {.role = Role::kPrimary, .phase = RegionPhase::kSwitching, .operation = "two\nlines"})
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*state)->Get(), (RegionRecord{.role = Role::kPrimary}));
}

// A data_dir written by a ferryd before the state machine (version 1) still starts.
TEST_F(RegionStateTest, VersionOneFileIsReadAsReplicating) {
  const std::string body = "ferry-region-state 1\nregion=east\nrole=standby\nepoch=3\n";
  {
    std::ofstream out(dir_ + "/region.state", std::ios::trunc);
    out << body << "checksum=" << absl::StrFormat("%016x", XXH3_64bits(body.data(), body.size()))
        << "\n";
  }
  auto state = RegionState::Open(dir_, "east", Role::kPrimary);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ((*state)->Get(), (RegionRecord{.role = Role::kStandby, .epoch = 3}));
}

TEST_F(RegionStateTest, NewerVersionAndUnknownValuesAreRefused) {
  auto write = [&](const std::string& body) {
    std::ofstream out(dir_ + "/region.state", std::ios::trunc);
    out << body << "checksum=" << absl::StrFormat("%016x", XXH3_64bits(body.data(), body.size()))
        << "\n";
  };
  write("ferry-region-state 3\nregion=east\nrole=standby\nepoch=3\n");
  EXPECT_EQ(RegionState::Open(dir_, "east", Role::kPrimary).status().code(),
            absl::StatusCode::kFailedPrecondition);
  write("ferry-region-state 2\nregion=east\nrole=standby\nepoch=3\nstate=flying\n");
  EXPECT_EQ(RegionState::Open(dir_, "east", Role::kPrimary).status().code(),
            absl::StatusCode::kDataLoss);
  write("ferry-region-state 2\nregion=east\nrole=standby\nepoch=3\npaused=yes\n");
  EXPECT_EQ(RegionState::Open(dir_, "east", Role::kPrimary).status().code(),
            absl::StatusCode::kDataLoss);
  write("ferry-region-state 2\nregion=east\nrole=standby\nepoch=3\nstate=switching\n");
  EXPECT_EQ(RegionState::Open(dir_, "east", Role::kPrimary).status().code(),
            absl::StatusCode::kDataLoss);
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
