// capture_bench: how fast the Postgres source captures a WAL backlog into the durable log,
// compared with pg_recvlogical reading the same backlog through pgoutput to /dev/null, in the
// same run on the same cluster.
//
// Method (bench/macro/README.md has the details):
//   1. A throwaway cluster with fsync on; `pgbench -i -s SCALE`; publication `ferry` FOR ALL
//      TABLES.
//   2. 2 x ROUNDS pgoutput slots, all created before the workload, so each one must decode
//      exactly the same WAL: recv_<i> for pg_recvlogical, ferry_<i> for Ferry.
//   3. The workload while nobody consumes: `pgbench -n -c CLIENTS -t TRANSACTIONS/CLIENTS`
//      (TPC-B: 3 UPDATEs and 1 INSERT per transaction). End LSN = pg_current_wal_lsn().
//   4. ROUNDS rounds, the order alternating: pg_recvlogical --endpos=<end LSN> on recv_<i>,
//      wall time from spawn to exit; PostgresSource (snapshot off, adopting ferry_<i>) into a
//      LogCaptureTarget over a fresh DurableLog (sync on), wall time from Run() until
//      CapturedPosition() >= end LSN. The changes Ferry made durable are counted in its log.
//
// Usage: capture_bench [--scale=10] [--transactions=100000] [--clients=4] [--rounds=3]
//                      [--sync_commit_workload=off] [--only=ferry|recv]
// Exits non-zero when a step fails or Ferry's log does not hold every change of the workload.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/support/log_rows.h"
#include "connectors/postgres/common/lsn.h"
#include "connectors/postgres/source/postgres_source.h"
#include "engine/base/status_macros.h"
#include "engine/capture/log_capture_target.h"
#include "engine/log/durable_log.h"
#include "proto/change.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/temp_dir.h"

