// ReadFile: a whole file as bytes, for tests and benchmarks that read what a program wrote (its
// log, its output). "" when the file is missing or unreadable: the caller's assertion on the
// content then says what was expected.
#pragma once

#include <cstddef>
#include <string>

namespace ferry::testing {

std::string ReadFile(const std::string& path);

// What a program appended to the file after its first `offset` bytes ("" when nothing was, or the
// file cannot be read): take `ReadFile(path).size()` before the program runs.
std::string ReadFileFrom(const std::string& path, size_t offset);

// The last `max_bytes` of `text` (a program's output or log, for an error message), after "..."
// when something was cut.
std::string Tail(const std::string& text, size_t max_bytes = 2000);

}  // namespace ferry::testing
