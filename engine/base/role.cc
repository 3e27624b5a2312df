#include "engine/base/role.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace ferry {

absl::StatusOr<Role> ParseRole(std::string_view name) {
  for (Role role : kAllRoles) {
    if (RoleName(role) == name) return role;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("role must be primary or standby, got '", std::string(name), "'"));
}

}  // namespace ferry
