// Crash test over the whole path: a write workload runs on east while east's and west's
// ferryd are SIGKILLed at seeded random points of the workload's progress and restarted.
// Afterwards west must hold
// exactly east's rows (nothing lost, nothing applied twice: a duplicate insert would differ
// or show up as a conflict) - invariants 1 to 3 of DESIGN.md with a database as the oracle.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "tests/e2e/two_regions.h"

namespace ferry::testing {
namespace {

constexpr char kSchema[] = R"sql(
  CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
  CREATE TABLE transfers (id bigint PRIMARY KEY, src int, dst int, amount int);
  INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 50) g;
)sql";

uint64_t Seed() {
  if (const char* s = std::getenv("FERRY_CRASH_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

TEST(CrashE2ETest, SigkillOfEitherDaemonLosesAndDuplicatesNothing) {
  const uint64_t seed = Seed();
  std::cerr << "FERRY_CRASH_SEED=" << seed << "\n";
  std::mt19937_64 rng(seed);
  auto started = TwoRegions::Start({.schema_sql = kSchema});
  ASSERT_TRUE(started.ok()) << started.status();
  TwoRegions& regions = **started;

  // The workload: transfers in multi-statement transactions, each with a unique id.
  constexpr int kTransactions = 1500;
  std::atomic<int> done{0};
  std::atomic<bool> failed{false};
  absl::Mutex progress;  // held while `done` or `finished` changes, so Await sees it
  bool finished = false;
  std::thread workload([&] {
    std::mt19937 wrng(static_cast<uint32_t>(seed));
    for (int i = 1; i <= kTransactions; ++i) {
      const int src = 1 + wrng() % 50, dst = 1 + wrng() % 50, amount = 1 + wrng() % 20;
      absl::Status s =
          regions.pg(Region::kEast)
              .Exec(absl::StrCat("BEGIN;"
                                 "UPDATE accounts SET balance = balance - ",
                                 amount, " WHERE id = ", src, ";",
                                 "UPDATE accounts SET balance = balance + ", amount,
                                 " WHERE id = ", dst, ";", "INSERT INTO transfers VALUES (", i, ",",
                                 src, ",", dst, ",", amount, ");COMMIT;"));
      if (!s.ok()) {
        absl::MutexLock lock(&progress);
        failed = true;
        finished = true;
        ADD_FAILURE() << "workload: " << s;
        return;
      }
      absl::MutexLock lock(&progress);  // wakes the kill rounds waiting on `done`
      done = i;
    }
    absl::MutexLock lock(&progress);
    finished = true;
  });

  // Kill rounds while the workload runs (and, should it end first, against a quiet source).
  // Each kill comes once the workload has committed a seeded random number of further
  // transactions: a point tied to progress, never to wall-clock time.
  auto after_more_commits = [&](int at_least, int spread) {
    const int target =
        std::min(kTransactions, done.load() + at_least + static_cast<int>(rng() % spread));
    absl::MutexLock lock(&progress);
    auto reached = [&] { return done.load() >= target || finished; };
    return progress.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(120));
  };
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds && !failed; ++round) {
    ASSERT_TRUE(after_more_commits(20, 100)) << "the workload stalled in round " << round;
    const Region victim = (rng() % 2 == 0) ? Region::kEast : Region::kWest;
    regions.KillDaemon(victim);
    if (rng() % 3 == 0) {  // sometimes both: the other one dies a few commits later
      ASSERT_TRUE(after_more_commits(1, 20));
      regions.KillDaemon(victim == Region::kEast ? Region::kWest : Region::kEast);
    }
    for (Region r : {Region::kWest, Region::kEast}) {
      if (!regions.running(r)) {
        ASSERT_TRUE(regions.StartDaemon(r).ok()) << "round " << round;
      }
    }
  }
  workload.join();
  ASSERT_FALSE(failed);
  ASSERT_EQ(done.load(), kTransactions);

  ASSERT_TRUE(regions.WaitForTablesEqual({"accounts", "transfers"}, absl::Seconds(180)).ok())
      << "seed " << seed;
  auto conflicts = regions.pg(Region::kWest).QueryValue("SELECT count(*) FROM ferry.conflicts");
  ASSERT_TRUE(conflicts.ok()) << conflicts.status();
  EXPECT_EQ(conflicts->value_or(""), "0") << "a change was applied twice (seed " << seed << ")";
  auto total = regions.pg(Region::kWest).QueryValue("SELECT sum(balance) FROM accounts");
  ASSERT_TRUE(total.ok());
  EXPECT_EQ(total->value_or(""), "50000");
}

}  // namespace
}  // namespace ferry::testing
