// The side-by-side section of bench/RESULTS.md: the table the old scripts/bench.sh wrote, from
// the figures of this run, between <!-- side-by-side:begin --> and <!-- side-by-side:end -->;
// every other section of the file is left as it is.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "bench/side_by_side/side_by_side.h"

namespace ferry::bench::sbs {

// The section's text (markers included).
std::string ResultsSection(const Settings& settings, const Figures& figures);

// Replaces the section in settings.results_path (appends it when the file has none; writes a
// new file when there is none), atomically (a temporary file renamed over it).
[[nodiscard]] absl::Status WriteResultsSection(const Settings& settings,
                                               const std::string& section);

}  // namespace ferry::bench::sbs
