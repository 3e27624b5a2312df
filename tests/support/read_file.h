// ReadFile: a whole file as bytes, for tests and benchmarks that read what a program wrote (its
// log, its output). "" when the file is missing or unreadable: the caller's assertion on the
// content then says what was expected.
#pragma once

#include <string>

namespace ferry::testing {

std::string ReadFile(const std::string& path);

}  // namespace ferry::testing
