// Role: what a region does right now. One binary serves both; the role is runtime state
// (engine/region/region_state.h), and the config only names the first one.
//
// This header owns the role's names: the config file, the region state file, the admin
// service and the logs all spell a role with RoleName and read one back with ParseRole.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(Role role, ParseRole("standby"));
//   LOG(INFO) << "now " << RoleName(role);
#pragma once

#include <string_view>

#include "absl/status/statusor.h"

namespace ferry {

enum class Role { kPrimary, kStandby };

// Every role, in the order messages list them ("primary, standby").
inline constexpr Role kAllRoles[] = {Role::kPrimary, Role::kStandby};

// "primary" or "standby".
constexpr std::string_view RoleName(Role role) {
  return role == Role::kPrimary ? "primary" : "standby";
}

// The role named `name` (exactly RoleName's spelling). Otherwise kInvalidArgument:
// "role must be primary or standby, got 'NAME'".
[[nodiscard]] absl::StatusOr<Role> ParseRole(std::string_view name);

}  // namespace ferry
