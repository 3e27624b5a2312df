#include "consistency/comparison.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>

#include "consistency/testing/memory_table_side.h"

namespace ferry::consistency {
namespace {

using testing::MemoryRow;
using testing::MemoryTableSide;

std::string Key(int i) {
  std::string s = std::to_string(i);
  return std::string(8 - s.size(), '0') + s;  // text order = numeric order
}

MemoryRow Row(int i, const std::string& value = "v") {
  return MemoryRow{{Key(i)}, {Key(i), value + std::to_string(i)}};
}

std::vector<MemoryRow> Rows(int n) {
  std::vector<MemoryRow> rows;
  for (int i = 0; i < n; ++i) rows.push_back(Row(i));
  return rows;
}

struct Result {
  absl::Status status;
  TableDifferences diff;
  CompareStats stats;
};

Result Compare(std::vector<MemoryRow> primary_rows, std::vector<MemoryRow> standby_rows,
               int leaf_bits = 4, CompareOptions options = {}, bool keyless = false) {
  MemoryTableSide primary(std::move(primary_rows));
  MemoryTableSide standby(std::move(standby_rows));
  Result r;
  r.diff.keyless = keyless;
  r.status = primary.BuildIndex(leaf_bits);
  if (r.status.ok()) r.status = standby.BuildIndex(leaf_bits);
  if (r.status.ok()) r.status = CompareTable(primary, standby, options, &r.diff, &r.stats);
  return r;
}

std::vector<Values> Keys(std::initializer_list<int> ids) {
  std::vector<Values> out;
  for (int i : ids) out.push_back({Key(i)});
  return out;
}

TEST(CompareTableTest, IdenticalTablesCostOneDigest) {
  Result r = Compare(Rows(10000), Rows(10000));
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.diff.equal());
  EXPECT_EQ(r.stats.rounds, 1u);
  EXPECT_EQ(r.stats.ranges_compared, 1u);
  EXPECT_EQ(r.stats.leaves_compared, 0u);
}

TEST(CompareTableTest, EmptyTablesAreEqual) {
  Result r = Compare({}, {});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.diff.equal());
}

TEST(CompareTableTest, ReportsChangedMissingAndExtraExactly) {
  auto standby = Rows(5000);
  standby[100] = Row(100, "changed");
  standby.erase(standby.begin() + 2000);
  standby.push_back(Row(7000));
  standby.push_back(MemoryRow{{Key(2500) + "x"}, {Key(2500) + "x", "extra"}});
  Result r = Compare(Rows(5000), standby);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.diff.changed, Keys({100}));
  EXPECT_EQ(r.diff.missing, Keys({2000}));
  ASSERT_EQ(r.diff.extra.size(), 2u);
  EXPECT_EQ(r.diff.extra[0], (Values{Key(2500) + "x"}));
  EXPECT_EQ(r.diff.extra[1], (Values{Key(7000)}));
  EXPECT_EQ(r.diff.differences(), 4u);
  EXPECT_FALSE(r.diff.truncated);
  // Only the differing leaves were read row by row.
  EXPECT_LE(r.stats.leaves_compared, 4u);
}

TEST(CompareTableTest, FirstAndLastRowOfALeafAndOfTheTable) {
  // Find the primary's leaf starts, then plant differences at a leaf's first key (a boundary:
  // the standby without it cuts its leaves elsewhere), at the row before it (the last of the
  // previous leaf), and at the table's first and last rows.
  MemoryTableSide probe(Rows(3000));
  ASSERT_TRUE(probe.BuildIndex(4).ok());
  ASSERT_GT(probe.index().leaves(), 10u);
  const std::string start = *probe.index().start_key(5)[0];
  const int boundary = std::stoi(start);
  auto standby = Rows(3000);
  standby[2999] = Row(2999, "last");
  standby[boundary - 1] = Row(boundary - 1, "before");
  standby.erase(standby.begin() + boundary);
  standby.erase(standby.begin());
  Result r = Compare(Rows(3000), standby);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.diff.missing, Keys({0, boundary}));
  EXPECT_EQ(r.diff.changed, Keys({boundary - 1, 2999}));
  EXPECT_TRUE(r.diff.extra.empty());
}

TEST(CompareTableTest, RowsBeforeTheFirstAndAfterTheLastKey) {
  auto primary = Rows(1000);
  primary.erase(primary.begin());  // keys 1..999
  auto standby = Rows(1001);       // keys 0..1000
  Result r = Compare(primary, standby);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.diff.extra, Keys({0, 1000}));
  EXPECT_EQ(r.diff.differences(), 2u);
}

