#include "bench/side_by_side/results_section.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace ferry::bench::sbs {
namespace {

constexpr char kBegin[] = "<!-- side-by-side:begin -->";
constexpr char kEnd[] = "<!-- side-by-side:end -->";

// A command's stdout, trimmed; nullopt when it fails.
std::optional<std::string> Output(const std::string& command) {
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return std::nullopt;
  std::string out;
  char buf[256];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  if (pclose(p) != 0) return std::nullopt;
  return std::string(absl::StripAsciiWhitespace(out));
}

std::string UtcTime(std::time_t t, const char* format) {
  char text[64];
  std::strftime(text, sizeof(text), format, std::gmtime(&t));
  return text;
}

// Reads the figures the way the old script's helpers did (v, f0-f2, rv, meets...).
class Table {
 public:
  explicit Table(const Figures& figures) : f_(figures) {}
  std::string V(const std::string& key) const { return f_.Get(key).value_or("n/a"); }
  std::string F(const std::string& key, int decimals) const {
    auto v = f_.Number(key);
    return v ? absl::StrFormat("%.*f", decimals, *v) : "n/a";
  }
  // a / b to two decimals; "n/a" when either is missing, "?" when b is not positive.
  std::string Ratio(const std::string& a, const std::string& b) const {
    auto x = f_.Number(a), y = f_.Number(b);
    if (!x || !y) return "n/a";
    return *y > 0 ? absl::StrFormat("%.2f", *x / *y) : "?";
  }
  // "yes" when value >= goal, "NO" when not, "?" when unknown.
  static std::string Meets(const std::string& value, double goal) {
    double v = 0;
    if (!absl::SimpleAtod(value, &v)) return "?";
    return v >= goal ? "yes" : "NO";
  }
  static std::string MeetsAtMost(const std::string& value, double goal) {
    double v = 0;
    if (!absl::SimpleAtod(value, &v)) return "?";
    return v <= goal ? "yes" : "NO";
  }
  static std::string MeetsBelow(const std::string& value, double goal) {
    double v = 0;
    if (!absl::SimpleAtod(value, &v)) return "?";
    return v < goal ? "yes" : "NO";
  }
  // The percentage lost from `a` to `b` ("%.1f%%"), or "n/a".
  std::string Drop(const std::string& a, const std::string& b) const {
    auto x = f_.Number(a), y = f_.Number(b);
    if (!x || !y) return "n/a";
    return absl::StrFormat("%.1f%%", 100 * (1 - *y / *x));
  }
  // The larger of two figures, or "" when neither is a number.
  std::string Max(const std::string& a, const std::string& b) const {
    auto x = f_.Number(a), y = f_.Number(b);
    if (!x && !y) return "";
    if (!x || !y) return absl::StrCat(x ? *x : *y);
    return absl::StrCat(std::max(*x, *y));
  }

 private:
  const Figures& f_;
};

}  // namespace

