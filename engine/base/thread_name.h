#pragma once

#include <string_view>

namespace ferry {

// Names the calling thread (what `top -H`, `ps -L` and perf show), cut to the 15 characters
// Linux keeps. Best effort: a failure leaves the inherited name.
void SetCurrentThreadName(std::string_view name);

}  // namespace ferry
