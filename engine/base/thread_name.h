#pragma once

#include <string_view>

namespace ferry {

// Names the calling thread (what `top -H`, `ps -L` and perf show), cut to the 15 characters
// Linux keeps. Best effort: a failure leaves the inherited name. Ferry's long-lived threads
// call it first thing, e.g. `SetCurrentThreadName(absl::StrCat("apply-w", worker));`, so an
// operator can tell the capture, shipper, receiver and apply threads apart.
void SetCurrentThreadName(std::string_view name);

}  // namespace ferry