std::string ResultsSection(const Settings& settings, const Figures& figures) {
  const Table t(figures);
  std::string cpu_model = "?";
  double mem_kb = 0;
  {
    std::ifstream cpuinfo("/proc/cpuinfo");
    for (std::string line; std::getline(cpuinfo, line);) {
      if (line.rfind("model name", 0) == 0) {
        cpu_model = std::string(absl::StripAsciiWhitespace(line.substr(line.find(':') + 1)));
        break;
      }
    }
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    while (meminfo >> key && key != "MemTotal:") meminfo.ignore(1 << 10, '\n');
    meminfo >> mem_kb;
  }
  std::string load = "?";
  {
    std::ifstream loadavg("/proc/loadavg");
    std::string a, b, c;
    if (loadavg >> a >> b >> c) load = absl::StrCat(a, " ", b, " ", c);
  }
  // Postgres's default huge_pages (try) takes huge pages when enough are reserved and free, and
  // they move the figures (FINDINGS.md, session 30): the reservation is part of the settings.
  std::string huge_pages = "0";
  {
    std::ifstream reserved("/proc/sys/vm/nr_hugepages");
    reserved >> huge_pages;
  }
  const std::string git = absl::StrCat("git -C '", settings.repo, "' ");
  const std::string commit = Output(git + "rev-parse --short HEAD 2>/dev/null").value_or("?");
  const bool dirty = !Output(git + "diff --quiet 2>/dev/null").has_value();
  struct stat st = {};
  const std::string built = ::stat(settings.ferryd().c_str(), &st) == 0
                                ? UtcTime(st.st_mtime, "%Y-%m-%d %H:%M UTC")
                                : "?";

  // What the run set besides ferryd's defaults (FERRY_BENCH_*), as it changes the figures.
  std::string ferry_config = "default config (4 apply workers)";
  std::vector<std::string> set;
  if (!settings.commit_delay_us.empty()) {
    set.push_back("commit_delay_us " + settings.commit_delay_us);
  }
  if (!settings.compression_level.empty()) {
    set.push_back("compression_level " + settings.compression_level);
  }
  if (settings.debug_log) set.push_back("log_level debug");
  if (!settings.ferryd_cpus.empty()) set.push_back("each ferryd on CPUs " + settings.ferryd_cpus);
  if (!set.empty()) absl::StrAppend(&ferry_config, " but ", absl::StrJoin(set, ", "));

  const int L = settings.proxy_one_way_ms;
  const std::string l = absl::StrCat(L);
  std::vector<std::string> out;
  auto row = [&](std::string line) { out.push_back(std::move(line)); };
  // A row of two figures as they are: native's and Ferry's, no ratio or goal.
  auto figures_row = [&](const std::string& n, const std::string& what, const std::string& native,
                         const std::string& ferry) {
    row(absl::StrCat("| ", n, " | ", what, " | ", t.V(native), " | ", t.V(ferry), " | | | |"));
  };
  row(kBegin);
  row("## Side by side with native logical replication (scripts/bench.sh)");
  row("");
  row(absl::StrCat("Written by `scripts/bench.sh", settings.quick ? " --quick" : "", "` on ",
                   UtcTime(std::time(nullptr), "%Y-%m-%d %H:%M UTC"), ", commit ", commit,
                   dirty ? " (with uncommitted changes)" : "", "; ferryd built ", built, "."));
  row(absl::StrCat("Machine: ", sysconf(_SC_NPROCESSORS_ONLN), " cores (", cpu_model, "), ",
                   absl::StrFormat("%.1f GiB", mem_kb / 1048576), " RAM, load average at the end ",
                   load, " (shared machine: only the ratios"));
  row("mean something). Postgres 15, both clusters with the same settings (fsync on, "
      "synchronous_commit on,");
  row(absl::StrCat("shared_buffers 512MB, track_commit_timestamp on, huge_pages ",
                   settings.pg_huge_pages.empty() ? "try" : settings.pg_huge_pages,
                   " with vm.nr_hugepages ", huge_pages, "). Ferry: ", ferry_config,
                   ", Release build."));
  row("A fresh pair of clusters for every row. Method: bench/side_by_side/README.md.");
  row("");
  row("| # | benchmark | native | Ferry | Ferry / native | goal | met |");
  row("| --- | --- | --- | --- | --- | --- | --- |");
  const std::string r1 = t.Ratio("load_native", "load_ferry");
  row(absl::StrCat(
      "| 1 | initial load, pgbench scale ", settings.load_scale, " (", settings.load_scale * 100000,
      " accounts), seconds until the target has every row | ", t.F("load_native", 1), " s | ",
      t.F("load_ferry", 1), " s | ", r1, "x speed | >= 1.5x | ", Table::Meets(r1, 1.5), " |"));
  const std::string r2 = t.Ratio("catchup_ferry_0", "catchup_native_0");
  row(absl::StrCat("| 2 | catch-up of ", settings.catchup_tx,
                   " TPC-B transactions (Ferry paused: capture went on), tx/s | ",
                   t.F("catchup_native_0", 0), " | ", t.F("catchup_ferry_0", 0), " | ", r2,
                   " | >= 1x (aim 2x) | ", Table::Meets(r2, 1), " |"));
  const std::string r2c = t.Ratio("catchup_ferrycold_0", "catchup_native_0");
  row(
      absl::StrCat("| 2b | the same, ferryd east stopped (decode + capture + ship + apply all in "
                   "the catch-up), tx/s | ",
                   t.F("catchup_native_0", 0), " | ", t.F("catchup_ferrycold_0", 0), " | ", r2c,
                   " | >= 1x | ", Table::Meets(r2c, 1), " |"));
  auto lag_rows = [&](const std::string& n, const std::string& tag, int rate, bool low) {
    const std::string head =
        low ? absl::StrCat("steady lag at ", rate,
                           " tps (a rate this machine sustains with room): p50")
            : absl::StrCat("steady lag at ", rate, " tps: commit-to-visible p50");
    row(absl::StrCat("| ", n, " | ", head, " | ", t.F("lag_p50_native" + tag, 2), " ms | ",
                     t.F("lag_p50_ferry" + tag, 2), " ms | ",
                     t.Ratio("lag_p50_ferry" + tag, "lag_p50_native" + tag), "x the time | | |"));
    row(absl::StrCat("| ", n, " | p99 | ", t.F("lag_p99_native" + tag, 2), " ms | ",
                     t.F("lag_p99_ferry" + tag, 2), " ms | ",
                     t.Ratio("lag_p99_ferry" + tag, "lag_p99_native" + tag),
                     "x the time | Ferry <= 20 ms | ",
                     Table::MeetsAtMost(t.V("lag_p99_ferry" + tag), 20), " |"));
    row(absl::StrCat("| ", n, " | max | ", t.F("lag_max_native" + tag, 2), " ms | ",
                     t.F("lag_max_ferry" + tag, 2), " ms | ",
                     t.Ratio("lag_max_ferry" + tag, "lag_max_native" + tag), "x the time | | |"));
  };
  lag_rows("3", "", settings.lag_rate, false);
  row(absl::StrCat("| 3 | achieved pgbench tps (probes counted) | ", t.V("lag_tps_native"), " (",
                   t.V("lag_n_native"), ") | ", t.V("lag_tps_ferry"), " (", t.V("lag_n_ferry"),
                   ") | | | |"));
  row(absl::StrCat("| 3 | machine CPU busy during the run | ", t.V("lag_cpu_native"), "% | ",
                   t.V("lag_cpu_ferry"), "% | | | |"));
  row(
      absl::StrCat("| 3 | CPU seconds per 1000 transactions, all but pgbench (ferryd east / west "
                   "/ postgres east / west; total) | ",
                   t.V("lag_cpu1k_native"), " | ", t.V("lag_cpu1k_ferry"),
                   " | | Ferry's total <= native's | |"));
  figures_row("3",
              "postgres east by process, CPU s per 1000 transactions (client backends, pgbench's "
              "/ walsenders / replication workers / the rest)",
              "lag_roles_east_native", "lag_roles_east_ferry");
  figures_row("3",
              "postgres west by process (client backends, Ferry's apply sessions / walsenders / "
              "replication workers, native's apply / the rest)",
              "lag_roles_west_native", "lag_roles_west_ferry");
  figures_row("3", "WAL flushes of postgres east per 1000 transactions (pg_stat_wal)",
              "lag_walsync_native", "lag_walsync_ferry");
  if (settings.lag_low_rate > 0) {
    lag_rows("3b", "_low", settings.lag_low_rate, true);
    row(absl::StrCat("| 3b | achieved pgbench tps (probes counted); machine CPU busy | ",
                     t.V("lag_tps_native_low"), " (", t.V("lag_n_native_low"), "); ",
                     t.V("lag_cpu_native_low"), "% | ", t.V("lag_tps_ferry_low"), " (",
                     t.V("lag_n_ferry_low"), "); ", t.V("lag_cpu_ferry_low"), "% | | | |"));
  }
  const std::string drop = t.Drop("catchup_ferry_0", "catchup_ferry_" + l);
  const std::string ndrop = t.Drop("catchup_native_0", "catchup_native_" + l);
  row(absl::StrCat("| 4 | catch-up through a fault proxy, ", 2 * L, " ms round trip, tx/s | ",
                   t.F("catchup_native_" + l, 0), " | ", t.F("catchup_ferry_" + l, 0), " | ",
                   t.Ratio("catchup_ferry_" + l, "catchup_native_" + l), " | | |"));
  row(absl::StrCat("| 4 | drop from the no-latency figure | ", ndrop, " | ", drop,
                   " | | Ferry < 10% | ",
                   Table::MeetsBelow(std::string(absl::StripSuffix(drop, "%")), 10), " |"));
  row(absl::StrCat("| 5 | ferryd peak RSS (VmHWM) east / west, catch-up (row 2) | | ",
                   t.V("hwm_east_ferry_0"), " / ", t.V("hwm_west_ferry_0"),
                   " MB | | <= 256 MB each | ",
                   Table::MeetsAtMost(t.Max("hwm_east_ferry_0", "hwm_west_ferry_0"), 256), " |"));
  row(absl::StrCat(
      "| 5 | ferryd peak RSS east / west, catch-up cold (row 2b) / through the proxy "
      "(row 4) | | ",
      t.V("hwm_east_ferrycold_0"), " / ", t.V("hwm_west_ferrycold_0"), ", ",
      t.V("hwm_east_ferry_" + l), " / ", t.V("hwm_west_ferry_" + l), " MB | | <= 256 MB | |"));
  row(absl::StrCat("| 5 | one transaction of ", settings.big_rows,
                   " rows (~100 B each): seconds from source commit to visible | ",
                   t.F("bigtx_native", 2), " s | ", t.F("bigtx_ferry", 2), " s | ",
                   t.Ratio("bigtx_ferry", "bigtx_native"), "x the time | | |"));
  row(
      absl::StrCat("| 5 | ferryd peak RSS east / west during that transaction (peak reset before "
                   "it) | | ",
                   t.V("bigtx_hwm_east"), " / ", t.V("bigtx_hwm_west"), " MB | | bounded | |"));
  figures_row("1", "CPU seconds of the load: ferryd east / west / postgres east / west",
              "cpu_load_native", "cpu_load_ferry");
  row(
      absl::StrCat("| 2 | CPU seconds per 1000 transactions of the catch-up: ferryd east / west / "
                   "postgres east / west | ",
                   t.V("cpu_native_0"), " | ", t.V("cpu_ferry_0"), " (2b: ", t.V("cpu_ferrycold_0"),
                   ") | | | |"));
  row(
      absl::StrCat("| 2 | the same for postgres east; west by process (client backends / "
                   "walsenders / replication workers / the rest) | ",
                   t.V("roles_native_0"), " | ", t.V("roles_ferry_0"),
                   " (2b: ", t.V("roles_ferrycold_0"), ") | | | |"));
  row(absl::StrCat("| | ferryd peak RSS east / west, initial load; steady lag | | ",
                   t.V("load_hwm_east"), " / ", t.V("load_hwm_west"), "; ", t.V("lag_hwm_east"),
                   " / ", t.V("lag_hwm_west"), " MB | | | |"));
  if (figures.Get("switchover_n")) {  // a DR scenario: only when it ran (--only switchover)
    row(absl::StrCat(
        "| 6 | planned switchover (`ferryctl reverse`) under pgbench -R ", t.V("switchover_rate"),
        ": write-unavailable window p50 / max (the reverse call's median), over ",
        t.V("switchover_n"), " switchovers | | ", t.F("switchover_p50", 3), " / ",
        t.F("switchover_max", 3), " s (", t.F("switchover_reverse_p50", 2),
        " s) | | max <= 2 s (#15) | ", Table::MeetsAtMost(t.V("switchover_max"), 2), " |"));
  }
  row("");
  for (const std::string& note : figures.notes) {
    row(note);
    row("");
  }
  if (std::filesystem::exists(settings.repo + "/bench/side_by_side/FINDINGS.md")) {
    row("Where the time goes and what to change: "
        "[bench/side_by_side/FINDINGS.md](side_by_side/FINDINGS.md).");
    row("");
  }
  row(kEnd);
  return absl::StrJoin(out, "\n") + "\n";
}

absl::Status WriteResultsSection(const Settings& settings, const std::string& section) {
  const std::string& path = settings.results_path;
  std::string text = "# Benchmark results\n";
  if (std::filesystem::exists(path)) text = ReadFile(path);
  const size_t begin = text.find(kBegin);
  const size_t end = begin == std::string::npos ? std::string::npos : text.find(kEnd, begin);
  if (end != std::string::npos) {
    size_t after = end + std::string(kEnd).size();
    if (after < text.size() && text[after] == '\n') ++after;
    text = text.substr(0, begin) + section + text.substr(after);
  } else {
    while (!text.empty() && text.back() == '\n') text.pop_back();
    text += "\n\n" + section;
  }
  const std::string tmp = path + ".tmp-side-by-side";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.good()) return absl::InternalError("cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("rename ", tmp, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace ferry::bench::sbs
