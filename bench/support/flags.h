// Command-line flags of the macro benchmarks: "--name=value" or "--name value", read as a number.
#pragma once

#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ferry::bench {

// The value of --`name`, or `fallback` when it is not given.
inline double Flag(int argc, char** argv, const char* name, double fallback) {
  const std::string prefix = absl::StrCat("--", name, "=");
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (absl::StartsWith(a, prefix)) return std::atof(a.c_str() + prefix.size());
    if (a == absl::StrCat("--", name) && i + 1 < argc) return std::atof(argv[i + 1]);
  }
  return fallback;
}

}  // namespace ferry::bench
