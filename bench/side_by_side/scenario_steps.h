// Steps that more than one scenario file takes (scenarios.cc defines them), and the scenarios
// that live in files of their own. Internal to the side-by-side benchmark.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/side_by_side/cluster_pair.h"
#include "bench/side_by_side/ferry_pair.h"
#include "bench/side_by_side/scenarios.h"

namespace ferry::bench::sbs {

// A ferryd pair over the cluster pair, both started, east connected to west (at most 60 s).
[[nodiscard]] absl::StatusOr<std::unique_ptr<FerryPair>> StartFerry(
    const Context& ctx, ClusterPair& pair, const FerryPairOptions& options);

// pgbench's argv against one side of the pair, with `args` after the connection's.
std::vector<std::string> Pgbench(const Settings& s, ClusterPair& pair, Side side,
                                 std::vector<std::string> args);

// switchover.cc: the write-unavailable window of `ferryctl reverse` under pgbench load.
absl::Status SwitchoverScenario(Context& ctx);

}  // namespace ferry::bench::sbs
