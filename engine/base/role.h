// Role: what a region does right now. One binary serves both; the role is runtime state
// (engine/region/region_state.h), and the config only names the first one.
#pragma once

#include <string_view>

namespace ferry {

enum class Role { kPrimary, kStandby };

// "primary" or "standby".
constexpr std::string_view RoleName(Role role) {
  return role == Role::kPrimary ? "primary" : "standby";
}

}  // namespace ferry