namespace ferry::bench {
namespace {

constexpr char kBinDir[] = "/usr/lib/postgresql/15/bin";
constexpr int kChangesPerTpcbTransaction = 4;  // 3 UPDATEs + 1 INSERT into pgbench_history

struct Config {
  int scale = 10;
  int transactions = 100000;  // in total, over all clients
  int clients = 4;
  int rounds = 3;
  // synchronous_commit of the workload's sessions only (the server keeps fsync on): it makes
  // generating the backlog faster and does not change what is decoded.
  std::string sync_commit_workload = "off";
  std::string only;  // "", "ferry" or "recv"
};

// One measured consumption of the backlog.
struct Run {
  std::string who;
  int round = 0;
  double seconds = 0;           // wall time until the end LSN was reached
  double cpu_seconds = 0;       // consumer CPU (user + system) over the run
  double last_txn_seconds = 0;  // Ferry: until the last workload transaction was durable
  uint64_t changes = 0;         // Ferry: counted in the log; pg_recvlogical: the workload's
  uint64_t transactions = 0;
  uint64_t group_commits = 0;
  uint64_t log_bytes = 0;
};

double CpuSeconds(int who) {
  rusage u{};
  getrusage(who, &u);
  return absl::ToDoubleSeconds(absl::DurationFromTimeval(u.ru_utime) +
                               absl::DurationFromTimeval(u.ru_stime));
}

absl::Status RunTool(const std::vector<std::string>& argv, const std::string& output,
                     const std::vector<std::string>& env = {}) {
  std::printf("$ %s\n", absl::StrJoin(argv, " ").c_str());
  std::fflush(stdout);
  FERRY_ASSIGN_OR_RETURN(auto child, testing::ChildProcess::Spawn(argv, output, env));
  int status = child->Wait();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat(argv[0], " failed (wait status ", status, "); output in ", output));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Value(const testing::PgCluster& pg, const std::string& sql) {
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> v, pg.QueryValue(sql));
  if (!v.has_value()) return absl::InternalError(absl::StrCat("NULL from: ", sql));
  return *v;
}

absl::StatusOr<Run> RunRecvLogical(const testing::PgCluster& pg, const std::string& slot,
                                   const std::string& end_lsn, const std::string& output) {
  std::vector<std::string> argv = {absl::StrCat(kBinDir, "/pg_recvlogical"),
                                   "-d",
                                   pg.dsn(),
                                   "--slot",
                                   slot,
                                   "--start",
                                   "--no-loop",
                                   "-o",
                                   "proto_version=1",
                                   "-o",
                                   "publication_names=ferry",
                                   absl::StrCat("--endpos=", end_lsn),
                                   "-f",
                                   "/dev/null"};
  const double cpu0 = CpuSeconds(RUSAGE_CHILDREN);
  const absl::Time start = absl::Now();
  FERRY_RETURN_IF_ERROR(RunTool(argv, output));
  Run run;
  run.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  run.cpu_seconds = CpuSeconds(RUSAGE_CHILDREN) - cpu0;
  return run;
}

absl::StatusOr<Run> RunFerry(const testing::PgCluster& pg, const std::string& slot,
                             uint64_t end_lsn, uint64_t expected_transactions) {
  testing::TempDir dir("ferry-capture-bench");
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<DurableLog> log,
                         DurableLog::Open({.path = dir.File("outbound")}));
  LogCaptureTarget target(log.get(), "bench", [] { return uint64_t{1}; });
  FERRY_RETURN_IF_ERROR(target.Load());
  pg::PostgresSourceOptions options;
  options.dsn = pg.dsn();
  options.publication = "ferry";
  options.slot = slot;
  options.origin_region = "bench";
  options.snapshot = false;  // adopt the slot made before the workload
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<pg::PostgresSource> source,
                         pg::PostgresSource::Create(options));

  StopSignal stop;
  absl::Status result;
  const double cpu0 = CpuSeconds(RUSAGE_SELF);
  const absl::Time start = absl::Now();
  std::thread capture([&] { result = source->Run(target, stop); });
  std::optional<absl::Time> last_txn;
  while (target.CapturedPosition() < end_lsn) {
    if (!last_txn.has_value() && target.transactions() >= expected_transactions) {
      last_txn = absl::Now();
    }
    if (!source->Health().last_error.empty() && !source->Health().connected) break;
    absl::SleepFor(absl::Milliseconds(1));
  }
  const absl::Time end = absl::Now();
  if (!last_txn.has_value()) last_txn = end;
  const double cpu1 = CpuSeconds(RUSAGE_SELF);
  stop.Stop();
  capture.join();
  FERRY_RETURN_IF_ERROR(result);
  if (target.CapturedPosition() < end_lsn) {
    return absl::InternalError(
        absl::StrCat("capture stopped early: ", source->Health().last_error));
  }

  Run run;
  run.seconds = absl::ToDoubleSeconds(end - start);
  run.last_txn_seconds = absl::ToDoubleSeconds(*last_txn - start);
  run.cpu_seconds = cpu1 - cpu0;
  LogStats stats = log->stats();
  run.group_commits = stats.group_commits;
  run.log_bytes = stats.appended_bytes;
  FERRY_ASSIGN_OR_RETURN(bench::LogRows rows, bench::CountLogRows(*log));  // not timed
  run.changes = rows.changes;
  run.transactions = rows.transactions;
  return run;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

