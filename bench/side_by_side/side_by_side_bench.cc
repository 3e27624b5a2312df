// side_by_side_bench: Ferry against native PostgreSQL 15 logical replication (publication /
// subscription), on this machine, in the same run, reported as ratios. scripts/bench.sh builds
// and runs it; method and caveats in bench/side_by_side/README.md.
//
//   side_by_side_bench [--quick] [--only LIST] [--keep] [--results FILE] [--repo DIR]
//     --quick      small sizes (scale 5 initial load, 20,000-transaction catch-up, 15 s of lag)
//     --only LIST  comma-separated scenarios (default: every default one; see Scenarios())
//     --keep       keep the work directory (clusters, ferryd logs) after the run
//     --results    the RESULTS.md whose side-by-side section is rewritten
//                  (default: bench/RESULTS.md of the source tree this was built from)
//     --repo       the checkout whose commit the section names (default: that source tree)
//   Environment: FERRY_BENCH_TMP, FERRY_BENCH_LOAD_SCALE, FERRY_BENCH_LAG_RATE,
//   FERRY_BENCH_LAG_LOW_RATE, FERRY_BENCH_LAG_SECONDS, FERRY_BENCH_COMMIT_DELAY_US,
//   FERRY_BENCH_COMPRESSION_LEVEL, FERRY_BENCH_FERRYD_CPUS, FERRY_BENCH_PG_HUGE_PAGES,
//   FERRY_BENCH_PERF (1 | dwarf | system | stat), FERRY_BENCH_DEBUG_LOG, as scripts/bench.sh
//   says.
//
// Uses ferryd and ferryctl of the same build (BUILD/bin) and notify_listener (BUILD/bench).
// Exit codes: 0 done, 1 a scenario failed (the work directory is kept), 2 usage.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/side_by_side/cluster_pair.h"
#include "bench/side_by_side/results_section.h"
#include "bench/side_by_side/scenarios.h"
#include "bench/side_by_side/side_by_side.h"
#include "tests/support/temp_dir.h"

