// The verifier against two real Postgres 15 clusters (a primary and a standby written directly,
// no ferryd): planted differences are each reported exactly, and nothing else.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>

#include "connectors/postgres/common/lsn.h"
#include "consistency/postgres/coordinator.h"
#include "consistency/postgres/primary_cut.h"
#include "consistency/postgres/repair.h"
#include "consistency/testing/two_clusters.h"
#include "tests/support/pg_cluster.h"

namespace ferry::consistency {
namespace {

using ferry::testing::PgCluster;

class PgVerifyTest : public testing::TwoClustersTest {
 protected:
  static VerifyReport Verify(const std::vector<TableName>& tables, int leaf_bits = 4,
                             uint64_t max_keys = 1000) {
    auto mine = VerifySession::Open(primary_->dsn(), std::nullopt);
    EXPECT_TRUE(mine.ok()) << mine.status();
    auto theirs = VerifySession::Open(standby_->dsn(), std::nullopt);
    EXPECT_TRUE(theirs.ok()) << theirs.status();
    LocalStandbyPeer peer(std::move(*theirs));
    VerifyOptions options;
    options.tables = tables;
    options.leaf_bits = leaf_bits;
    options.compare.max_keys = max_keys;
    auto report = RunVerify(**mine, peer, options);
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : VerifyReport{};
  }
};

std::vector<Values> Keys(std::initializer_list<const char*> ids) {
  std::vector<Values> out;
  for (const char* i : ids) out.push_back({std::string(i)});
  return out;
}

TEST_F(PgVerifyTest, IdenticalTablesAreEqual) {
  Both(
      "CREATE TABLE same (id bigint PRIMARY KEY, t text, f float8, n numeric, ts timestamptz, "
      "b bytea, j jsonb, a int[]);"
      "INSERT INTO same SELECT g, 'row ' || g, g / 7.0, g / 3.0, "
      "'2026-01-01'::timestamptz + g * interval '1 minute', "
      "decode(md5(g::text), 'hex'), jsonb_build_object('g', g), ARRAY[g, g + 1] "
      "FROM generate_series(1, 5000) g");
  // Session settings that change values' text on one side only must not matter.
  ASSERT_TRUE(standby_
                  ->Exec("ALTER DATABASE app SET DateStyle = 'SQL, DMY'; "
                         "ALTER DATABASE app SET TimeZone = 'Asia/Tokyo'; "
                         "ALTER DATABASE app SET extra_float_digits = -3")
                  .ok());
  VerifyReport r = Verify({{"public", "same"}});
  ASSERT_EQ(r.tables.size(), 1u);
  EXPECT_TRUE(r.tables[0].equal()) << r.tables[0].changed.size();
  EXPECT_EQ(r.stats.leaves_compared, 0u);
  EXPECT_EQ(r.primary_rows_read, 5000u);
  ASSERT_TRUE(standby_->Exec("ALTER DATABASE app RESET ALL").ok());
}

TEST_F(PgVerifyTest, ACopyScanHashesAsACursorScan) {
  // Values COPY escapes (tab, newline, backslash, a "\N" text), NULL and empty: the whole-table
  // scan (COPY) and a range scan (cursor) hash every row the same.
  Both(
      "CREATE TABLE escaped (id int PRIMARY KEY, t text, b bytea);"
      "INSERT INTO escaped VALUES (1, E'a\\tb', NULL), (2, E'line\\nbreak\\r', ''), "
      "(3, E'back\\\\slash', E'\\\\x00ff'), (4, '\\N', E'\\\\x5c4e'), (5, '', NULL), "
      "(6, NULL, NULL), (7, E'\\b\\f\\v', NULL);"
      "CREATE TABLE escaped_bag (t text);"
      "INSERT INTO escaped_bag VALUES (E'x\\ty'), (E'x\\ty'), ('\\N'), (NULL)");
  auto session = VerifySession::Open(primary_->dsn(), std::nullopt);
  ASSERT_TRUE(session.ok());
  for (const TableSpec& spec :
       {TableSpec{.schema = "public",
       .name = "escaped",
       .columns = {"b", "id", "t"},
       .key_columns = {"id"},
       .leaf_bits = 1},
        TableSpec{.schema = "public", .name = "escaped_bag", .columns = {"t"}, .leaf_bits = 1}}) {
    auto side = PgTableSide::Create(**session, spec);
    ASSERT_TRUE(side.ok()) << side.status();
    ASSERT_TRUE((*side)->BuildIndex(1).ok());
    // From the smallest key: every row, through the cursor.
    const Values first = spec.keyless() ? Values{""} : Values{"0"};
    auto rows = (*side)->RangeRows(KeyRange{.begin = first}, 100);
    ASSERT_TRUE(rows.ok()) << rows.status();
    Digest cursor;
    for (const ScannedRow& r : *rows) cursor.Add(r.row_hash);
    EXPECT_EQ(cursor.count, spec.keyless() ? 4u : 7u);
    EXPECT_EQ((*side)->index().total(), cursor) << spec.name;
  }
  // And the regions agree on them.
  VerifyReport r = Verify({{"public", "escaped"}, {"public", "escaped_bag"}});
  for (const auto& t : r.tables) EXPECT_TRUE(t.equal()) << t.table;
}

TEST(CopyLineTest, SplitsUnescapesAndRefusesMalformedLines) {
  CopyLine line(3);
  ASSERT_TRUE(line.Parse("a\\tb\t\\N\t\\\\N\n").ok());
  EXPECT_EQ(line.field(0), std::optional<absl::string_view>("a\tb"));
  EXPECT_EQ(line.field(1), std::nullopt);
  EXPECT_EQ(line.field(2), std::optional<absl::string_view>("\\N"));
  ASSERT_TRUE(line.Parse("\t\t").ok());  // three empty strings
  EXPECT_EQ(line.field(2), std::optional<absl::string_view>(""));
  EXPECT_EQ(line.Parse("a\tb").code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(line.Parse("a\tb\tc\td").code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(line.Parse("").code(), absl::StatusCode::kDataLoss);
}

TEST_F(PgVerifyTest, PlantedDifferencesAreReportedExactly) {
  Both(
      "CREATE TABLE planted (id int PRIMARY KEY, t text, f float8, n numeric);"
      "INSERT INTO planted SELECT g, 'v' || g, g, g FROM generate_series(1, 3000) g;"
      "UPDATE planted SET t = '' WHERE id = 10; UPDATE planted SET f = 0 WHERE id = 20;"
      "UPDATE planted SET n = 1.0 WHERE id = 30;");
  ASSERT_TRUE(standby_
                  ->Exec("UPDATE planted SET t = 'changed' WHERE id = 5;"
                         "DELETE FROM planted WHERE id = 1500;"
                         "INSERT INTO planted VALUES (4000, 'extra', 0, 0);"
                         "UPDATE planted SET t = NULL WHERE id = 10;"   // NULL vs ''
                         "UPDATE planted SET f = '-0' WHERE id = 20;"   // -0 vs 0
                         "UPDATE planted SET n = 1.00 WHERE id = 30;")  // 1.00 vs 1.0
                  .ok());
  VerifyReport r = Verify({{"public", "planted"}});
  ASSERT_EQ(r.tables.size(), 1u);
  const TableDifferences& d = r.tables[0];
  EXPECT_EQ(d.changed, Keys({"5", "10", "20", "30"}));
  EXPECT_EQ(d.missing, Keys({"1500"}));
  EXPECT_EQ(d.extra, Keys({"4000"}));
  EXPECT_EQ(d.differences(), 6u);
  EXPECT_TRUE(d.schema.empty());
}

TEST_F(PgVerifyTest, FirstAndLastRowOfALeaf) {
  Both(
      "CREATE TABLE leafy (id int PRIMARY KEY, v text);"
      "INSERT INTO leafy SELECT g, 'v' FROM generate_series(1, 2000) g");
  // Find a leaf's first key on the primary (leaf_bits 4, as Verify uses).
  auto session = VerifySession::Open(primary_->dsn(), std::nullopt);
  ASSERT_TRUE(session.ok());
  TableSpec spec{.schema = "public",
                 .name = "leafy",
                 .columns = {"id", "v"},
                 .key_columns = {"id"},
                 .leaf_bits = 4};
  auto side = PgTableSide::Create(**session, spec);
  ASSERT_TRUE(side.ok()) << side.status();
  ASSERT_TRUE((*side)->BuildIndex(4).ok());
  ASSERT_GT((*side)->index().leaves(), 20u);
  const int first = std::stoi(*(*side)->index().start_key(10)[0]);
  const int last_of_next = std::stoi(*(*side)->index().start_key(12)[0]) - 1;
  ASSERT_TRUE(standby_
                  ->Exec("DELETE FROM leafy WHERE id = " + std::to_string(first) +
                         "; UPDATE leafy SET v = 'w' WHERE id = " + std::to_string(last_of_next))
                  .ok());
  VerifyReport r = Verify({{"public", "leafy"}});
  const TableDifferences& d = r.tables[0];
  EXPECT_EQ(d.missing, (std::vector<Values>{{std::to_string(first)}}));
  EXPECT_EQ(d.changed, (std::vector<Values>{{std::to_string(last_of_next)}}));
  EXPECT_EQ(d.differences(), 2u);
}

TEST_F(PgVerifyTest, KeylessTableDuplicatesAreCounted) {
  Both(
      "CREATE TABLE bag (a int, b text);"
      "INSERT INTO bag SELECT g % 50, 'x' FROM generate_series(1, 1000) g;"
      "INSERT INTO bag VALUES (NULL, ''), (NULL, NULL)");
  // The standby loses one copy of (7,'x') (it has 20), has (8,'x') twice more, and NULL
  // where the primary has ''.
  ASSERT_TRUE(standby_
                  ->Exec("DELETE FROM bag WHERE ctid = (SELECT ctid FROM bag WHERE a = 7 LIMIT 1);"
                         "INSERT INTO bag VALUES (8, 'x'), (8, 'x');"
                         "UPDATE bag SET b = NULL WHERE a IS NULL AND b = ''")
                  .ok());
  VerifyReport r = Verify({{"public", "bag"}});
  const TableDifferences& d = r.tables[0];
  EXPECT_TRUE(d.keyless);
  EXPECT_EQ(d.missing_count, 2u);  // one (7,'x'), one (NULL,'')
  EXPECT_EQ(d.extra_count, 3u);    // two (8,'x'), one more (NULL,NULL)
  EXPECT_EQ(d.changed_count, 0u);
}

TEST_F(PgVerifyTest, AColumnOnOneSideIsOneSchemaDifference) {
  Both(
      "CREATE TABLE widened (id int PRIMARY KEY, v text);"
      "INSERT INTO widened SELECT g, 'v' FROM generate_series(1, 500) g");
  ASSERT_TRUE(standby_->Exec("ALTER TABLE widened ADD COLUMN extra int DEFAULT 7").ok());
  ASSERT_TRUE(primary_->Exec("ALTER TABLE widened ADD COLUMN only_here text").ok());
  VerifyReport r = Verify({{"public", "widened"}});
  const TableDifferences& d = r.tables[0];
  EXPECT_EQ(d.schema, (std::vector<std::string>{"column only_here missing on the standby",
                                                "column extra extra on the standby"}));
  EXPECT_EQ(d.missing_count + d.extra_count + d.changed_count, 0u);
}

TEST_F(PgVerifyTest, DifferentKeyCollationsOrderByC) {
  // The primary orders its text keys by an ICU collation, the standby by "C": 'a' < 'B' on one
  // side, 'B' < 'a' on the other. Compared in the "C" order on both, only the planted
  // difference shows.
  ASSERT_TRUE(primary_
                  ->Exec("CREATE TABLE coll (k text COLLATE \"en-x-icu\" PRIMARY KEY, v int);"
                         "INSERT INTO coll SELECT chr(65 + g % 26) || chr(97 + g / 26 % 26) || g, "
                         "g FROM generate_series(1, 3000) g")
                  .ok());
  ASSERT_TRUE(standby_
                  ->Exec("CREATE TABLE coll (k text COLLATE \"C\" PRIMARY KEY, v int);"
                         "INSERT INTO coll SELECT chr(65 + g % 26) || chr(97 + g / 26 % 26) || g, "
                         "g FROM generate_series(1, 3000) g;"
                         "UPDATE coll SET v = -1 WHERE v = 1234")
                  .ok());
  auto key = primary_->QueryValue("SELECT k FROM coll WHERE v = 1234");
  ASSERT_TRUE(key.ok());
  VerifyReport r = Verify({{"public", "coll"}});
  const TableDifferences& d = r.tables[0];
  EXPECT_EQ(d.changed, (std::vector<Values>{{**key}}));
  EXPECT_EQ(d.differences(), 1u);
  ASSERT_EQ(d.notes.size(), 1u);
  EXPECT_NE(d.notes[0].find("COLLATE \"C\""), std::string::npos) << d.notes[0];
}

TEST_F(PgVerifyTest, ATableOnOneSideOnly) {
  ASSERT_TRUE(primary_->Exec("CREATE TABLE lonely_p (id int PRIMARY KEY)").ok());
  ASSERT_TRUE(standby_->Exec("CREATE TABLE lonely_s (id int PRIMARY KEY)").ok());
  VerifyReport r = Verify({{"public", "lonely_p"}, {"public", "lonely_s"}});
  ASSERT_EQ(r.tables.size(), 2u);
  EXPECT_EQ(r.tables[0].schema, (std::vector<std::string>{"table missing on the standby"}));
  EXPECT_EQ(r.tables[1].schema, (std::vector<std::string>{"table extra on the standby"}));
}

TEST_F(PgVerifyTest, CompositeKeysAndHostileKeyText) {
  Both(
      "CREATE TABLE comp (a text, b int, v text, PRIMARY KEY (a, b));"
      "INSERT INTO comp SELECT 'it''s ' || (g % 13), g, 'v' FROM generate_series(1, 2000) g");
  ASSERT_TRUE(standby_->Exec("UPDATE comp SET v = 'w' WHERE b = 77").ok());
  VerifyReport r = Verify({{"public", "comp"}});
  EXPECT_EQ(r.tables[0].changed, (std::vector<Values>{{"it's 12", "77"}}));
  EXPECT_EQ(r.tables[0].differences(), 1u);
}

TEST_F(PgVerifyTest, RangesFromAHostilePeerAreRefused) {
  Both("CREATE TABLE hostile (id int PRIMARY KEY, v text); INSERT INTO hostile VALUES (1, 'a')");
  auto session = VerifySession::Open(standby_->dsn(), std::nullopt);
  ASSERT_TRUE(session.ok());
  // A spec naming a column the table lacks, or an injected name, is refused.
  TableSpec bad{
      .schema = "public", .name = "hostile", .columns = {"id", "nope"}, .key_columns = {"id"}};
  EXPECT_EQ(PgTableSide::Create(**session, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  TableSpec inject{.schema = "public",
                   .name = "hostile; DROP TABLE hostile",
                   .columns = {"id"},
                   .key_columns = {"id"}};
  EXPECT_EQ(PgTableSide::Create(**session, inject).status().code(), absl::StatusCode::kNotFound);
  TableSpec good{.schema = "public",
                 .name = "hostile",
                 .columns = {"id", "v"},
                 .key_columns = {"id"},
                 .leaf_bits = 2};
  auto side = PgTableSide::Create(**session, good);
  ASSERT_TRUE(side.ok()) << side.status();
  ASSERT_TRUE((*side)->BuildIndex(2).ok());
  // Keys of the wrong width, a NULL, a NUL byte, quotes: refused or harmless.
  EXPECT_FALSE((*side)->RangeRows(KeyRange{.begin = Values{"1", "2"}}, 10).ok());
  EXPECT_FALSE((*side)->RangeRows(KeyRange{.begin = Values{std::nullopt}}, 10).ok());
  EXPECT_FALSE((*side)->RangeRows(KeyRange{.begin = Values{std::string("1\0", 2)}}, 10).ok());
  auto quoted = (*side)->RangeDigests({KeyRange{.begin = Values{"1'); DROP TABLE hostile; --"}}});
  EXPECT_FALSE(quoted.ok());  // not an integer: the database refuses it
  auto count = standby_->QueryValue("SELECT count(*) FROM hostile");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(**count, "1");
}

}  // namespace
}  // namespace ferry::consistency

namespace ferry::consistency {
namespace {

TEST_F(PgVerifyTest, RepairSkipsRowsChangedSinceTheCut) {
  Both(
      "CREATE TABLE rep (id int PRIMARY KEY, v text);"
      "INSERT INTO rep SELECT g, 'v' || g FROM generate_series(1, 10) g");
  ASSERT_TRUE(standby_
                  ->Exec("UPDATE rep SET v = 'bad' WHERE id IN (1, 2); DELETE FROM rep "
                         "WHERE id = 3; INSERT INTO rep VALUES (11, 'extra')")
                  .ok());
  TableSpec spec{.schema = "public", .name = "rep", .columns = {"id", "v"}, .key_columns = {"id"}};
  const Hash128 bad1 = HashValues({"1", "bad"});
  std::vector<RepairRow> rows = {
      {{{"1"}, bad1, false}, Values{"1", "v1"}},                        // as at the cut
      {{{"2"}, HashValues({"2", "other"}), false}, Values{"2", "v2"}},  // changed since
      {{{"3"}, std::nullopt, false}, Values{"3", "v3"}},                // still absent
      {{{"11"}, HashValues({"11", "extra"}), true}, std::nullopt},      // delete
  };
  auto counts = RepairOnStandby(standby_->dsn(), spec, rows);
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->applied, 3u);
  EXPECT_EQ(counts->skipped, 1u);
  auto v = standby_->QueryValue("SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM rep");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(**v, "1=v1,2=bad,3=v3,4=v4,5=v5,6=v6,7=v7,8=v8,9=v9,10=v10");
  // Hostile rows: wrong widths, a NUL byte, an unknown column.
  EXPECT_EQ(RepairOnStandby(standby_->dsn(), spec, {{{{"1", "2"}, bad1, false}, Values{"1", "x"}}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RepairOnStandby(standby_->dsn(), spec,
                            {{{{"1"}, bad1, false}, Values{"1", std::string("a\0b", 3)}}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  TableSpec unknown = spec;
  unknown.columns = {"id", "secret"};
  EXPECT_EQ(RepairOnStandby(standby_->dsn(), unknown, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PgVerifyTest, VerifyRepairThenVerifyIsEqual) {
  Both(
      "CREATE TABLE rep2 (id int PRIMARY KEY, v text);"
      "INSERT INTO rep2 SELECT g, 'v' || g FROM generate_series(1, 3000) g");
  ASSERT_TRUE(standby_
                  ->Exec("UPDATE rep2 SET v = 'bad' WHERE id % 500 = 0; DELETE FROM rep2 "
                         "WHERE id = 77; INSERT INTO rep2 VALUES (9999, 'x')")
                  .ok());
  auto mine = VerifySession::Open(primary_->dsn(), std::nullopt);
  auto theirs = VerifySession::Open(standby_->dsn(), std::nullopt);
  ASSERT_TRUE(mine.ok() && theirs.ok());
  LocalStandbyPeer peer(std::move(*theirs), standby_->dsn());
  VerifyOptions options;
  options.tables = {{"public", "rep2"}};
  options.leaf_bits = 4;
  options.repair = true;
  auto report = RunVerify(**mine, peer, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->tables[0].differences(), 8u);
  EXPECT_EQ(report->tables[0].repaired.applied, 8u);
  VerifyReport again = Verify({{"public", "rep2"}});
  EXPECT_TRUE(again.tables[0].equal());
}

TEST_F(PgVerifyTest, ACancelledVerifyStopsInsideAScan) {
  Both(
      "CREATE TABLE long_scan (id int PRIMARY KEY, v text);"
      "INSERT INTO long_scan SELECT g, 'v' FROM generate_series(1, 20000) g");
  auto mine = VerifySession::Open(primary_->dsn(), std::nullopt);
  auto theirs = VerifySession::Open(standby_->dsn(), std::nullopt);
  ASSERT_TRUE(mine.ok() && theirs.ok());
  LocalStandbyPeer peer(std::move(*theirs));
  VerifyOptions options;
  options.tables = {{"public", "long_scan"}};
  std::atomic<int> checks{0};
  // The first check is before the table; the next ones come before and between the scans'
  // statements (on the scans' threads) and from the coordinator watching them.
  options.compare.check_cancelled = [&checks]() -> absl::Status {
    return ++checks >= 3 ? absl::CancelledError("verify cancelled by the caller")
                         : absl::OkStatus();
  };
  auto report = RunVerify(**mine, peer, options);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kCancelled) << report.status();
  EXPECT_NE(report.status().message().find("verify cancelled by the caller"), std::string::npos)
      << report.status();
}

TEST_F(PgVerifyTest, ARateLimitedScanReadsNoFasterThanItsRate) {
  Both(
      "CREATE TABLE slow_scan (id int PRIMARY KEY, v text);"
      "INSERT INTO slow_scan SELECT g, 'v' FROM generate_series(1, 3000) g");
  auto session = VerifySession::Open(primary_->dsn(), std::nullopt);
  ASSERT_TRUE(session.ok());
  TableSpec spec{.schema = "public",
                 .name = "slow_scan",
                 .columns = {"id", "v"},
                 .key_columns = {"id"},
                 .max_rows_per_second = 10000};
  auto side = PgTableSide::Create(**session, spec);
  ASSERT_TRUE(side.ok());
  const absl::Time start = absl::Now();
  ASSERT_TRUE((*side)->BuildIndex(10).ok());
  // 3,000 rows at 10,000 rows/s: at least 0.3 s (a lower bound, whatever the machine's speed).
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(290));
}

TEST_F(PgVerifyTest, ACancelEndsAThrottledScansWait) {
  // At one row a second the first batch of 2,048 rows is due after 34 minutes: a cancel
  // during that wait ends the scan (before, it waited for the whole batch's time).
  Both(
      "CREATE TABLE crawl (id int PRIMARY KEY, v text);"
      "INSERT INTO crawl SELECT g, 'v' FROM generate_series(1, 3000) g");
  auto session = VerifySession::Open(primary_->dsn(), std::nullopt);
  ASSERT_TRUE(session.ok());
  TableSpec spec{.schema = "public",
                 .name = "crawl",
                 .columns = {"id", "v"},
                 .key_columns = {"id"},
                 .max_rows_per_second = 1};
  auto side = PgTableSide::Create(**session, spec);
  ASSERT_TRUE(side.ok());
  std::atomic<int> checks{0};
  (*side)->set_between_batches([&checks]() -> absl::Status {
    return ++checks >= 3 ? absl::CancelledError("verify cancelled by the caller")
                         : absl::OkStatus();
  });
  const absl::Time start = absl::Now();
  EXPECT_EQ((*side)->BuildIndex(10).code(), absl::StatusCode::kCancelled);
  // Not a timing claim: the old wait was 34 minutes; anything near a minute means it is back.
  EXPECT_LT(absl::Now() - start, absl::Minutes(1));
}

TEST_F(PgVerifyTest, ACutSeesExactlyWhatCommittedBeforeIt) {
  ASSERT_TRUE(
      primary_->Exec("CREATE TABLE cut (id int PRIMARY KEY); INSERT INTO cut VALUES (1)").ok());
  auto before = primary_->QueryValue("SELECT pg_current_wal_insert_lsn()::text");
  ASSERT_TRUE(before.ok());
  auto cut = PrimaryCut::Create(primary_->dsn(), "ferry_verify_test", absl::Seconds(30));
  ASSERT_TRUE(cut.ok()) << cut.status();
  ASSERT_TRUE(primary_->Exec("INSERT INTO cut VALUES (2)").ok());  // after the cut
  auto session = VerifySession::Open(primary_->dsn(), (*cut)->snapshot());
  ASSERT_TRUE(session.ok()) << session.status();
  ASSERT_TRUE((*cut)->CommitMarker(primary_->dsn(), "test").ok());
  (*cut)->Release();  // the slot is gone, the imported snapshot stays
  auto slots = primary_->QueryValue("SELECT count(*) FROM pg_replication_slots");
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ(**slots, "0");
  auto r =
      (*session)->connection().Exec("SELECT string_agg(id::text, ',' ORDER BY id) FROM public.cut");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->Get(0, 0), "1");
  // The position is at or after what was written before the slot.
  auto newer = primary_->QueryValue("SELECT '" + pg::FormatLsn((*cut)->position()) +
                                    "'::pg_lsn >= '" + **before + "'::pg_lsn");
  ASSERT_TRUE(newer.ok());
  EXPECT_EQ(**newer, "t");
}

TEST_F(PgVerifyTest, ACutWaitingForARunningTransactionTimesOut) {
  auto blocker = pg::PgConnection::Connect(primary_->dsn());
  ASSERT_TRUE(blocker.ok());
  ASSERT_TRUE((*blocker)->Exec("CREATE TABLE IF NOT EXISTS held (id int)").ok());
  ASSERT_TRUE((*blocker)->Exec("BEGIN; INSERT INTO held VALUES (1)").ok());  // holds an xid
  auto cut = PrimaryCut::Create(primary_->dsn(), "ferry_verify_blocked", absl::Milliseconds(300));
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kDeadlineExceeded) << cut.status();
  EXPECT_NE(cut.status().message().find("running transaction"), std::string::npos);
  ASSERT_TRUE((*blocker)->Exec("COMMIT").ok());
  // Once it ended, a cut is made.
  cut = PrimaryCut::Create(primary_->dsn(), "ferry_verify_blocked", absl::Seconds(30));
  EXPECT_TRUE(cut.ok()) << cut.status();
  EXPECT_EQ(PrimaryCut::Create(primary_->dsn(), "Bad-Name", absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ferry::consistency