TEST(CompareTableTest, EmptyPrimaryOrStandby) {
  Result r = Compare({}, Rows(50));
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.diff.extra_count, 50u);
  r = Compare(Rows(50), {});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.diff.missing_count, 50u);
}

TEST(CompareTableTest, KeylessTablesAreMultisets) {
  auto row = [](const std::string& text) { return MemoryRow{{text}, {text}}; };
  std::vector<MemoryRow> primary = {row("(1,a)"), row("(1,a)"), row("(2,b)"), row("(3,c)")};
  std::vector<MemoryRow> standby = {row("(1,a)"), row("(2,b)"), row("(3,c)"), row("(3,c)"),
                                    row("(3,c)")};
  Result r = Compare(primary, standby, 4, {}, /*keyless=*/true);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.diff.missing_count, 1u);  // one of the two (1,a)
  EXPECT_EQ(r.diff.extra_count, 2u);    // two more (3,c)
  EXPECT_EQ(r.diff.changed_count, 0u);
  // The same multiset in another order is equal.
  r = Compare(primary, {row("(3,c)"), row("(1,a)"), row("(2,b)"), row("(1,a)")}, 4, {}, true);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.diff.equal());
}

TEST(CompareTableTest, KeylessDifferencesBecomeRepairTargetsWithTheirCopies) {
  auto row = [](const std::string& text) { return MemoryRow{{text}, {text}}; };
  std::vector<MemoryRow> primary = {row("(1,a)"), row("(1,a)"), row("(2,b)"), row("(3,c)")};
  std::vector<MemoryRow> standby = {row("(1,a)"), row("(2,b)"), row("(3,c)"),
                                    row("(3,c)"), row("(3,c)"), row("(4,d)")};
  Result r = Compare(primary, standby, 4, {}, /*keyless=*/true);
  ASSERT_TRUE(r.status.ok()) << r.status;
  std::map<std::string, RepairTarget> targets;
  for (const RepairTarget& t : r.diff.repair_targets) targets[*t.key[0]] = t;
  ASSERT_EQ(targets.size(), 3u);
  EXPECT_EQ(targets["(1,a)"].primary_copies, 2u);
  EXPECT_EQ(targets["(1,a)"].standby_copies, 1u);
  EXPECT_FALSE(targets["(1,a)"].remove);
  EXPECT_EQ(targets["(1,a)"].standby_row_hash, HashValues({"(1,a)"}));
  EXPECT_EQ(targets["(3,c)"].primary_copies, 1u);
  EXPECT_EQ(targets["(3,c)"].standby_copies, 3u);
  EXPECT_TRUE(targets["(3,c)"].remove);
  EXPECT_EQ(targets["(4,d)"].primary_copies, 0u);
  EXPECT_EQ(targets["(4,d)"].standby_copies, 1u);
  EXPECT_TRUE(r.diff.missing.empty() && r.diff.extra.empty());  // keyless: counts only
  EXPECT_FALSE(r.diff.truncated);
  // The cap bounds the targets (distinct rows), never the counts.
  CompareOptions capped;
  capped.max_keys = 1;
  r = Compare(primary, standby, 4, capped, true);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.diff.repair_targets.size(), 1u);
  EXPECT_TRUE(r.diff.truncated);
  EXPECT_EQ(r.diff.missing_count + r.diff.extra_count, 4u);
}

TEST(CompareTableTest, KeylessDuplicatesOfABoundaryRowStayInOneLeaf) {
  // Many copies of every row: leaves never split equal keys, so the standby's answer for a
  // range starting at a duplicated key counts every copy.
  std::vector<MemoryRow> primary, standby;
  for (int i = 0; i < 400; ++i) {
    for (int c = 0; c < 3; ++c) {
      primary.push_back({{Key(i)}, {Key(i)}});
      if (!(i == 123 && c == 0)) standby.push_back({{Key(i)}, {Key(i)}});
    }
  }
  Result r = Compare(primary, standby, 2, {}, true);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.diff.missing_count, 1u);
  EXPECT_EQ(r.diff.differences(), 1u);
}

TEST(CompareTableTest, KeyCapTruncatesButCountsEverything) {
  auto standby = Rows(2000);
  for (int i = 0; i < 2000; i += 2) standby[i] = Row(i, "changed");
  CompareOptions options;
  options.max_keys = 10;
  Result r = Compare(Rows(2000), standby, 4, options);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.diff.changed_count, 1000u);
  EXPECT_EQ(r.diff.changed.size(), 10u);
  EXPECT_TRUE(r.diff.truncated);
}

