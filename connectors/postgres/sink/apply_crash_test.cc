// SIGKILL during apply at named kill points (engine/base/kill_point.h), many times: after a
// group's statements went out but before its commit, or right after a commit while the other
// workers are mid-group. Each round dies at a seeded random pass of its point, so the kills are
// tied to apply's progress, never to wall-clock time (on a fast machine a timed kill landed
// after all the work was done, and the test tested nothing). After the last run the target must
// equal an independent oracle (the workload simulated in memory), with no conflicts.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "connectors/postgres/testing/transaction_builders.h"
#include "engine/log/durable_log.h"
#include "tests/support/child_process.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

using namespace sink_test;  // NOLINT: test builders
using ::ferry::testing::BuiltBinary;
using ::ferry::testing::ChildProcess;
using ::ferry::testing::PgCluster;
using ::ferry::testing::TempDir;

TEST(ApplyCrashTest, KilledAtNamedPointsEndsEqualToTheOracle) {
  auto pg = PgCluster::Start();
  ASSERT_TRUE(pg.ok()) << pg.status();
  TempDir dir("ferry-apply-crash");
  const v1::Relation kv =
      Relation(1, "public", "kv", {{"k", "integer", true}, {"v", "bigint"}, {"pad", "text"}});
  std::map<int, std::pair<int64_t, std::string>> oracle;
  std::mt19937 rng(20240611);
  std::vector<v1::Transaction> txns;
  for (int t = 0; t < 4000; ++t) {
    std::vector<v1::Change> changes;
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int c = 0; c < n; ++c) {
      const int k = static_cast<int>(rng() % 300);
      const int64_t v = static_cast<int64_t>(rng() % 1000000);
      const std::string pad = std::string(rng() % 40, 'a' + static_cast<char>(rng() % 26));
      auto it = oracle.find(k);
      if (it == oracle.end()) {
        changes.push_back(Insert(1, {absl::StrCat(k), absl::StrCat(v), pad}));
        oracle[k] = {v, pad};
      } else if (rng() % 5 == 0) {
        changes.push_back(Delete(1, {absl::StrCat(k), std::nullopt, std::nullopt}));
        oracle.erase(it);
      } else {
        changes.push_back(Update(1, {absl::StrCat(k), absl::StrCat(v), pad}));
        it->second = {v, pad};
      }
    }
    txns.push_back(Txn({kv}, changes));
  }
  uint64_t last = 0;
  {
    auto log = DurableLog::Open({.path = dir.File("inbound")});
    ASSERT_TRUE(log.ok());
    auto seq = AppendTxns(**log, txns);
    ASSERT_TRUE(seq.ok());
    last = *seq;
  }
  const std::vector<std::string> argv = {BuiltBinary("apply_crash_helper"),
                                         dir.File("inbound"),
                                         (*pg)->dsn(),
                                         "crash",
                                         "3",
                                         absl::StrCat(last)};
  const char* const kPoints[] = {"apply.before_commit", "apply.group_committed"};
  int kills = 0;
  for (int round = 0; round < 40; ++round) {
    // A seeded random pass of a named point (the outcome must not depend on which).
    const std::string point =
        absl::StrCat(kPoints[rng() % 2], "@", 1 + static_cast<int>(rng() % 8));
    auto child = ChildProcess::Spawn(argv, dir.File("helper.log"), {"FERRY_KILL_POINT=" + point});
    ASSERT_TRUE(child.ok()) << child.status();
    const int status = (*child)->Wait();
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) break;  // finished before the point
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "helper failed (status " << status << "), see " << dir.File("helper.log");
    ++kills;
  }
  // Finish without kills.
  auto child = ChildProcess::Spawn(argv, dir.File("helper.log"));
  ASSERT_TRUE(child.ok());
  int status = (*child)->Wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << dir.File("helper.log");
  // 160 groups of at most 25 transactions, at most 8 groups a round: the first rounds always
  // die before the end.
  EXPECT_GE(kills, 10);

  auto rows = (*pg)->Query("SELECT k, v, pad FROM kv ORDER BY k");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), oracle.size());
  size_t i = 0;
  for (const auto& [k, vp] : oracle) {
    const auto& row = (*rows)[i++];
    EXPECT_EQ(*row[0], absl::StrCat(k));
    EXPECT_EQ(*row[1], absl::StrCat(vp.first));
    EXPECT_EQ(*row[2], vp.second);
  }
  auto conflicts = (*pg)->QueryValue("SELECT count(*) FROM ferry.conflicts");
  ASSERT_TRUE(conflicts.ok());
  EXPECT_EQ(**conflicts, "0");
  std::fprintf(stderr, "killed %d times\n", kills);
}

}  // namespace
}  // namespace ferry