absl::Status Main(const Config& config) {
  testing::TempDir work("ferry-capture-bench-out");
  std::printf("capture_bench: scale %d, %d TPC-B transactions, %d clients, %d rounds\n",
              config.scale, config.transactions, config.clients, config.rounds);
  FERRY_ASSIGN_OR_RETURN(auto pg,
                         testing::PgCluster::Start({
                             .extra_config = {"max_wal_size = 8GB", "checkpoint_timeout = 30min"},
                             .fsync = true,
                         }));
  std::printf("cluster: %s (fsync on), port %d\n", pg->dir().c_str(), pg->port());
  const std::string host = "127.0.0.1", port = absl::StrCat(pg->port());
  const std::vector<std::string> pgbench = {
      absl::StrCat(kBinDir, "/pgbench"), "-h", host, "-p", port, "-U", "postgres"};

  std::vector<std::string> init = pgbench;
  init.insert(init.end(), {"-i", "-q", "-s", absl::StrCat(config.scale), "app"});
  FERRY_RETURN_IF_ERROR(RunTool(init, work.File("pgbench_init.log")));
  FERRY_RETURN_IF_ERROR(pg->Exec("CREATE PUBLICATION ferry FOR ALL TABLES"));
  for (int i = 1; i <= config.rounds; ++i) {
    for (const char* kind : {"recv", "ferry"}) {
      FERRY_RETURN_IF_ERROR(pg->Exec(absl::StrCat("SELECT pg_create_logical_replication_slot('",
                                                  kind, "_", i, "', 'pgoutput')")));
    }
  }
  FERRY_ASSIGN_OR_RETURN(std::string start_lsn, Value(*pg, "SELECT pg_current_wal_lsn()"));

  const int per_client = std::max(1, config.transactions / config.clients);
  std::vector<std::string> workload = pgbench;
  workload.insert(workload.end(), {"-n", "-c", absl::StrCat(config.clients), "-j", "2", "-t",
                                   absl::StrCat(per_client), "app"});
  const absl::Time workload_start = absl::Now();
  FERRY_RETURN_IF_ERROR(
      RunTool(workload, work.File("pgbench_run.log"),
              {absl::StrCat("PGOPTIONS=-c synchronous_commit=", config.sync_commit_workload)}));
  const double workload_seconds = absl::ToDoubleSeconds(absl::Now() - workload_start);
  FERRY_ASSIGN_OR_RETURN(std::string end_lsn_text, Value(*pg, "SELECT pg_current_wal_lsn()"));
  FERRY_ASSIGN_OR_RETURN(uint64_t end_lsn, pg::ParseLsn(end_lsn_text));
  // Flushes the WAL and takes the checkpoint's I/O out of the measured window.
  FERRY_RETURN_IF_ERROR(pg->Exec("CHECKPOINT"));
  FERRY_ASSIGN_OR_RETURN(std::string history, Value(*pg, "SELECT count(*) FROM pgbench_history"));
  FERRY_ASSIGN_OR_RETURN(std::string wal_bytes,
                         Value(*pg, absl::StrCat("SELECT pg_wal_lsn_diff('", end_lsn_text, "', '",
                                                 start_lsn, "')::bigint")));
  uint64_t transactions = 0;
  if (!absl::SimpleAtoi(history, &transactions)) return absl::InternalError("bad count");
  const uint64_t changes = transactions * kChangesPerTpcbTransaction;
  std::printf(
      "workload: %llu transactions, %llu row changes, WAL %s .. %s (%s bytes), generated in "
      "%.1f s (%.0f tps)\n\n",
      static_cast<unsigned long long>(transactions), static_cast<unsigned long long>(changes),
      start_lsn.c_str(), end_lsn_text.c_str(), wal_bytes.c_str(), workload_seconds,
      transactions / workload_seconds);

  std::vector<Run> runs;
  for (int i = 1; i <= config.rounds; ++i) {
    std::vector<std::string> order = {"recv", "ferry"};
    if (i % 2 == 0) std::swap(order[0], order[1]);
    for (const std::string& who : order) {
      if (!config.only.empty() && config.only != who) continue;
      const std::string slot = absl::StrCat(who, "_", i);
      Run run;
      if (who == "recv") {
        FERRY_ASSIGN_OR_RETURN(
            run, RunRecvLogical(*pg, slot, end_lsn_text, work.File(absl::StrCat(slot, ".log"))));
        run.changes = changes;
        run.transactions = transactions;
      } else {
        FERRY_ASSIGN_OR_RETURN(run, RunFerry(*pg, slot, end_lsn, transactions));
        if (run.changes != changes || run.transactions != transactions) {
          return absl::InternalError(absl::StrFormat(
              "Ferry's log holds %d changes in %d transactions; the workload made %d in %d",
              run.changes, run.transactions, changes, transactions));
        }
      }
      run.who = who == "recv" ? "pg_recvlogical" : "ferry";
      run.round = i;
      std::printf("round %d %-14s %7.2f s %9.0f changes/s  cpu %6.2f s", i, run.who.c_str(),
                  run.seconds, run.changes / run.seconds, run.cpu_seconds);
      if (who == "ferry") {
        std::printf("  (last txn durable at %.2f s, %llu group commits, %.1f MB logged)",
                    run.last_txn_seconds, static_cast<unsigned long long>(run.group_commits),
                    run.log_bytes / 1e6);
      }
      std::printf("\n");
      std::fflush(stdout);
      runs.push_back(run);
    }
  }

  std::printf("\n| consumer | runs (s) | median s | median changes/s | median cpu s |\n");
  std::printf("| --- | --- | --- | --- | --- |\n");
  double rate[2] = {0, 0};
  const char* names[2] = {"pg_recvlogical", "ferry"};
  for (int k = 0; k < 2; ++k) {
    std::vector<double> secs, cpus;
    std::vector<std::string> shown;
    for (const Run& r : runs) {
      if (r.who != names[k]) continue;
      secs.push_back(r.seconds);
      cpus.push_back(r.cpu_seconds);
      shown.push_back(absl::StrFormat("%.2f", r.seconds));
    }
    if (secs.empty()) continue;
    const double m = Median(secs);
    rate[k] = changes / m;
    std::printf("| %s | %s | %.2f | %.0f | %.2f |\n", names[k], absl::StrJoin(shown, ", ").c_str(),
                m, rate[k], Median(cpus));
  }
  if (rate[0] > 0 && rate[1] > 0) {
    std::printf("\nratio ferry / pg_recvlogical (median changes/s): %.2f (goal >= 0.80)\n",
                rate[1] / rate[0]);
  }
  return absl::OkStatus();
}