TEST(CompareTableTest, WorkGrowsWithDifferencesNotTableSize) {
  auto standby = Rows(200000);
  standby[123456] = Row(123456, "changed");
  Result r = Compare(Rows(200000), standby, 10);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.diff.changed, Keys({123456}));
  EXPECT_EQ(r.stats.leaves_compared, 1u);
  EXPECT_LT(r.stats.rows_exchanged, 20000u);        // a couple of leaves of ~1024 rows
  EXPECT_LE(r.stats.ranges_compared, 16u * 4 + 1);  // depth x fanout
}

TEST(CompareTableTest, ADifferingLeafExchangesOnlyItsDifferingRuns) {
  // Leaves of ~1,024 rows cut into runs of ~64: one changed row costs about one run's rows.
  auto standby = Rows(200000);
  standby[123456] = Row(123456, "changed");
  Result r = Compare(Rows(200000), standby, 10);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.diff.changed, Keys({123456}));
  EXPECT_EQ(r.diff.differences(), 1u);
  EXPECT_LT(r.stats.rows_exchanged, 2u * 64 * 4);  // a run on each side (a long one at worst)
}

TEST(CompareTableTest, ADifferingRunIsCutAgainDownToAFewDozenRows) {
  // Leaves of ~16,384 rows: runs of ~1,024 would be exchanged whole with one level of cuts.
  auto standby = Rows(200000);
  const std::vector<int> changed = {17, 60001, 123456, 199999};
  for (int i : changed) standby[i] = Row(i, "changed");
  Result r = Compare(Rows(200000), standby, 14);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.diff.changed, Keys({17, 60001, 123456, 199999}));
  EXPECT_EQ(r.diff.differences(), 4u);
  // Each change costs a run of at most 32 rows on the primary and its like on the standby.
  EXPECT_LE(r.stats.rows_exchanged, 4u * 2 * 40);
}

// Rows whose key starts a run (a sub-leaf boundary at leaf_bits - 4) but not a leaf.
std::vector<int> RunStarts(int n, int leaf_bits) {
  std::vector<int> out;
  for (int i = 0; i < n; ++i) {
    const Hash128 h = HashValues({Key(i)});
    if (IsLeafBoundary(h, leaf_bits - 4) && !IsLeafBoundary(h, leaf_bits)) out.push_back(i);
  }
  return out;
}

TEST(CompareTableTest, RunStartsMissingOrChangedOnTheStandbyAreReportedExactly) {
  // The standby lacks the rows that start some runs (its runs there go on past them), has one
  // changed and one extra right after another run start: each reported exactly.
  const std::vector<int> starts = RunStarts(20000, 8);
  ASSERT_GT(starts.size(), 40u);
  std::vector<MemoryRow> standby;
  std::set<int> missing = {starts[3], starts[4], starts[20]};
  for (int i = 0; i < 20000; ++i) {
    if (missing.contains(i)) continue;
    standby.push_back(i == starts[30] ? Row(i, "changed") : Row(i));
  }
  standby.push_back({{Key(starts[40]) + "x"}, {Key(starts[40]) + "x", "extra"}});
  Result r = Compare(Rows(20000), standby, 8);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.diff.missing, Keys({starts[3], starts[4], starts[20]}));
  EXPECT_EQ(r.diff.changed, Keys({starts[30]}));
  ASSERT_EQ(r.diff.extra.size(), 1u);
  EXPECT_EQ(r.diff.extra[0], Values{Key(starts[40]) + "x"});
  EXPECT_EQ(r.diff.differences(), 5u);
}

// A standby that answers run digests of the wrong number (a hostile or broken peer).
class WrongRunsSide : public MemoryTableSide {
 public:
  using MemoryTableSide::MemoryTableSide;
  absl::StatusOr<std::vector<std::optional<Digest>>> CutDigests(
      const KeyRange&, const std::vector<Hash128>& cuts) override {
    return std::vector<std::optional<Digest>>(cuts.size() + 2, Digest{});
  }
};

TEST(CompareTableTest, AWrongNumberOfRunDigestsIsRefused) {
  MemoryTableSide primary(Rows(5000));
  ASSERT_TRUE(primary.BuildIndex(8).ok());
  auto rows = Rows(5000);
  rows[77] = Row(77, "changed");
  WrongRunsSide standby(rows);
  ASSERT_TRUE(standby.BuildIndex(8).ok());
  TableDifferences diff;
  CompareStats stats;
  EXPECT_EQ(CompareTable(primary, standby, {}, &diff, &stats).code(), absl::StatusCode::kDataLoss);
}

TEST(CompareTableTest, CancellationStopsTheComparison) {
  auto standby = Rows(1000);
  standby[5] = Row(5, "changed");
  CompareOptions options;
  options.check_cancelled = [] { return absl::CancelledError("verify cancelled"); };
  Result r = Compare(Rows(1000), standby, 4, options);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kCancelled);
}

