// The write-unavailable window of a planned switchover (`ferryctl reverse`) under pgbench load:
// issue #15's figure, measured the side-by-side way (times from the databases).
//
// A probe writer inserts a row tagged with its region into switch_probe every 10 ms on the
// region that takes writes, and moves to the other region when the fence refuses it (SQLSTATE
// 25006). pgbench TPC-B runs on the primary as the load (its clients end at the fence; it is
// started again on the new primary). Each region's own rows carry their real commit times
// there (pg_xact_commit_timestamp of a local transaction), so after the run the rows of both
// regions, ordered by commit time, change region once per switchover: the window is the gap
// between the last commit on the old primary and the first on the new one. Polling and the
// writer's pacing decide when to look and bound the resolution (10 ms), never the figure.
#include <libpq-fe.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "bench/side_by_side/scenario_steps.h"
#include "engine/base/status_macros.h"

namespace ferry::bench::sbs {
namespace {

Side Other(Side s) { return s == Side::kEast ? Side::kWest : Side::kEast; }

// One thread, one connection at a time, paced at `rate` inserts a second.
class ProbeWriter {
 public:
  ProbeWriter(ClusterPair& pair, int rate)
      : dsn_{pair.east().dsn(), pair.west().dsn()},
        every_(absl::Seconds(1.0 / rate)),
        thread_([this] { Run(); }) {}
  ~ProbeWriter() {
    stop_ = true;
    thread_.join();
  }
  Side side() const { return side_.load(); }
  uint64_t errors() const { return errors_.load(); }

 private:
  void Run() {
    Side side = Side::kEast;
    PGconn* conn = nullptr;
    absl::Time next = absl::Now();
    while (!stop_) {
      next += every_;
      absl::SleepFor(next - absl::Now());  // pacing, not synchronisation
      if (conn == nullptr) {
        conn = PQconnectdb(dsn_[side == Side::kEast ? 0 : 1].c_str());
        if (PQstatus(conn) != CONNECTION_OK) {
          PQfinish(conn);
          conn = nullptr;
          continue;
        }
      }
      PGresult* r = PQexec(
          conn,
          absl::StrCat("INSERT INTO switch_probe (region) VALUES ('", Name(side), "')").c_str());
      const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
      const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      const bool fenced = state != nullptr && std::string(state) == "25006";
      PQclear(r);
      if (ok) {
        side_ = side;
      } else if (fenced) {
        side = Other(side);
        PQfinish(conn);
        conn = nullptr;
      } else if (PQstatus(conn) == CONNECTION_BAD) {
        PQfinish(conn);  // a fence ends the sessions; connect again
        conn = nullptr;
      } else {
        ++errors_;
      }
      const absl::Time now = absl::Now();
      if (now > next + absl::Milliseconds(100)) next = now;  // no burst after a stall
    }
    PQfinish(conn);
  }

