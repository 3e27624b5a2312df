// The side-by-side benchmark's shared vocabulary (bench/side_by_side/README.md): the run's
// settings, the figures its scenarios measure, and the few steps every scenario takes (log a
// line, poll until something holds, run a program to its end).
//
// Nothing here measures: polling only decides when to look; every figure comes from the
// databases' clocks, notify_listener's timestamps or /proc.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "tests/support/read_file.h"

namespace ferry::bench::sbs {

enum class Side { kEast, kWest };  // east: source and Ferry's primary; west: target, standby
inline const char* Name(Side s) { return s == Side::kEast ? "east" : "west"; }

// Constant once main() has read the flags and the environment.
struct Settings {
  bool quick = false;          // --quick: the small sizes below
  bool keep = false;           // --keep: keep the work directory (clusters, logs) after the run
  std::set<std::string> only;  // --only LIST: the scenarios to run (empty: all)
  // Sizes (full / --quick).
  int load_scale = 50;            // pgbench scale of the initial load (5)
  int base_scale = 10;            // pgbench scale of the catch-up and lag pairs (5)
  int catchup_tx = 100000;        // TPC-B transactions of a catch-up (20,000)
  int lag_seconds = 30;           // length of a steady-lag run (15)
  int big_rows = 1000000;         // rows of the big transaction (200,000)
  int lag_rate = 2000;            // FERRY_BENCH_LAG_RATE: pgbench -R of the steady lag
  int lag_low_rate = 200;         // FERRY_BENCH_LAG_LOW_RATE: a second steady-lag run (0: none)
  int probe_rate = 100;           // probe inserts a second (one every 10 ms)
  int proxy_one_way_ms = 20;      // the fault proxy's delay (40 ms round trip)
  int clients = 4;                // pgbench clients (2 threads)
  std::string commit_delay_us;    // FERRY_BENCH_COMMIT_DELAY_US ("": ferryd's default)
  bool debug_log = false;         // FERRY_BENCH_DEBUG_LOG=1: both ferryd log at debug
  std::string compression_level;  // FERRY_BENCH_COMPRESSION_LEVEL ("": ferryd's default)
  std::string ferryd_cpus;        // FERRY_BENCH_FERRYD_CPUS: taskset -c list ("": not pinned)
  std::string pg_huge_pages;      // FERRY_BENCH_PG_HUGE_PAGES: every cluster's huge_pages ("": try)
  std::string perf;               // FERRY_BENCH_PERF: "", "1", "system" or "stat"
  std::string tmp_parent = "/tmp";  // FERRY_BENCH_TMP: where the work directory is made
  std::string results_path;         // the RESULTS.md whose section is rewritten
  std::string repo;                 // the checkout (its commit is named in the section)
  std::string bin_dir;              // ferryd, ferryctl (BUILD/bin)
  std::string bench_dir;            // notify_listener (BUILD/bench)

  // Sets the sizes of a full or a --quick run.
  void SetSizes(bool quick_run);
  bool Want(std::string_view scenario) const {
    return only.empty() || only.count(std::string(scenario)) > 0;
  }
  std::string ferryd() const { return bin_dir + "/ferryd"; }
  std::string ferryctl() const { return bin_dir + "/ferryctl"; }
  std::string notify_listener() const { return bench_dir + "/notify_listener"; }
  std::string pgbench() const { return "/usr/lib/postgresql/15/bin/pgbench"; }
};

// What the scenarios measured, by the names the RESULTS.md section reads (the old script's
// keys: load_native, catchup_ferry_0, lag_p99_ferry_low, ...), as text.
class Figures {
 public:
  void Set(const std::string& key, std::string value) { values_[key] = std::move(value); }
  void SetNumber(const std::string& key, double value) {
    values_[key] = absl::StrFormat("%.9g", value);
  }
  // nullopt when the scenario that measures it did not run.
  std::optional<std::string> Get(const std::string& key) const;
  std::optional<double> Number(const std::string& key) const;
  std::vector<std::string> notes;  // paragraphs printed under the table

 private:
  std::map<std::string, std::string> values_;
};

// "bench: HH:MM:SS line" on stderr.
void Log(const std::string& line);

// True once SIGINT or SIGTERM arrived (main installs the handler); every wait gives up then.
bool Interrupted();
void InstallInterruptHandler();

// Calls `done` every `interval` until it returns true (true) or `timeout` passed or the run was
// interrupted (false).
bool WaitUntil(absl::Duration timeout, absl::Duration interval, const std::function<bool()>& done);

// Runs argv to its end, stdout and stderr appended to `output_path` (inherited when empty).
// Returns the exit code (128 + signal when killed); errors only when it cannot start.
[[nodiscard]] absl::StatusOr<int> Run(const std::vector<std::string>& argv,
                                      const std::string& output_path);

// The whole file ("" when it cannot be read).
using ::ferry::testing::ReadFile;

// Unix time in seconds, microsecond resolution (the script's `date +%s.%N`).
double NowSeconds();

}  // namespace ferry::bench::sbs