// A standby that answers with the wrong number of digests (a hostile or broken peer).
class ShortAnswerSide : public TableSide {
 public:
  absl::StatusOr<std::vector<Digest>> RangeDigests(const std::vector<KeyRange>&) override {
    return std::vector<Digest>{};
  }
  absl::StatusOr<std::vector<ScannedRow>> RangeRows(const KeyRange&, uint64_t) override {
    return std::vector<ScannedRow>{};
  }
};

TEST(CompareTableTest, AWrongNumberOfDigestsIsRefused) {
  MemoryTableSide primary(Rows(10));
  ASSERT_TRUE(primary.BuildIndex(2).ok());
  ShortAnswerSide standby;
  TableDifferences diff;
  CompareStats stats;
  EXPECT_EQ(CompareTable(primary, standby, {}, &diff, &stats).code(), absl::StatusCode::kDataLoss);
}

TEST(IndexedTableSideTest, ARangeEndingBeforeItBeginsIsRefused) {
  MemoryTableSide side(Rows(100));
  ASSERT_TRUE(side.BuildIndex(2).ok());
  auto d = side.RangeDigests({KeyRange{.begin = Values{Key(50)}, .end = Values{Key(10)}}});
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(IndexedTableSideTest, RangeRowsPastTheLimitIsRefused) {
  MemoryTableSide side(Rows(100));
  ASSERT_TRUE(side.BuildIndex(2).ok());
  EXPECT_EQ(side.RangeRows(KeyRange{}, 10).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(IndexedTableSideTest, DigestOfAnyRangeMatchesItsRows) {
  // Ranges cut at keys the side does not hold (odd keys on a side of even keys).
  std::vector<MemoryRow> rows;
  for (int i = 0; i < 3000; i += 2) rows.push_back(Row(i));
  MemoryTableSide side(rows);
  ASSERT_TRUE(side.BuildIndex(3).ok());
  std::mt19937 rng(7);
  for (int t = 0; t < 200; ++t) {
    int a = static_cast<int>(rng() % 3100), b = static_cast<int>(rng() % 3100);
    if (a > b) std::swap(a, b);
    KeyRange range{.begin = Values{Key(a)}, .end = Values{Key(b)}};
    Digest expected;
    for (int i = 0; i < 3000; i += 2) {
      if (i >= a && i < b) expected.Add(HashValues(Row(i).values));
    }
    auto d = side.RangeDigests({range});
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ((*d)[0], expected) << a << ".." << b;
  }
}

// Small leaves, and leaves so long that their differing runs are cut again, twice.
class RandomDifferencesTest : public ::testing::TestWithParam<int> {};

TEST_P(RandomDifferencesTest, MatchAnOracle) {
  std::mt19937 rng(42);
  for (int round = 0; round < 20; ++round) {
    std::map<int, std::string> p, s;
    const int n = 500 + static_cast<int>(rng() % 3000);
    for (int i = 0; i < n; ++i) {
      p[i] = "v";
      s[i] = "v";
    }
    const int changes = static_cast<int>(rng() % 30);
    for (int c = 0; c < changes; ++c) {
      const int k = static_cast<int>(rng() % (n + 100));
      switch (rng() % 3) {
        case 0:
          s.erase(k);
          break;
        case 1:
          s[k] = "other";
          break;
        default:
          p.erase(k);
          break;
      }
    }
    std::vector<MemoryRow> pr, sr;
    for (auto& [k, v] : p) pr.push_back(Row(k, v));
    for (auto& [k, v] : s) sr.push_back(Row(k, v));
    std::vector<Values> missing, extra, changed;  // in key order
    for (auto& [k, v] : p) {
      if (!s.contains(k)) {
        missing.push_back({Key(k)});
      } else if (s[k] != v) {
        changed.push_back({Key(k)});
      }
    }
    for (auto& [k, v] : s) {
      if (!p.contains(k)) extra.push_back({Key(k)});
    }
    Result r = Compare(pr, sr, GetParam());
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(r.diff.missing_count, missing.size()) << round;
    EXPECT_EQ(r.diff.extra_count, extra.size()) << round;
    EXPECT_EQ(r.diff.changed_count, changed.size()) << round;
    auto sorted = [](std::vector<Values> v) {
      std::sort(v.begin(), v.end());
      return v;
    };
    EXPECT_EQ(sorted(r.diff.missing), missing) << round;
    EXPECT_EQ(sorted(r.diff.extra), extra) << round;
    EXPECT_EQ(sorted(r.diff.changed), changed) << round;
  }
}

INSTANTIATE_TEST_SUITE_P(LeafBits, RandomDifferencesTest, ::testing::Values(3, 10, 13));

}  // namespace
}  // namespace ferry::consistency