  const std::string dsn_[2];
  const absl::Duration every_;
  std::atomic<bool> stop_{false};
  std::atomic<Side> side_{Side::kEast};
  std::atomic<uint64_t> errors_{0};
  std::thread thread_;  // last: starts once the rest is built
};

struct Commit {
  double at;
  Side side;
};

// The rows each region wrote itself, with their commit times there.
absl::StatusOr<std::vector<Commit>> LocalCommits(ClusterPair& pair) {
  std::vector<Commit> commits;
  for (Side s : {Side::kEast, Side::kWest}) {
    FERRY_ASSIGN_OR_RETURN(auto rows, pair.cluster(s).Query(absl::StrCat(
                                          "SELECT extract(epoch FROM pg_xact_commit_timestamp("
                                          "xmin)) FROM switch_probe WHERE region = '",
                                          Name(s), "'")));
    for (const auto& row : rows) {
      double at = 0;
      if (row.size() == 1 && row[0] && absl::SimpleAtod(*row[0], &at)) commits.push_back({at, s});
    }
  }
  std::sort(commits.begin(), commits.end(),
            [](const Commit& a, const Commit& b) { return a.at < b.at; });
  return commits;
}

}  // namespace

absl::Status SwitchoverScenario(Context& ctx) {
  const Settings& s = ctx.settings;
  const int switchovers = s.quick ? 3 : 10;
  const int load_rate = 1000;  // issue #15's goal is stated at 1,000 writes a second
  FERRY_ASSIGN_OR_RETURN(auto pair, ClusterPair::Start(s, ctx.work_dir, "switchover",
                                                       *ctx.templates.base, *ctx.templates.base));
  for (Side side : {Side::kEast, Side::kWest}) {
    FERRY_RETURN_IF_ERROR(pair->cluster(side).Exec(
        "CREATE TABLE switch_probe (id bigserial PRIMARY KEY, region text NOT NULL)"));
  }
  FERRY_ASSIGN_OR_RETURN(auto ferry, StartFerry(ctx, *pair, {}));
  std::vector<double> reverse_s;
  {
    ProbeWriter probes(*pair, s.probe_rate);
    Side primary = Side::kEast;
    for (int i = 0; i < switchovers && !Interrupted(); ++i) {
      ferry::testing::SpawnOptions load;
      load.argv = Pgbench(s, *pair, primary,
                          {"-n", "-c", absl::StrCat(s.clients), "-j", "2", "-R",
                           absl::StrCat(load_rate), "-T", "600", "app"});
      load.output_path = pair->File(absl::StrCat("pgbench-switchover-", i + 1, ".log"));
      load.kill_with_parent = true;
      FERRY_ASSIGN_OR_RETURN(auto pgbench, ferry::testing::ChildProcess::Spawn(load));
      absl::SleepFor(absl::Seconds(3));  // the load settles before the switchover
      const absl::Time started = absl::Now();
      FERRY_ASSIGN_OR_RETURN(auto done, ferry->Ctl(primary, {"reverse", "--timeout", "60"},
                                                   /*timeout_s=*/90));
      if (done.exit_code != 0) {
        return absl::InternalError(absl::StrCat("reverse ", i + 1, ": ", done.output));
      }
      reverse_s.push_back(absl::ToDoubleSeconds(absl::Now() - started));
      const Side next = Other(primary);
      if (!WaitUntil(absl::Seconds(30), absl::Milliseconds(50),
                     [&] { return probes.side() == next; })) {
        return absl::DeadlineExceededError(
            absl::StrCat("switchover ", i + 1, ": no write reached ", Name(next)));
      }
      pgbench->Kill(SIGINT);  // its clients ended at the fence, or it is still running
      pgbench->Wait();
      Log(absl::StrFormat("switchover %d %s -> %s: reverse took %.2f s", i + 1, Name(primary),
                          Name(next), reverse_s.back()));
      primary = next;
      absl::SleepFor(absl::Seconds(2));  // writes on the new primary before the next one
    }
    if (probes.errors() > 0) {
      ctx.figures.notes.push_back(absl::StrCat("Switchover: the probe writer met ", probes.errors(),
                                               " unexpected errors."));
    }
  }
  if (Interrupted()) return absl::CancelledError("interrupted");
  FERRY_ASSIGN_OR_RETURN(std::vector<Commit> commits, LocalCommits(*pair));
  std::vector<double> windows;
  for (size_t i = 1; i < commits.size(); ++i) {
    if (commits[i].side != commits[i - 1].side) {
      windows.push_back(commits[i].at - commits[i - 1].at);
    }
  }
  if (static_cast<int>(windows.size()) != switchovers) {
    return absl::InternalError(
        absl::StrCat("the regions' own commits change region ", windows.size(), " times over ",
                     switchovers, " switchovers (writes accepted by both regions at once?)"));
  }
  std::sort(windows.begin(), windows.end());
  std::sort(reverse_s.begin(), reverse_s.end());
  const double p50 = windows[windows.size() / 2];
  ctx.figures.SetNumber("switchover_p50", p50);
  ctx.figures.SetNumber("switchover_max", windows.back());
  ctx.figures.SetNumber("switchover_reverse_p50", reverse_s[reverse_s.size() / 2]);
  ctx.figures.Set("switchover_n", absl::StrCat(windows.size()));
  ctx.figures.Set("switchover_rate", absl::StrCat(load_rate));
  Log(absl::StrFormat(
      "switchover: write-unavailable window p50 %.3f s, max %.3f s over %d switchovers under "
      "pgbench -R %d (reverse took %.2f s at the median)",
      p50, windows.back(), switchovers, load_rate, reverse_s[reverse_s.size() / 2]));
  return absl::OkStatus();
}

}  // namespace ferry::bench::sbs
