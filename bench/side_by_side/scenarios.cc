#include "bench/side_by_side/scenarios.h"

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/side_by_side/bench_text.h"
#include "bench/side_by_side/cluster_pair.h"
#include "bench/side_by_side/ferry_pair.h"
#include "bench/side_by_side/process_cpu.h"
#include "bench/side_by_side/scenario_steps.h"
#include "engine/base/status_macros.h"
#include "tests/support/fault_proxy.h"

namespace ferry::bench::sbs {
namespace {

using ferry::testing::ChildProcess;
using ferry::testing::FaultProxy;

// The steady lag logs the probes slower than this, with when they committed (the tail's stalls).
constexpr double kSlowProbeMs = 30;

absl::Status Failed(const std::string& what) { return absl::DeadlineExceededError(what); }

// "ferryd east / west / postgres east / west" CPU seconds now (a ferryd not running: 0).
using CpuSplit = std::array<double, 4>;
static_assert(kPgRoles == std::tuple_size_v<CpuSplit>, "FormatSplit formats both");
CpuSplit TakeCpuSplit(ClusterPair& pair, FerryPair* ferry) {
  return {ferry != nullptr ? ProcessCpuSeconds(ferry->pid(Side::kEast)) : 0,
          ferry != nullptr ? ProcessCpuSeconds(ferry->pid(Side::kWest)) : 0,
          ClusterCpuSeconds(pair.east()), ClusterCpuSeconds(pair.west())};
}
// (after - before) / divisor of each, "%.Nf" joined by " / "; with `total`, "; total X" after.
std::string FormatSplit(const CpuSplit& before, const CpuSplit& after, double divisor, int decimals,
                        bool total = false) {
  std::vector<std::string> parts;
  double sum = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    const double v = (after[i] - before[i]) / divisor;
    sum += v;
    parts.push_back(absl::StrFormat("%.*f", decimals, v));
  }
  std::string text = absl::StrJoin(parts, " / ");
  if (total) absl::StrAppend(&text, absl::StrFormat("; total %.*f", decimals, sum));
  return text;
}

// A cluster's CPU by role (ClusterRoleSampler) per `divisor`, as FormatSplit; "?" when unknown.
std::string FormatRoles(const std::optional<std::array<double, kPgRoles>>& seconds,
                        double divisor) {
  if (!seconds) return "?";
  return FormatSplit(std::array<double, kPgRoles>{}, *seconds, divisor, 3);
}

// The source cluster's WAL flushes so far (pg_stat_wal.wal_sync); nullopt when unreadable.
std::optional<double> WalSyncs(ferry::testing::PgCluster& cluster) {
  auto rows = cluster.Query("SELECT wal_sync FROM pg_stat_wal");
  double v = 0;
  if (!rows.ok() || rows->size() != 1 || (*rows)[0].empty() || !(*rows)[0][0] ||
      !absl::SimpleAtod(*(*rows)[0][0], &v)) {
    return std::nullopt;
  }
  return v;
}

// A perf recording of both ferryd when FERRY_BENCH_PERF asks for one.
std::unique_ptr<PerfRecording> RecordPerf(const Context& ctx, ClusterPair& pair, FerryPair& ferry) {
  const std::string dir = pair.dir();
  return std::make_unique<PerfRecording>(
      ctx.settings.perf, dir, ctx.work_dir + "/profiles", dir.substr(dir.rfind('/') + 1),
      std::vector<std::pair<std::string, pid_t>>{{"east", ferry.pid(Side::kEast)},
                                                 {"west", ferry.pid(Side::kWest)}});
}

// ---------------------------------------------------------------------------------------------
// 1. Initial load: a source at load_scale, an empty target; seconds until the target has
// every row (the last statement notification of the three keyed pgbench tables).
absl::Status InitialLoad(Context& ctx, bool ferry_system) {
  const Settings& s = ctx.settings;
  const std::string sys = ferry_system ? "ferry" : "native";
  FERRY_ASSIGN_OR_RETURN(auto pair, ClusterPair::Start(s, ctx.work_dir, "load-" + sys,
                                                       *ctx.templates.load, *ctx.templates.schema));
  FERRY_RETURN_IF_ERROR(pair->WatchTarget());
  std::unique_ptr<FerryPair> ferry;
  std::unique_ptr<PerfRecording> perf;
  // Ferry's configs are written before the clock starts (the old script wrote them after, with
  // six Python processes choosing ports inside Ferry's figure).
  if (ferry_system) {
    FERRY_ASSIGN_OR_RETURN(ferry, FerryPair::Configure(s, *pair, {.snapshot = true}));
  }
  const double t0 = NowSeconds();
  if (!ferry_system) {
    FERRY_RETURN_IF_ERROR(pair->Subscribe(/*copy_data=*/true, pair->east().port()));
  } else {
    FERRY_RETURN_IF_ERROR(ferry->Start(Side::kWest, /*wait=*/false));
    FERRY_RETURN_IF_ERROR(ferry->Start(Side::kEast, /*wait=*/false));
    perf = RecordPerf(ctx, *pair, *ferry);
  }
  const CpuSplit c0 = TakeCpuSplit(*pair, ferry.get());
  const int64_t accounts = int64_t{s.load_scale} * 100000;
  const bool done = WaitUntil(absl::Seconds(3600), absl::Seconds(2), [&] {
    // Cheap first, exact second: the stats counter of inserted rows, then the counts.
    auto ins = pair->west().QueryValue(
        "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables "
        "WHERE relname = 'pgbench_accounts'");
    int64_t n = 0;
    if (!ins.ok() || !absl::SimpleAtoi(ins->value_or(""), &n) || n < accounts) return false;
    return pair->TargetRowsEqual("pgbench_accounts", accounts) &&
           pair->TargetRowsEqual("pgbench_tellers", int64_t{s.load_scale} * 10) &&
           pair->TargetRowsEqual("pgbench_branches", s.load_scale);
  });
  if (!done) return Failed(absl::StrCat("initial load (", sys, ") did not finish"));
  if (perf) perf->Stop();
  absl::SleepFor(absl::Milliseconds(500));  // the last notification precedes the count's view
  std::optional<double> t1;
  for (const char* table : {"pgbench_accounts", "pgbench_tellers", "pgbench_branches"}) {
    auto seen = pair->seen().LastSeen(table);
    if (seen && (!t1 || *seen > *t1)) t1 = seen;
  }
  if (!t1) return Failed("no notification from the target (" + sys + ")");
  ctx.figures.SetNumber("load_" + sys, *t1 - t0);
  const CpuSplit c1 = TakeCpuSplit(*pair, ferry.get());
  ctx.figures.Set("cpu_load_" + sys, FormatSplit(c0, c1, 1, 1));
  Log(absl::StrCat("initial load ", sys,
                   ": CPU seconds (ferryd east / west / postgres east / west): ",
                   *ctx.figures.Get("cpu_load_" + sys)));
  Log(absl::StrFormat("initial load %s: %.1f s", sys, *t1 - t0));
  if (ferry) {
    ctx.figures.Set("load_hwm_east", VmHwmMb(ferry->pid(Side::kEast)));
    ctx.figures.Set("load_hwm_west", VmHwmMb(ferry->pid(Side::kWest)));
    Log(absl::StrCat("initial load: ferryd VmHWM east ", *ctx.figures.Get("load_hwm_east"),
                     " MB, west ", *ctx.figures.Get("load_hwm_west"), " MB"));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// 5. One transaction of big_rows rows on a live pair (after a catch-up): seconds from its
// source commit until the marker after it is visible on the target.
absl::Status BigTransaction(Context& ctx, const std::string& sys, ClusterPair& pair,
                            FerryPair* ferry) {
  const Settings& s = ctx.settings;
  if (ferry != nullptr) {
    ClearHwm(ferry->pid(Side::kEast));
    ClearHwm(ferry->pid(Side::kWest));
  }
  const double t0 = NowSeconds();
  FERRY_RETURN_IF_ERROR(pair.east().Exec(
      absl::StrCat("INSERT INTO big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, ",
                   s.big_rows, ") g")));
  FERRY_ASSIGN_OR_RETURN(auto committed_text,
                         pair.east().QueryValue("SELECT extract(epoch FROM "
                                                "pg_xact_commit_timestamp(xmin)) FROM big "
                                                "WHERE id = 1"));
  double committed = 0;
  if (!absl::SimpleAtod(committed_text.value_or(""), &committed)) {
    return absl::InternalError("no commit timestamp of the big transaction");
  }
  FERRY_ASSIGN_OR_RETURN(const std::string id, pair.InsertMarker());
  if (!WaitUntil(absl::Seconds(1800), absl::Milliseconds(100),
                 [&] { return pair.seen().LastSeen("probe", id).has_value(); })) {
    return Failed("big transaction (" + sys + ") did not arrive");
  }
  const double t1 = *pair.seen().LastSeen("probe", id);
  if (!pair.TargetRowsEqual("big", s.big_rows)) {
    return absl::InternalError("big transaction (" + sys + "): marker visible before it");
  }
  ctx.figures.SetNumber("bigtx_" + sys, t1 - committed);
  Log(absl::StrFormat("big transaction %s: visible %.2f s after its commit (insert took %.2f s)",
                      sys, t1 - committed, committed - t0));
  if (ferry != nullptr) {
    ctx.figures.Set("bigtx_hwm_east", VmHwmMb(ferry->pid(Side::kEast)));
    ctx.figures.Set("bigtx_hwm_west", VmHwmMb(ferry->pid(Side::kWest)));
    Log(absl::StrCat("big transaction: ferryd VmHWM east ", *ctx.figures.Get("bigtx_hwm_east"),
                     " MB, west ", *ctx.figures.Get("bigtx_hwm_west"), " MB"));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// 2/4. Catch-up: replication held, catchup_tx TPC-B transactions, replication started again;
// transactions / (when the marker after them became visible - the restart).
//   kFerryPaused: `ferryctl pause` on east (capture goes on; the clock starts once the slot
//   confirmed everything). kFerryCold: ferryd east stopped (decode, capture, ship and apply
//   are all inside the figure, as for native after ENABLE).
// one_way_ms > 0: a fault proxy in front of the publisher (native) or of west's stream
// listener (Ferry). With `then_big_tx`, the big transaction follows on the live pair.
enum class CatchUpMode { kNative, kFerryPaused, kFerryCold };

absl::Status CatchUp(Context& ctx, CatchUpMode mode, int one_way_ms, bool then_big_tx) {
  const Settings& s = ctx.settings;
  const std::string sys = mode == CatchUpMode::kNative        ? "native"
                          : mode == CatchUpMode::kFerryPaused ? "ferry"
                                                              : "ferrycold";
  const std::string key = absl::StrCat(sys, "_", one_way_ms);
  FERRY_ASSIGN_OR_RETURN(auto pair, ClusterPair::Start(s, ctx.work_dir, "catchup-" + key,
                                                       *ctx.templates.base, *ctx.templates.base));
  FERRY_RETURN_IF_ERROR(pair->WatchTarget());
  std::unique_ptr<FaultProxy> native_proxy;
  std::unique_ptr<FerryPair> ferry;
  if (mode == CatchUpMode::kNative) {
    int source = pair->east().port();
    if (one_way_ms > 0) {
      FERRY_ASSIGN_OR_RETURN(native_proxy, FaultProxy::Start("127.0.0.1", source));
      native_proxy->SetLatency(absl::Milliseconds(one_way_ms));
      source = native_proxy->port();
    }
    FERRY_RETURN_IF_ERROR(pair->Subscribe(/*copy_data=*/false, source));
    if (!WaitUntil(absl::Seconds(60), absl::Milliseconds(200),
                   [&] { return pair->NativeStreaming(); })) {
      return Failed("native subscription did not start");
    }
    FERRY_RETURN_IF_ERROR(pair->west().Exec("ALTER SUBSCRIPTION bench DISABLE"));
    if (!WaitUntil(absl::Seconds(60), absl::Milliseconds(100),
                   [&] { return pair->NativeSlotIdle(); })) {
      return Failed("native slot still active after DISABLE");
    }
  } else {
    FERRY_ASSIGN_OR_RETURN(ferry, StartFerry(ctx, *pair, {.stream_delay_ms = one_way_ms}));
    if (mode == CatchUpMode::kFerryPaused) {
      FERRY_ASSIGN_OR_RETURN(auto paused, ferry->Ctl(Side::kEast, {"pause"}));
      if (paused.exit_code != 0) return absl::InternalError("ferryctl pause: " + paused.output);
    } else {
      ferry->Stop(Side::kEast);
    }
  }
  const std::string pgbench_log = pair->File("pgbench-catchup.log");
  FERRY_ASSIGN_OR_RETURN(int rc, Run(Pgbench(s, *pair, Side::kEast,
                                             {"-n", "-c", absl::StrCat(s.clients), "-j", "2", "-t",
                                              absl::StrCat(s.catchup_tx / s.clients), "app"}),
                                     pgbench_log));
  if (rc != 0) return absl::InternalError("pgbench failed; see " + pgbench_log);
  FERRY_ASSIGN_OR_RETURN(auto lsn, pair->east().QueryValue("SELECT pg_current_wal_lsn()"));
  if (mode == CatchUpMode::kFerryPaused) {
    // Paused: capture goes on; the clock starts once everything written is in east's log.
    const std::string caught_up =
        absl::StrCat("SELECT confirmed_flush_lsn >= '", lsn.value_or("0/0"),
                     "'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'ferry_east'");
    if (!WaitUntil(absl::Seconds(300), absl::Milliseconds(200), [&] {
          auto v = pair->east().QueryValue(caught_up);
          return v.ok() && v->value_or("") == "t";
        })) {
      return Failed("ferry capture did not catch up with " + lsn.value_or("?"));
    }
  }
  // The last transaction: visible => everything before it is (both commit in source order).
  FERRY_ASSIGN_OR_RETURN(const std::string id, pair->InsertMarker());
  const int64_t n = pair->Count(Side::kEast, "pgbench_history");
  std::unique_ptr<PerfRecording> perf;
  if (mode == CatchUpMode::kFerryPaused && one_way_ms == 0) perf = RecordPerf(ctx, *pair, *ferry);
  const CpuSplit c0 = TakeCpuSplit(*pair, ferry.get());
  ClusterRoleSampler east_roles(pair->east()), west_roles(pair->west());
  const double t0 = NowSeconds();
  switch (mode) {
    case CatchUpMode::kNative:
      FERRY_RETURN_IF_ERROR(pair->west().Exec("ALTER SUBSCRIPTION bench ENABLE"));
      break;
    case CatchUpMode::kFerryPaused: {
      FERRY_ASSIGN_OR_RETURN(auto resumed, ferry->Ctl(Side::kEast, {"resume"}));
      if (resumed.exit_code != 0) return absl::InternalError("ferryctl resume: " + resumed.output);
      break;
    }
    case CatchUpMode::kFerryCold:
      FERRY_RETURN_IF_ERROR(ferry->Start(Side::kEast, /*wait=*/false));
      if (one_way_ms == 0) perf = RecordPerf(ctx, *pair, *ferry);
      break;
  }
  if (!WaitUntil(absl::Seconds(1800), absl::Milliseconds(50),
                 [&] { return pair->seen().LastSeen("probe", id).has_value(); })) {
    return Failed("catch-up " + key + " did not finish");
  }
  const double t1 = *pair->seen().LastSeen("probe", id);
  const CpuSplit c1 = TakeCpuSplit(*pair, ferry.get());
  const auto east_cpu = east_roles.Stop(), west_cpu = west_roles.Stop();
  if (perf) perf->Stop();
  const double thousands = static_cast<double>(n) / 1000;
  ctx.figures.Set("cpu_" + key, FormatSplit(c0, c1, thousands, 3));
  ctx.figures.Set("roles_" + key, absl::StrCat(FormatRoles(east_cpu, thousands), "; ",
                                               FormatRoles(west_cpu, thousands)));
  Log(absl::StrCat("catch-up ", key,
                   ": CPU seconds per 1000 transactions (ferryd east / west / postgres east / "
                   "west): ",
                   *ctx.figures.Get("cpu_" + key),
                   "; postgres east; west by process (client backends / walsenders / "
                   "replication workers / the rest): ",
                   *ctx.figures.Get("roles_" + key)));
  if (!pair->TargetRowsEqual("pgbench_history", n)) {
    return absl::InternalError("catch-up " + key + ": marker visible before every transaction");
  }
  ctx.figures.SetNumber("catchup_" + key, static_cast<double>(n) / (t1 - t0));
  Log(absl::StrFormat("catch-up %s: %d transactions in %.2f s = %.0f tx/s", key, n, t1 - t0,
                      static_cast<double>(n) / (t1 - t0)));
  if (ferry) {
    (void)WaitUntil(absl::Seconds(30), absl::Milliseconds(200), [&] { return ferry->UpToDate(); });
    ctx.figures.Set("hwm_east_" + key, VmHwmMb(ferry->pid(Side::kEast)));
    ctx.figures.Set("hwm_west_" + key, VmHwmMb(ferry->pid(Side::kWest)));
    Log(absl::StrCat("catch-up ", key, ": ferryd VmHWM east ", *ctx.figures.Get("hwm_east_" + key),
                     " MB, west ", *ctx.figures.Get("hwm_west_" + key), " MB"));
  }
  if (then_big_tx) FERRY_RETURN_IF_ERROR(BigTransaction(ctx, sys, *pair, ferry.get()));
  ferry.reset();  // both ferryd stopped before the proxy and the clusters
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// 3. Steady lag: pgbench -R `rate` for lag_seconds and a probe row every 10 ms; the lag of a
// probe is when the target's notification for it arrived - its commit time on the source. The
// first 3 s are left out. `tag` suffixes the figures ("_low": the low-rate run).
absl::Status SteadyLag(Context& ctx, bool ferry_system, int rate, const std::string& tag) {
  const Settings& s = ctx.settings;
  const std::string sys = ferry_system ? "ferry" : "native";
  const std::string k = sys + tag;  // the figures' suffix
  FERRY_ASSIGN_OR_RETURN(auto pair, ClusterPair::Start(s, ctx.work_dir, "lag" + tag + "-" + sys,
                                                       *ctx.templates.base, *ctx.templates.base));
  FERRY_RETURN_IF_ERROR(pair->WatchTarget());
  std::unique_ptr<FerryPair> ferry;
  if (!ferry_system) {
    FERRY_RETURN_IF_ERROR(pair->Subscribe(/*copy_data=*/false, pair->east().port()));
    if (!WaitUntil(absl::Seconds(60), absl::Milliseconds(200),
                   [&] { return pair->NativeStreaming(); })) {
      return Failed("native subscription did not start");
    }
  } else {
    FERRY_ASSIGN_OR_RETURN(ferry, StartFerry(ctx, *pair, {}));
  }
  std::ofstream(pair->File("probe.sql")) << "INSERT INTO probe DEFAULT VALUES;\n";
  const double warm_s = 3;
  const double t_start = NowSeconds();
  auto spawn = [&](std::vector<std::string> args, const std::string& log) {
    ferry::testing::SpawnOptions o;
    o.argv = Pgbench(s, *pair, Side::kEast, std::move(args));
    o.output_path = pair->File(log);
    o.kill_with_parent = true;
    return ChildProcess::Spawn(o);
  };
  FERRY_ASSIGN_OR_RETURN(
      auto load, spawn({"-n", "-c", absl::StrCat(s.clients), "-j", "2", "-R", absl::StrCat(rate),
                        "-T", absl::StrCat(s.lag_seconds), "app"},
                       "pgbench-lag.log"));
  FERRY_ASSIGN_OR_RETURN(auto probes,
                         spawn({"-n", "-c", "1", "-R", absl::StrCat(s.probe_rate), "-T",
                                absl::StrCat(s.lag_seconds), "-f", pair->File("probe.sql"), "app"},
                               "pgbench-probe.log"));
  const MachineTicks cpu0 = ReadMachineTicks();
  const StealSampler steal;
  const CpuSplit split0 = TakeCpuSplit(*pair, ferry.get());
  ClusterRoleSampler east_roles(pair->east()), west_roles(pair->west());
  const std::optional<double> syncs0 = WalSyncs(pair->east());
  std::unique_ptr<PerfRecording> perf;
  if (ferry) perf = RecordPerf(ctx, *pair, *ferry);
  const int load_status = load->Wait();
  const int probe_status = probes->Wait();
  if (perf) perf->Stop();
  const MachineTicks cpu1 = ReadMachineTicks();
  if (!WIFEXITED(load_status) || WEXITSTATUS(load_status) != 0) {
    return absl::InternalError("pgbench (lag) failed; see " + pair->File("pgbench-lag.log"));
  }
  if (!WIFEXITED(probe_status) || WEXITSTATUS(probe_status) != 0) {
    return absl::InternalError("pgbench (probe) failed; see " + pair->File("pgbench-probe.log"));
  }
  ctx.figures.Set("lag_cpu_" + k, BusyPercent(cpu0, cpu1));
  const int64_t n = pair->Count(Side::kEast, "probe");
  if (!WaitUntil(absl::Seconds(120), absl::Milliseconds(200),
                 [&] { return pair->TargetRowsEqual("probe", n); })) {
    return Failed("probes did not all arrive (" + sys + ")");
  }
  // CPU seconds per 1000 replicated transactions of everything but pgbench: both clusters
  // (backends, walsender, apply) and both ferryd, until the last probe became visible (after
  // every transaction of the run, as commits apply in order).
  const CpuSplit split1 = TakeCpuSplit(*pair, ferry.get());
  const auto east_cpu = east_roles.Stop(), west_cpu = west_roles.Stop();
  const std::optional<double> syncs1 = WalSyncs(pair->east());
  const std::string log = ReadFile(pair->File("pgbench-lag.log"));
  double ntx = 0;
  (void)absl::SimpleAtod(PgbenchFigure(log, "number of transactions actually processed: "), &ntx);
  const double thousands = (ntx + static_cast<double>(n)) / 1000;
  ctx.figures.Set("lag_cpu1k_" + k, FormatSplit(split0, split1, thousands, 3, /*total=*/true));
  // Each cluster by role: whether a difference in a cluster's figure is its walsender, the
  // apply (Ferry's sessions are client backends, native's a replication worker) or pgbench's
  // own backends.
  ctx.figures.Set("lag_roles_east_" + k, FormatRoles(east_cpu, thousands));
  ctx.figures.Set("lag_roles_west_" + k, FormatRoles(west_cpu, thousands));
  // How many commits share a WAL flush on the source: a backend pays for each flush it does.
  if (syncs0 && syncs1) {
    ctx.figures.Set("lag_walsync_" + k, absl::StrFormat("%.0f", (*syncs1 - *syncs0) / thousands));
  }
  Log(absl::StrCat("steady lag ", sys,
                   ": CPU seconds per 1000 transactions of postgres east / west by process "
                   "(client backends / walsenders / replication workers / the rest): ",
                   *ctx.figures.Get("lag_roles_east_" + k), "; ",
                   *ctx.figures.Get("lag_roles_west_" + k),
                   "; WAL flushes of postgres east "
                   "per 1000 transactions: ",
                   ctx.figures.Get("lag_walsync_" + k).value_or("?")));
  Log(absl::StrCat("steady lag ", sys,
                   ": CPU seconds per 1000 transactions (ferryd east / west / postgres east / "
                   "west; total): ",
                   *ctx.figures.Get("lag_cpu1k_" + k)));
  FERRY_ASSIGN_OR_RETURN(auto source, pair->east().Query("SELECT id, extract(epoch FROM "
                                                         "pg_xact_commit_timestamp(xmin)) FROM "
                                                         "probe"));
  const std::map<std::string, double> seen = pair->seen().FirstSeenByPayload("probe");
  std::vector<double> lags;
  // (lag ms, commit time) of the probes slower than kSlowProbeMs
  std::vector<std::pair<double, double>> slow;
  for (const auto& row : source) {
    double committed = 0;
    if (row.size() != 2 || !row[0] || !row[1] || !absl::SimpleAtod(*row[1], &committed)) continue;
    auto it = seen.find(*row[0]);
    if (it == seen.end() || committed < t_start + warm_s) continue;
    lags.push_back((it->second - committed) * 1000);
    if (lags.back() > kSlowProbeMs) slow.emplace_back(lags.back(), committed);
  }
  if (lags.empty()) return absl::InternalError("no probe measured (" + sys + ")");
  // The tail's probes, by when they committed, to match with the logs of that moment.
  std::sort(slow.begin(), slow.end(), std::greater<>());
  std::string slowest;
  for (size_t i = 0; i < std::min<size_t>(slow.size(), 10); ++i) {
    absl::StrAppend(
        &slowest, i == 0 ? "" : ", ",
        absl::FormatTime("%H:%M:%E3S",
                         absl::FromUnixMicros(static_cast<int64_t>(slow[i].second * 1e6)),
                         absl::UTCTimeZone()),
        absl::StrFormat(" %.1f ms (host took %.0f CPU-ms)", slow[i].first,
                        steal.StolenMs(slow[i].second, slow[i].second + slow[i].first / 1000)));
  }
  if (!slow.empty()) {
    Log(absl::StrFormat("steady lag %s: %d probes over %.0f ms; the slowest committed at (UTC) %s",
                        sys, slow.size(), kSlowProbeMs, slowest));
  }
  std::sort(lags.begin(), lags.end());
  const double p50 = *Percentile(lags, 0.5), p99 = *Percentile(lags, 0.99);  // lags not empty
  ctx.figures.SetNumber("lag_p50_" + k, p50);
  ctx.figures.SetNumber("lag_p99_" + k, p99);
  ctx.figures.SetNumber("lag_max_" + k, lags.back());
  ctx.figures.Set("lag_n_" + k, absl::StrCat(lags.size()));
  const std::string tps = PgbenchFigure(log, "tps = ");
  ctx.figures.Set("lag_tps_" + k, tps.empty() ? "?" : tps);
  Log(absl::StrFormat(
      "steady lag %s at %d tps: p50 %.2f ms, p99 %.2f ms, max %.2f ms over %d probes at %s tps "
      "(machine CPU busy %s%%, taken by the host %s%%)",
      sys, rate, p50, p99, lags.back(), lags.size(), *ctx.figures.Get("lag_tps_" + k),
      *ctx.figures.Get("lag_cpu_" + k), StealPercent(cpu0, cpu1)));
  if (ferry) {
    ctx.figures.Set("lag_hwm_east" + tag, VmHwmMb(ferry->pid(Side::kEast)));
    ctx.figures.Set("lag_hwm_west" + tag, VmHwmMb(ferry->pid(Side::kWest)));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// The registry's functions.

absl::Status LoadScenario(Context& ctx) {
  FERRY_RETURN_IF_ERROR(InitialLoad(ctx, /*ferry_system=*/false));
  return InitialLoad(ctx, /*ferry_system=*/true);
}

absl::Status CatchUpScenario(Context& ctx) {
  const bool big = ctx.settings.Want("bigtx");
  FERRY_RETURN_IF_ERROR(CatchUp(ctx, CatchUpMode::kNative, 0, big));
  FERRY_RETURN_IF_ERROR(CatchUp(ctx, CatchUpMode::kFerryPaused, 0, big));
  return CatchUp(ctx, CatchUpMode::kFerryCold, 0, false);
}

// The big transaction runs on the live pairs of the catch-ups (native and paused Ferry): when
// catchup runs too, it was measured there already.
absl::Status BigTxScenario(Context& ctx) {
  if (ctx.settings.Want("catchup")) return absl::OkStatus();
  FERRY_RETURN_IF_ERROR(CatchUp(ctx, CatchUpMode::kNative, 0, /*then_big_tx=*/true));
  return CatchUp(ctx, CatchUpMode::kFerryPaused, 0, /*then_big_tx=*/true);
}

absl::Status ProxyScenario(Context& ctx) {
  const int delay = ctx.settings.proxy_one_way_ms;
  FERRY_RETURN_IF_ERROR(CatchUp(ctx, CatchUpMode::kNative, delay, false));
  return CatchUp(ctx, CatchUpMode::kFerryPaused, delay, false);
}

absl::Status LagScenario(Context& ctx) {
  const Settings& s = ctx.settings;
  FERRY_RETURN_IF_ERROR(SteadyLag(ctx, false, s.lag_rate, ""));
  FERRY_RETURN_IF_ERROR(SteadyLag(ctx, true, s.lag_rate, ""));
  if (s.lag_low_rate <= 0) return absl::OkStatus();
  FERRY_RETURN_IF_ERROR(SteadyLag(ctx, false, s.lag_low_rate, "_low"));
  return SteadyLag(ctx, true, s.lag_low_rate, "_low");
}

}  // namespace

absl::StatusOr<std::unique_ptr<FerryPair>> StartFerry(const Context& ctx, ClusterPair& pair,
                                                      const FerryPairOptions& options) {
  FERRY_ASSIGN_OR_RETURN(auto ferry, FerryPair::Configure(ctx.settings, pair, options));
  FERRY_RETURN_IF_ERROR(ferry->Start(Side::kWest, /*wait=*/true));
  FERRY_RETURN_IF_ERROR(ferry->Start(Side::kEast, /*wait=*/true));
  if (!WaitUntil(absl::Seconds(60), absl::Milliseconds(200), [&] { return ferry->Connected(); })) {
    return Failed("ferry east did not connect to west");
  }
  return ferry;
}

std::vector<std::string> Pgbench(const Settings& s, ClusterPair& pair, Side side,
                                 std::vector<std::string> args) {
  std::vector<std::string> argv = {
      s.pgbench(), "-h",      "127.0.0.1", "-p", absl::StrCat(pair.cluster(side).port()),
      "-U",        "postgres"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

const std::vector<Scenario>& Scenarios() {
  static const std::vector<Scenario> kScenarios = {
      {"load", LoadScenario, {"load", "schema"}},
      {"catchup", CatchUpScenario, {"base"}},
      {"bigtx", BigTxScenario, {"base"}},
      {"proxy", ProxyScenario, {"base"}},
      {"lag", LagScenario, {"base"}},
      // DR scenarios: Ferry alone (native replication has no switchover to compare with).
      {"switchover", SwitchoverScenario, {"base"}, /*by_default=*/false},
  };
  return kScenarios;
}

}  // namespace ferry::bench::sbs
