// TwoRegions: the end-to-end fixture. Two throwaway Postgres 15 clusters (east and west) and
// two ferryd processes built by this project, east primary and west standby, talking over
// loopback. Optionally a FaultProxy sits on the replication path (east -> proxy -> west).
// Without Postgres (TwoRegionsOptions::without_postgres) the regions replicate buckets only.
//
// Example:
//   auto regions = TwoRegions::Start({});
//   ASSERT_TRUE((*regions)->east_pg().Exec("INSERT ...").ok());
//   ASSERT_TRUE((*regions)->WaitForTablesEqual({"public.t"}, absl::Seconds(60)).ok());
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/admin.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/free_port.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/temp_dir.h"

namespace ferry::testing {

struct TwoRegionsOptions {
  bool with_proxy = false;  // east ships through a FaultProxy to west
  std::string admin_token;  // both regions' admin token ("" = none)
  std::string schema_sql;   // run on east before the daemons start
  std::string standby_sql;  // run on west before the daemons start (types its tables need)
  int apply_workers = 2;
  int apply_group_max_transactions = 0;  // 0 = ferryd's default
  std::vector<std::string> ferryd_args;  // added to every ferryd's command line
  std::string standby_data_dir;          // west's data_dir ("" = one in the fixture's folder)
  std::string apply_yaml;                // more lines of both configs' apply section
  std::string extra_yaml;                // more sections at the end of both configs
  std::string east_yaml, west_yaml;      // more sections at the end of one region's config
  // No Postgres clusters and no postgres: sections: bucket-only regions (the objects: section
  // comes from east_yaml / west_yaml). pg() must not be called then.
  bool without_postgres = false;
};

enum class Region { kEast, kWest };

// The tables a status shows stopped by this region's apply ("stopped" or "needs_resnapshot"),
// by name. Status lists every replicated table (issue #20); tests that check "nothing stopped"
// ask this, not for an empty list.
std::vector<std::string> StoppedTables(const v1::StatusReply& status);

class TwoRegions {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<TwoRegions>> Start(
      const TwoRegionsOptions& options);
  ~TwoRegions();

  PgCluster& pg(Region r) { return r == Region::kEast ? *east_pg_ : *west_pg_; }
  FaultProxy* proxy() { return proxy_.get(); }
  std::string admin_address(Region r) const;
  std::string metrics_address(Region r) const;
  std::string config_path(Region r) const;
  std::string log_path(Region r) const;
  std::string data_dir(Region r) const;

  // Starts (or restarts) ferryd of a region; returns once its admin service answers.
  // `extra_env` ("NAME=value") is added to its environment (FERRY_KILL_POINT for crash tests).
  [[nodiscard]] absl::Status StartDaemon(Region r, const std::vector<std::string>& extra_env = {});
  // SIGTERM and wait for a clean exit (exit code 0) within `timeout`.
  [[nodiscard]] absl::Status StopDaemon(Region r, absl::Duration timeout = absl::Seconds(60));
  // SIGKILL, no drain.
  void KillDaemon(Region r);
  bool running(Region r);
  // Waits for a region's ferryd to exit by itself (a kill point, a fatal error): true once it
  // has (it is reaped then), false when it still runs after `timeout`. A caller that saw the
  // daemon's connections close (an admin call failing) must wait here before starting it again:
  // a process closes its sockets before it exits.
  [[nodiscard]] bool WaitForExit(Region r, absl::Duration timeout = absl::Seconds(60));
  // The process id of a region's ferryd (0 when it never started).
  int pid(Region r) const;

  // Runs `sql` on a region's database the way a superuser can behind Ferry's back
  // (session_replication_role = replica: the fence's trigger does not fire): how tests plant a
  // difference on a standby, whose database refuses application writes.
  [[nodiscard]] absl::Status ExecBehindFence(Region r, const std::string& sql) {
    return pg(r).Exec("SET session_replication_role = replica; " + sql);
  }

  // Polls the region's status every 100 ms until `ok` holds (returns that status) or `timeout`
  // passes (kDeadlineExceeded with the last status).
  [[nodiscard]] absl::StatusOr<v1::StatusReply> PollStatus(
      Region r, const std::function<bool(const v1::StatusReply&)>& ok,
      absl::Duration timeout = absl::Seconds(90));
  // The last `bytes` of a region's ferryd log, for a failed test's output.
  std::string LogTail(Region r, size_t bytes = 10000) const;
  // Both regions' log tails, headed by their names: what a failed test prints in TearDown.
  std::string BothLogTails(size_t bytes = 12000) const;

  // Admin calls (with the configured token).
  [[nodiscard]] absl::StatusOr<v1::StatusReply> Status(Region r);
  [[nodiscard]] absl::Status Pause(Region r);
  [[nodiscard]] absl::Status Resume(Region r);

  // Polls until every listed table holds the same rows on both clusters (compared as sorted
  // text), or the timeout passes (then the error shows the difference in row counts).
  [[nodiscard]] absl::Status WaitForTablesEqual(const std::vector<std::string>& tables,
                                                absl::Duration timeout);
  // Leaves the standby's (west's) database without commits its apply made and counts, as a crash
  // of that database does with asynchronous commits its WAL writer had not written out yet: its
  // WAL writer is slowed to once every 10 s, then, up to 5 times, `insert_sql` runs
  // `transactions` times on east (each its own acknowledged transaction), west's copy of
  // `table` catches up with east's, and west's database is crashed (an immediate stop) and
  // started again. Returns how many of east's rows west lacks after the first crash that took
  // any back; an error when none did (the caller's case was not made) or a step failed. West's
  // apply is idle at each crash; its ferryd has to notice the crash by itself (its
  // apply.durable_poll_ms decides when).
  [[nodiscard]] absl::StatusOr<int64_t> CrashStandbyDatabaseTakingBackCommits(
      const std::string& table, const std::string& insert_sql, int transactions);

  // The rows of a table as sorted text lines (one per row).
  [[nodiscard]] absl::StatusOr<std::vector<std::string>> TableRows(Region r,
                                                                   const std::string& table);

  // Runs ferryctl with the arguments; returns exit status and combined output.
  struct CtlResult {
    int exit_code;
    std::string output;
  };
  [[nodiscard]] absl::StatusOr<CtlResult> Ctl(Region r, const std::vector<std::string>& args,
                                              const std::string& token_file = "");

 private:
  TwoRegions() = default;
  absl::Status WriteConfigs();
  template <typename Request, typename Reply>
  absl::StatusOr<Reply> Call(Region r,
                             grpc::Status (v1::Admin::Stub::*method)(grpc::ClientContext*,
                                                                     const Request&, Reply*));

  TwoRegionsOptions options_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<PgCluster> east_pg_, west_pg_;
  std::unique_ptr<FaultProxy> proxy_;
  std::unique_ptr<ChildProcess> east_, west_;
  int east_admin_ = 0, west_admin_ = 0, east_metrics_ = 0, west_metrics_ = 0;
  int west_replication_ = 0, east_replication_ = 0;
};

}  // namespace ferry::testing
