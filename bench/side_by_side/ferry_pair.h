// FerryPair: the two ferryd processes of one benchmark row, built by this project: east
// (primary) over the pair's east cluster, west (standby) over its west cluster, default config
// apart from ports, the snapshot switch and FERRY_BENCH_COMMIT_DELAY_US; optionally a FaultProxy
// (in this process) on the replication stream from east to west. Admin verbs go through the
// build's ferryctl, as an operator's would.
//
// Example:
//   auto ferry = FerryPair::Configure(settings, *pair, {.snapshot = false});
//   RETURN_IF_ERROR((*ferry)->Start(Side::kWest, /*wait=*/true));
//   RETURN_IF_ERROR((*ferry)->Start(Side::kEast, /*wait=*/true));
//   (*ferry)->Ctl(Side::kEast, {"pause"});
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/side_by_side/cluster_pair.h"
#include "bench/side_by_side/side_by_side.h"
#include "proto/admin.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/fault_proxy.h"

namespace ferry::bench::sbs {

struct FerryPairOptions {
  bool snapshot = false;    // postgres.snapshot: copy the existing rows first
  int stream_delay_ms = 0;  // > 0: a FaultProxy with this one-way delay from east to west
};

class FerryPair {
 public:
  // Writes east.yaml and west.yaml in the pair's folder; starts nothing but the proxy.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<FerryPair>> Configure(
      const Settings& settings, ClusterPair& pair, const FerryPairOptions& options);
  // Stops both ferryd (Stop), then the proxy.
  ~FerryPair();

  // Starts ferryd of a side (output in PAIR/ferryd-SIDE.log); with `wait`, returns once its
  // admin service answers `ferryctl status` (at most 60 s).
  [[nodiscard]] absl::Status Start(Side s, bool wait);
  // SIGTERM, then SIGKILL after 60 s (the old script's stop_pid).
  void Stop(Side s);
  // The pid of a running ferryd; 0 when it is not running.
  pid_t pid(Side s);

  struct CtlResult {
    int exit_code = 0;
    std::string output;
  };
  // ferryctl --admin ADDRESS --timeout 5 ARGS... (a process, as the old script ran it).
  [[nodiscard]] absl::StatusOr<CtlResult> Ctl(Side s, const std::vector<std::string>& args,
                                              int timeout_s = 5);
  // `ferryctl status --json`, parsed.
  [[nodiscard]] absl::StatusOr<ferry::v1::StatusReply> Status(Side s);
  std::string admin_address(Side s) const;
  bool Connected();  // east's status says its peer is connected
  bool UpToDate();   // east's apply lag is 0 records

 private:
  FerryPair() = default;
  const Settings* settings_ = nullptr;
  ClusterPair* pair_ = nullptr;
  int admin_[2] = {0, 0};
  int replication_[2] = {0, 0};
  std::unique_ptr<ferry::testing::FaultProxy> proxy_;
  std::unique_ptr<ferry::testing::ChildProcess> daemon_[2];
};

}  // namespace ferry::bench::sbs