namespace {

using namespace ferry::bench::sbs;  // NOLINT: main's own namespace

int Usage() {
  std::vector<std::string> names;
  for (const Scenario& s : Scenarios()) names.push_back(s.name);
  std::fprintf(stderr,
               "usage: side_by_side_bench [--quick] [--only %s] [--keep] [--results FILE] "
               "[--repo DIR]\n",
               absl::StrJoin(names, ",").c_str());
  return 2;
}

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  int n = 0;
  return v != nullptr && absl::SimpleAtoi(v, &n) ? n : fallback;
}
std::string EnvString(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  settings.SetSizes(false);
  settings.repo = FERRY_SOURCE_DIR;
  const std::string exe_dir =
      std::filesystem::canonical("/proc/self/exe").parent_path().string();  // BUILD/bench
  settings.bench_dir = exe_dir;
  settings.bin_dir = std::filesystem::path(exe_dir).parent_path().string() + "/bin";
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const std::string& flag, std::string* out) {
      if (a.rfind(flag + "=", 0) == 0) {
        *out = a.substr(flag.size() + 1);
        return true;
      }
      if (a == flag && i + 1 < argc) {
        *out = argv[++i];
        return true;
      }
      return false;
    };
    if (a == "--quick") {
      settings.SetSizes(true);
    } else if (a == "--keep") {
      settings.keep = true;
    } else if (value("--only", &only) || value("--results", &settings.results_path) ||
               value("--repo", &settings.repo)) {
    } else {
      return Usage();
    }
  }
  if (settings.results_path.empty()) settings.results_path = settings.repo + "/bench/RESULTS.md";
  for (absl::string_view name : absl::StrSplit(only, ',', absl::SkipEmpty())) {
    bool known = false;
    for (const Scenario& s : Scenarios()) known = known || name == s.name;
    if (!known) return Usage();
    settings.only.insert(std::string(name));
  }
  if (settings.only.empty()) {
    for (const Scenario& s : Scenarios()) {
      if (s.by_default) settings.only.insert(s.name);
    }
  }
  settings.load_scale = EnvInt("FERRY_BENCH_LOAD_SCALE", settings.load_scale);
  settings.lag_rate = EnvInt("FERRY_BENCH_LAG_RATE", 2000);
  settings.lag_low_rate = EnvInt("FERRY_BENCH_LAG_LOW_RATE", 200);
  settings.lag_seconds = EnvInt("FERRY_BENCH_LAG_SECONDS", settings.lag_seconds);
  settings.commit_delay_us = EnvString("FERRY_BENCH_COMMIT_DELAY_US");
  settings.debug_log = EnvString("FERRY_BENCH_DEBUG_LOG") == "1";
  settings.compression_level = EnvString("FERRY_BENCH_COMPRESSION_LEVEL");
  settings.ferryd_cpus = EnvString("FERRY_BENCH_FERRYD_CPUS");
  settings.perf = EnvString("FERRY_BENCH_PERF");
  settings.pg_huge_pages = EnvString("FERRY_BENCH_PG_HUGE_PAGES");
  if (!EnvString("FERRY_BENCH_TMP").empty()) settings.tmp_parent = EnvString("FERRY_BENCH_TMP");
  for (const std::string& bin :
       {settings.ferryd(), settings.ferryctl(), settings.notify_listener(), settings.pgbench()}) {
    if (access(bin.c_str(), X_OK) != 0) {
      Log("ERROR: missing " + bin);
      return 1;
    }
  }
  // libpq's defaults for pgbench and every connection without them.
  setenv("PGUSER", "postgres", 1);
  setenv("PGDATABASE", "app", 1);
  setenv("PGCONNECT_TIMEOUT", "10", 1);
  InstallInterruptHandler();

  ferry::testing::TempDir work("ferry-bench", settings.tmp_parent);
  ::chmod(work.path().c_str(), 0755);  // the postgres OS user enters it
  if (settings.keep) work.Keep();
  Figures figures;
  Templates templates;
  Context ctx{settings, work.path(), templates, figures};
  std::vector<std::string> running;  // in the order they run
  for (const Scenario& s : Scenarios()) {
    if (settings.Want(s.name)) running.push_back(s.name);
  }
  Log(absl::StrCat("work directory ", work.path(), "; ", settings.quick ? "quick" : "full",
                   " run: ", absl::StrJoin(running, ",")));

  absl::Status status;
  auto need = [&](const std::string& name) {
    for (const Scenario& s : Scenarios()) {
      if (!settings.Want(s.name)) continue;
      for (const std::string& t : s.templates) {
        if (t == name) return true;
      }
    }
    return false;
  };
  struct TemplateOrder {
    const char* name;
    std::unique_ptr<ferry::testing::PgCluster>* slot;
    int scale;
  };
  for (const TemplateOrder& t : {TemplateOrder{"load", &templates.load, settings.load_scale},
                                 TemplateOrder{"schema", &templates.schema, 0},
                                 TemplateOrder{"base", &templates.base, settings.base_scale}}) {
    if (!status.ok() || !need(t.name)) continue;
    Log(t.scale > 0 ? absl::StrCat("template: pgbench scale ", t.scale, " (", t.name, ")")
                    : "template: schema only");
    auto made = MakeTemplate(settings, work.path(), t.scale);
    if (made.ok()) {
      *t.slot = *std::move(made);
    } else {
      status = made.status();
    }
  }
  for (const Scenario& s : Scenarios()) {
    if (!status.ok() || Interrupted()) break;
    if (!settings.Want(s.name)) continue;
    status = s.run(ctx);
  }
  // A wait that gave up on a signal fails its step: say why.
  if (Interrupted()) status = absl::CancelledError("interrupted by a signal");
  if (!status.ok()) {
    Log("ERROR: " + status.ToString());
    work.Keep();
    Log("work directory kept: " + work.path());
    return 1;
  }
  const std::string section = ResultsSection(settings, figures);
  std::fputs(section.c_str(), stdout);
  if (absl::Status written = WriteResultsSection(settings, section); !written.ok()) {
    Log("ERROR: " + written.ToString());
    return 1;
  }
  Log("results written to " + settings.results_path);
  if (settings.keep) Log("work directory kept: " + work.path());
  return 0;
}
