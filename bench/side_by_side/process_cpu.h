// CPU and memory accounting from /proc, and optional perf recordings: what the old script read
// with awk, by the same fields.
//
//   ProcessCpuSeconds   utime + stime + cutime + cstime of /proc/PID/stat (a process with the
//                       children it reaped); 0 once the process is gone.
//   ClusterCpuSeconds   a cluster's postmaster (with its reaped backends) and its live children.
//   ClusterProcesses    the same processes one by one, each with its role (PgRoleOfTitle).
//   ClusterRoleSampler  a cluster's CPU by role over a stretch, read on a thread.
//   MachineTicks        the machine's busy and idle ticks from /proc/stat's "cpu" line (busy:
//                       user, nice, system, iowait, irq, softirq), and the ticks the host
//                       took from this virtual machine (steal); BusyPercent, StealPercent.
//   StealSampler        steal every 10 ms on a thread, to tell what the host took in a stretch.
//   VmHwmMb / ClearHwm  peak RSS from /proc/PID/status; reset through /proc/PID/clear_refs.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "bench/side_by_side/bench_text.h"
#include "tests/support/child_process.h"
#include "tests/support/pg_cluster.h"

namespace ferry::bench::sbs {

double ProcessCpuSeconds(pid_t pid);
double ClusterCpuSeconds(const ferry::testing::PgCluster& cluster);

struct ProcessCpu {
  PgRole role = PgRole::kRest;
  bool titled = false;  // the role is from a title (an exiting process shows none)
  double seconds = 0;   // as ProcessCpuSeconds
  bool postmaster = false;
};
// By (pid, start time in clock ticks since boot): a pid used again is another process.
using ClusterReading = std::map<std::pair<pid_t, uint64_t>, ProcessCpu>;
// Empty when the cluster does not run.
ClusterReading ClusterProcesses(const ferry::testing::PgCluster& cluster);

// The CPU of a cluster's processes by role (PgRole) over a stretch: reads ClusterProcesses
// every `every` on a thread of its own from construction to Stop(), so that a process that ends
// in between (pgbench's backends when pgbench exits) still counts under its own role: up to its
// last reading, and taken out of the postmaster's reaped children, where its whole CPU went.
// A process that lives less than `every` is read by neither and counts as the rest.
class ClusterRoleSampler {
 public:
  explicit ClusterRoleSampler(const ferry::testing::PgCluster& cluster,
                              absl::Duration every = absl::Milliseconds(250));
  ~ClusterRoleSampler();
  ClusterRoleSampler(const ClusterRoleSampler&) = delete;
  ClusterRoleSampler& operator=(const ClusterRoleSampler&) = delete;
  // Stops the thread, reads once more and returns each role's CPU seconds (indexed by PgRole)
  // since construction; nullopt when the cluster's postmaster is not the one of the first
  // reading (stopped, restarted, unreadable). Call once.
  std::optional<std::array<double, kPgRoles>> Stop();

 private:
  void Read() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const ferry::testing::PgCluster& cluster_;
  absl::Mutex mu_;
  ClusterReading first_ ABSL_GUARDED_BY(mu_);
  ClusterReading last_seen_ ABSL_GUARDED_BY(mu_);  // every process seen, as last read
  ClusterReading now_ ABSL_GUARDED_BY(mu_);        // the latest reading
  absl::Notification stop_;
  std::thread thread_;
};

struct MachineTicks {
  double busy = 0;
  double idle = 0;
  double steal = 0;
};
MachineTicks ReadMachineTicks();
// Percent of the machine busy between two readings, rounded ("%.0f").
std::string BusyPercent(const MachineTicks& before, const MachineTicks& after);
// Percent of the time between two readings the host ran something else on this machine's
// virtual CPUs ("%.1f"): a stall of the whole machine that no process here caused.
std::string StealPercent(const MachineTicks& before, const MachineTicks& after);

// Reads /proc/stat every `every` on a thread of its own until destroyed, to tell what the host
// took from this machine in a given stretch (a stall of every process at once).
class StealSampler {
 public:
  explicit StealSampler(absl::Duration every = absl::Milliseconds(10));
  ~StealSampler();
  StealSampler(const StealSampler&) = delete;
  StealSampler& operator=(const StealSampler&) = delete;
  // CPU milliseconds (all virtual CPUs together) the host took between two Unix times
  // (seconds), counted from the samples around them (so up to one interval wider at each end);
  // /proc/stat counts in ticks of 10 ms.
  double StolenMs(double from, double to) const;

 private:
  struct Sample {
    double at;  // Unix seconds
    double steal;
  };
  mutable absl::Mutex mu_;
  std::vector<Sample> samples_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread thread_;
};

// "%.0f" MB, or "?" when the process is gone.
std::string VmHwmMb(pid_t pid);
void ClearHwm(pid_t pid);

// FERRY_BENCH_PERF during a measured stretch: "1" samples the given processes with call
// graphs, "system" the whole machine, "stat" counts syscalls and context switches per thread;
// "" does nothing. Summaries go to WORK/profiles/TAG-NAME.txt.
class PerfRecording {
 public:
  // `processes`: (name, pid) of the processes to record (pid 0: skipped).
  PerfRecording(std::string mode, std::string dir, std::string profiles_dir, std::string tag,
                std::vector<std::pair<std::string, pid_t>> processes);
  // Stops the recorders (SIGINT) and writes the summaries. Idempotent.
  void Stop();
  ~PerfRecording() { Stop(); }

 private:
  std::string mode_, dir_, profiles_dir_, tag_;
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<ferry::testing::ChildProcess>> recorders_;
};

}  // namespace ferry::bench::sbs
