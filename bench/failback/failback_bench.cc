// Unplanned failover and failback times (issue #17), over R rounds on two regions on this
// machine: a table of N rows; east's shipping held while it commits C changes (updates, inserts
// and deletes in transactions of 100) that never reach west; east's ferryd SIGKILLed;
//   promote: from `ferryctl promote` on west to the first write west acknowledges (goal: p99 at
//            most 5 s);
//   rejoin:  `ferryctl rejoin` on east, which keeps the C changes in the quarantine, repairs
//            east at one cut (a verify of the whole table) and makes it west's standby (goal:
//            under 60 s for 10,000 changes over 1,000,000 rows);
// then `ferryctl reverse` makes east the primary again for the next round. Patroni with
// pg_rewind or Aurora's managed failover cannot run here, so the ratios are against the goals.
//
//   ./build/bench/failback_bench [--rows 1000000] [--changes 10000] [--rounds 3]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/e2e/two_regions.h"

namespace {

using ferry::testing::Region;
using ferry::testing::TwoRegions;

double Flag(int argc, char** argv, const char* name, double fallback) {
  const std::string prefix = absl::StrCat("--", name, "=");
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (absl::StartsWith(a, prefix)) return std::atof(a.c_str() + prefix.size());
    if (a == absl::StrCat("--", name) && i + 1 < argc) return std::atof(argv[i + 1]);
  }
  return fallback;
}

bool Run(TwoRegions& regions, Region r, const std::vector<std::string>& args, double* seconds) {
  const absl::Time start = absl::Now();
  auto done = regions.Ctl(r, args);
  if (!done.ok() || done->exit_code != 0) {
    std::fprintf(stderr, "ferryctl %s failed: %s\n", args[0].c_str(),
                 done.ok() ? done->output.c_str() : done.status().ToString().c_str());
    return false;
  }
  if (seconds != nullptr) *seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return true;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t rows = static_cast<int64_t>(Flag(argc, argv, "rows", 1000000));
  const int64_t changes = static_cast<int64_t>(Flag(argc, argv, "changes", 10000));
  const int rounds = static_cast<int>(Flag(argc, argv, "rounds", 3));
  ferry::testing::TwoRegionsOptions options;
  options.schema_sql = absl::StrCat(
      "CREATE TABLE items (id bigint PRIMARY KEY, v text, pad text);"
      "INSERT INTO items SELECT g, 'base', repeat('x', 80) FROM generate_series(1, ",
      rows, ") g;");
  options.ferryd_args = {"--drain", "2"};
  const absl::Time loading = absl::Now();
  auto started = TwoRegions::Start(options);
  if (!started.ok()) {
    std::fprintf(stderr, "cannot start the regions: %s\n", started.status().ToString().c_str());
    return 1;
  }
  TwoRegions& regions = **started;
  if (absl::Status s = regions.WaitForTablesEqual({"items"}, absl::Minutes(20)); !s.ok()) {
    std::fprintf(stderr, "initial copy: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("%lld rows copied to west in %.1f s\n", static_cast<long long>(rows),
              absl::ToDoubleSeconds(absl::Now() - loading));

  std::vector<double> promotes, rejoins;
  int64_t next_id = rows + 1;
  for (int round = 1; round <= rounds; ++round) {
    if (!regions.Pause(Region::kEast).ok()) return 1;
    // C changes: 50% updates, 30% inserts, 20% deletes, in transactions of 100.
    int64_t done = 0;
    for (int64_t txn = 0; done < changes; ++txn) {
      const int64_t n = std::min<int64_t>(100, changes - done);
      const int64_t kind = txn % 10;
      std::string sql;
      if (kind < 5) {
        const int64_t from = 1 + (txn * 100 + round * 7919) % (rows - 200);
        sql = absl::StrCat("UPDATE items SET v = 'east-", round, "' WHERE id BETWEEN ", from,
                           " AND ", from + n - 1);
      } else if (kind < 8) {
        sql = absl::StrCat("INSERT INTO items SELECT g, 'east-only', 'x' FROM generate_series(",
                           next_id, ", ", next_id + n - 1, ") g");
        next_id += n;
      } else {
        const int64_t from = 1 + (txn * 100 + round * 104729) % (rows - 200);
        sql = absl::StrCat("DELETE FROM items WHERE id BETWEEN ", from, " AND ", from + n - 1);
      }
      if (absl::Status s = regions.pg(Region::kEast).Exec(sql); !s.ok()) {
        std::fprintf(stderr, "east: %s\n", s.ToString().c_str());
        return 1;
      }
      done += n;
    }
    regions.KillDaemon(Region::kEast);

    const absl::Time promote_started = absl::Now();
    if (!Run(regions, Region::kWest, {"promote"}, nullptr)) return 1;
    while (!regions.pg(Region::kWest)
                .Exec(absl::StrCat("UPDATE items SET v = 'west-", round, "' WHERE id = 1"))
                .ok()) {
      absl::SleepFor(absl::Milliseconds(10));  // polling for the first acknowledged write
    }
    promotes.push_back(absl::ToDoubleSeconds(absl::Now() - promote_started));

    if (!regions.StartDaemon(Region::kEast).ok()) return 1;
    double rejoin = 0;
    if (!Run(regions, Region::kEast, {"rejoin", "--timeout", "600"}, &rejoin)) return 1;
    rejoins.push_back(rejoin);
    double reverse = 0;
    if (!Run(regions, Region::kEast, {"reverse"}, &reverse)) return 1;
    std::printf(
        "round %d: promote %.3f s to the first acknowledged write, rejoin %.1f s "
        "(%lld changes kept, %lld rows verified), reverse back %.1f s\n",
        round, promotes.back(), rejoin, static_cast<long long>(changes),
        static_cast<long long>(rows), reverse);
    std::fflush(stdout);
  }
  std::printf(
      "\npromote over %d rounds: p50 %.3f s  p99 %.3f s   goal p99 <= 5 s: %.2fx of the "
      "goal\nrejoin of %lld changes over %lld rows: p50 %.1f s  max %.1f s   goal < 60 s: "
      "%.2fx of the goal\n",
      rounds, Percentile(promotes, 0.5), Percentile(promotes, 0.99),
      Percentile(promotes, 0.99) / 5.0, static_cast<long long>(changes),
      static_cast<long long>(rows), Percentile(rejoins, 0.5), Percentile(rejoins, 1.0),
      Percentile(rejoins, 1.0) / 60.0);
  return 0;
}
