#include "engine/base/role.h"

#include "gtest/gtest.h"

namespace ferry {
namespace {

TEST(RoleTest, EveryRoleRoundTripsThroughItsName) {
  for (Role role : kAllRoles) {
    absl::StatusOr<Role> parsed = ParseRole(RoleName(role));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, role);
  }
  EXPECT_EQ(RoleName(Role::kPrimary), "primary");
  EXPECT_EQ(RoleName(Role::kStandby), "standby");
}

TEST(RoleTest, OnlyTheExactNamesParse) {
  for (std::string_view bad : {"", "Primary", "leader", "standby ", "primary\n"}) {
    absl::StatusOr<Role> parsed = ParseRole(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ParseRole("leader").status().message(),
            "role must be primary or standby, got 'leader'");
}

}  // namespace
}  // namespace ferry