bool ParseFlag(const std::string& arg, const std::string& name, std::string* value) {
  const std::string prefix = absl::StrCat("--", name, "=");
  if (!absl::StartsWith(arg, prefix)) return false;
  *value = arg.substr(prefix.size());
  return true;
}

}  // namespace
}  // namespace ferry::bench

int main(int argc, char** argv) {
  ferry::bench::Config config;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    std::string v;
    bool ok = true;
    if (ferry::bench::ParseFlag(arg, "scale", &v)) {
      ok = absl::SimpleAtoi(v, &config.scale) && config.scale > 0;
    } else if (ferry::bench::ParseFlag(arg, "transactions", &v)) {
      ok = absl::SimpleAtoi(v, &config.transactions) && config.transactions > 0;
    } else if (ferry::bench::ParseFlag(arg, "clients", &v)) {
      ok = absl::SimpleAtoi(v, &config.clients) && config.clients > 0;
    } else if (ferry::bench::ParseFlag(arg, "rounds", &v)) {
      ok = absl::SimpleAtoi(v, &config.rounds) && config.rounds > 0;
    } else if (ferry::bench::ParseFlag(arg, "sync_commit_workload", &v)) {
      config.sync_commit_workload = v;
    } else if (ferry::bench::ParseFlag(arg, "only", &v)) {
      config.only = v;
      ok = v == "ferry" || v == "recv";
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: capture_bench [--scale=10] [--transactions=100000] [--clients=4] "
                   "[--rounds=3] [--sync_commit_workload=off|on] [--only=ferry|recv]\n");
      return 2;
    }
  }
  absl::Status s = ferry::bench::Main(config);
  if (!s.ok()) {
    std::fprintf(stderr, "capture_bench: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
