// --repair against two real Postgres 15 clusters (a primary and a standby written directly, no
// ferryd): keyless tables (multisets) repaired copy by copy, hostile keyless repair calls, and
// tables whose schemas differ refused with the DDL that would fix them.
#include "consistency/postgres/repair.h"

#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "absl/strings/str_join.h"
#include "connectors/postgres/common/pg_connection.h"
#include "consistency/postgres/coordinator.h"
#include "consistency/testing/two_clusters.h"
#include "tests/support/pg_cluster.h"

namespace ferry::consistency {
namespace {

using ferry::testing::PgCluster;

class RepairTest : public testing::TwoClustersTest {
 protected:
  // A verify (with --repair when `repair`) of `tables`, leaves of 2^4 rows.
  static VerifyReport Verify(const std::vector<TableName>& tables, bool repair,
                             uint64_t max_keys = 1000) {
    auto mine = VerifySession::Open(primary_->dsn(), std::nullopt);
    EXPECT_TRUE(mine.ok()) << mine.status();
    auto theirs = VerifySession::Open(standby_->dsn(), std::nullopt);
    EXPECT_TRUE(theirs.ok()) << theirs.status();
    if (!mine.ok() || !theirs.ok()) return {};
    LocalStandbyPeer peer(std::move(*theirs), standby_->dsn());
    VerifyOptions options;
    options.tables = tables;
    options.leaf_bits = 4;
    options.repair = repair;
    options.compare.max_keys = max_keys;
    auto report = RunVerify(**mine, peer, options);
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : VerifyReport{};
  }

  // The table's rows as one sorted text (a multiset's identity).
  static std::string Rows(PgCluster& pg, const std::string& table) {
    auto v = pg.QueryValue("SELECT coalesce(string_agg(t::text, '|' ORDER BY t::text), '') FROM " +
                           table + " t");
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() && v->has_value() ? **v : "";
  }
};

TEST_F(RepairTest, ARepairWaitsForTheOriginAnExitingSessionStillHolds) {
  // Postgres 15 lets one session at a time hold the repair's origin; a session that failed half
  // way holds it until its backend exits, a moment after its disconnection. A repair starting
  // meanwhile waits for it instead of failing (a rejoin failed so once: "replication origin
  // with ID 5 is already active").
  Both(
      "CREATE TABLE held (id int PRIMARY KEY, v text);"
      "INSERT INTO held SELECT g, 'v' FROM generate_series(1, 100) g");
  ASSERT_TRUE(standby_->Exec("UPDATE held SET v = 'w' WHERE id = 5").ok());
  auto holder = pg::PgConnection::Connect(standby_->dsn());
  ASSERT_TRUE(holder.ok()) << holder.status();
  ASSERT_TRUE((*holder)
                  ->Exec("SELECT pg_catalog.pg_replication_origin_create('ferry_verify_repair') "
                         "WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_origin "
                         "WHERE roname = 'ferry_verify_repair');"
                         "SELECT pg_catalog.pg_replication_origin_session_setup("
                         "'ferry_verify_repair')")
                  .ok());
  VerifyReport report;
  std::thread repair([&] { report = Verify({{"public", "held"}}, /*repair=*/true); });
  // The repair has tried to take the origin (and is waiting) before the holder goes.
  auto tried = [&] {
    auto n = standby_->QueryValue(
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE "
        "'%origin_session_setup%' AND query NOT LIKE '%pg_stat_activity%' AND pid <> " +
        std::to_string(PQbackendPID((*holder)->raw())));
    return n.ok() && n->has_value() && **n != "0";
  };
  for (absl::Time deadline = absl::Now() + absl::Seconds(30); !tried() && absl::Now() < deadline;
       absl::SleepFor(absl::Milliseconds(20))) {
  }
  EXPECT_TRUE(tried());
  holder->reset();  // disconnects: the origin is free once its backend has exited
  // Connected before the repair ends, to take the origin right after it.
  auto next = pg::PgConnection::Connect(standby_->dsn());
  ASSERT_TRUE(next.ok()) << next.status();
  repair.join();
  // The repair released the origin before it disconnected: a new session takes it at once,
  // without waiting for the repair's backend to exit.
  EXPECT_TRUE(
      (*next)
          ->Exec("SELECT pg_catalog.pg_replication_origin_session_setup('ferry_verify_repair')")
          .ok());
  next->reset();
  ASSERT_EQ(report.tables.size(), 1u);
  EXPECT_EQ(report.tables[0].repaired.applied, 1u);
  EXPECT_TRUE(Verify({{"public", "held"}}, /*repair=*/false).tables[0].equal());
}

TEST_F(RepairTest, KeylessRepairThenVerifyIsEqual) {
  Both(
      "CREATE TABLE bag (a int, b text, n numeric);"
      "INSERT INTO bag SELECT g % 50, 'x', g % 3 FROM generate_series(1, 3000) g;"
      "INSERT INTO bag VALUES (NULL, '', NULL), (NULL, NULL, NULL), (1, 'it''s \"q\"', 1.0)");
  // The standby: copies missing, surplus duplicates, a row only it has, NULL where the primary
  // has '', 1.00 where the primary has 1.0, and every copy of one row gone.
  ASSERT_TRUE(standby_
                  ->Exec("DELETE FROM bag WHERE ctid IN (SELECT ctid FROM bag WHERE a = 7 AND "
                         "n = 1 LIMIT 5);"
                         "INSERT INTO bag VALUES (8, 'x', 2), (8, 'x', 2), (8, 'x', 2);"
                         "INSERT INTO bag VALUES (999, 'only here', 0);"
                         "UPDATE bag SET b = NULL WHERE a IS NULL AND b = '';"
                         "UPDATE bag SET n = 1.00 WHERE b LIKE 'it%';"
                         "DELETE FROM bag WHERE a = 9 AND n = 0")
                  .ok());
  VerifyReport r = Verify({{"public", "bag"}}, /*repair=*/true);
  ASSERT_EQ(r.tables.size(), 1u);
  const TableDifferences& d = r.tables[0];
  EXPECT_TRUE(d.keyless);
  // Missing: 5 (7,x,1), 1 (NULL,'',NULL), 1 (1,it's,1.0), every (9,x,0) copy (20).
  EXPECT_EQ(d.missing_count, 27u);
  // Extra: 3 (8,x,2), 1 (999), 1 more (NULL,NULL,NULL), 1 (1,it's,1.00).
  EXPECT_EQ(d.extra_count, 6u);
  EXPECT_TRUE(d.repair_attempted);
  EXPECT_EQ(d.repaired.applied, 33u);
  EXPECT_EQ(d.repaired.skipped, 0u);
  EXPECT_TRUE(d.repair_note.empty()) << d.repair_note;
  VerifyReport again = Verify({{"public", "bag"}}, false);
  ASSERT_EQ(again.tables.size(), 1u);
  EXPECT_TRUE(again.tables[0].equal())
      << again.tables[0].missing_count << " missing, " << again.tables[0].extra_count << " extra";
  EXPECT_EQ(Rows(*primary_, "bag"), Rows(*standby_, "bag"));
}

TEST_F(RepairTest, KeylessRepairOfAPartitionedTable) {
  // Tuple ids repeat across partitions: the repair deletes by (partition, tuple id).
  Both(
      "CREATE TABLE parts (k int, v text) PARTITION BY RANGE (k);"
      "CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (100);"
      "CREATE TABLE parts_2 PARTITION OF parts FOR VALUES FROM (100) TO (200);"
      "INSERT INTO parts SELECT g % 200, 'v' FROM generate_series(1, 1000) g");
  ASSERT_TRUE(standby_
                  ->Exec("INSERT INTO parts VALUES (5, 'v'), (105, 'v'), (105, 'v');"
                         "DELETE FROM parts WHERE ctid IN (SELECT ctid FROM parts_2 WHERE k = 150 "
                         "LIMIT 2) AND tableoid = 'parts_2'::regclass")
                  .ok());
  VerifyReport r = Verify({{"public", "parts"}}, true);
  ASSERT_EQ(r.tables.size(), 1u);
  EXPECT_EQ(r.tables[0].extra_count, 3u);
  EXPECT_EQ(r.tables[0].missing_count, 2u);
  EXPECT_EQ(r.tables[0].repaired.applied, 5u);
  EXPECT_TRUE(Verify({{"public", "parts"}}, false).tables[0].equal());
  EXPECT_EQ(Rows(*primary_, "parts"), Rows(*standby_, "parts"));
}

TEST_F(RepairTest, KeylessRepairMoreThanMaxKeysRowsTakesTwoPasses) {
  Both("CREATE TABLE many (a int); INSERT INTO many SELECT g FROM generate_series(1, 500) g");
  ASSERT_TRUE(standby_->Exec("DELETE FROM many WHERE a % 10 = 0").ok());  // 50 distinct rows
  VerifyReport first = Verify({{"public", "many"}}, true, /*max_keys=*/20);
  EXPECT_EQ(first.tables[0].missing_count, 50u);
  EXPECT_TRUE(first.tables[0].truncated);
  EXPECT_EQ(first.tables[0].repaired.applied, 20u);
  EXPECT_NE(first.tables[0].repair_note.find("run verify --repair again"), std::string::npos);
  VerifyReport second = Verify({{"public", "many"}}, true, 1000);
  EXPECT_EQ(second.tables[0].missing_count, 30u);
  EXPECT_EQ(second.tables[0].repaired.applied, 30u);
  EXPECT_TRUE(Verify({{"public", "many"}}, false).tables[0].equal());
}

TEST_F(RepairTest, KeylessRepairSkipsRowsWhoseCopiesChangedSinceTheCut) {
  Both("CREATE TABLE drift (a int, b text)");
  ASSERT_TRUE(standby_
                  ->Exec("INSERT INTO drift VALUES (1, 'x'), (1, 'x'), (1, 'x'), (2, 'y'), "
                         "(3, 'z'), (3, 'z')")
                  .ok());
  TableSpec spec{.schema = "public", .name = "drift", .columns = {"a", "b"}};
  auto target = [](const std::string& text, Values values, uint64_t primary, uint64_t standby) {
    RepairRow r;
    r.target.key = {text};
    r.target.standby_row_hash = HashValues(values);
    r.target.remove = primary < standby;
    r.target.primary_copies = primary;
    r.target.standby_copies = standby;
    if (primary > standby) r.values = values;
    return r;
  };
  std::vector<RepairRow> rows = {
      target("(1,x)", {"1", "x"}, 1, 3),  // as at the cut: two copies deleted
      target("(2,y)", {"2", "y"}, 4, 1),  // as at the cut: three copies inserted
      target("(3,z)", {"3", "z"}, 0, 3),  // apply changed it since (two copies now): skipped
      target("(4,w)", {"4", "w"}, 2, 1),  // apply deleted its copy since: skipped
  };
  auto counts = RepairOnStandby(standby_->dsn(), spec, rows);
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->applied, 5u);
  EXPECT_EQ(counts->skipped, 4u);
  EXPECT_EQ(Rows(*standby_, "drift"), "(1,x)|(2,y)|(2,y)|(2,y)|(2,y)|(3,z)|(3,z)");
  // It wrote under the repair's own origin.
  auto origin = standby_->QueryValue(
      "SELECT count(*) FROM pg_replication_origin WHERE roname = 'ferry_verify_repair'");
  ASSERT_TRUE(origin.ok());
  EXPECT_EQ(**origin, "1");
}

TEST_F(RepairTest, AKeylessTableTheStandbyPublishesWithoutAnIdentityIsLeftAsideWithTheFix) {
  Both("CREATE TABLE published_bag (a int); INSERT INTO published_bag VALUES (1), (2)");
  ASSERT_TRUE(standby_
                  ->Exec("CREATE PUBLICATION bag_pub FOR TABLE published_bag;"
                         "INSERT INTO published_bag VALUES (2)")
                  .ok());
  VerifyReport r = Verify({{"public", "published_bag"}}, true);
  ASSERT_EQ(r.tables.size(), 1u);
  EXPECT_EQ(r.tables[0].extra_count, 1u);
  EXPECT_FALSE(r.tables[0].repair_attempted);
  EXPECT_NE(r.tables[0].repair_note.find(
                "ALTER TABLE \"public\".\"published_bag\" REPLICA IDENTITY FULL on the standby"),
            std::string::npos)
      << r.tables[0].repair_note;
  EXPECT_EQ(Rows(*standby_, "published_bag"), "(1)|(2)|(2)");  // nothing written
  ASSERT_TRUE(standby_->Exec("ALTER TABLE published_bag REPLICA IDENTITY FULL").ok());
  EXPECT_EQ(Verify({{"public", "published_bag"}}, true).tables[0].repaired.applied, 1u);
  EXPECT_TRUE(Verify({{"public", "published_bag"}}, false).tables[0].equal());
  ASSERT_TRUE(standby_->Exec("DROP PUBLICATION bag_pub").ok());
}

TEST_F(RepairTest, HostileKeylessRepairCallsAreRefusedAndWriteNothing) {
  Both("CREATE TABLE guarded (a int, b text)");
  ASSERT_TRUE(standby_->Exec("INSERT INTO guarded VALUES (1, 'x')").ok());
  TableSpec spec{.schema = "public", .name = "guarded", .columns = {"a", "b"}};
  auto row = [](Values key, std::optional<Values> values, Hash128 hash, uint64_t p, uint64_t s) {
    RepairRow r;
    r.target.key = std::move(key);
    r.target.standby_row_hash = hash;
    r.target.primary_copies = p;
    r.target.standby_copies = s;
    r.target.remove = p < s;
    r.values = std::move(values);
    return r;
  };
  const Hash128 x = HashValues({"1", "x"});
  auto code = [&](const std::vector<RepairRow>& rows, const TableSpec& s = {}) {
    const TableSpec& use = s.name.empty() ? spec : s;
    return RepairOnStandby(standby_->dsn(), use, rows).status().code();
  };
  using absl::StatusCode;
  // Values that are not the row the hash names (the peer would write a row nobody compared).
  EXPECT_EQ(code({row({"(1,x)"}, Values{"1", "evil"}, x, 2, 1)}), StatusCode::kInvalidArgument);
  // No values to insert, a NULL row text, two texts, a NUL byte, no hash.
  EXPECT_EQ(code({row({"(1,x)"}, std::nullopt, x, 2, 1)}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code({row({std::nullopt}, std::nullopt, x, 0, 1)}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code({row({"(1,x)", "(1,x)"}, std::nullopt, x, 0, 1)}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code({row({std::string("(1,x\0)", 6)}, std::nullopt, x, 0, 1)}),
            StatusCode::kInvalidArgument);
  RepairRow no_hash = row({"(1,x)"}, std::nullopt, x, 0, 1);
  no_hash.target.standby_row_hash.reset();
  EXPECT_EQ(code({no_hash}), StatusCode::kInvalidArgument);
  // The same row twice, copies that agree, and more copies than a call may write.
  EXPECT_EQ(code({row({"(1,x)"}, std::nullopt, x, 0, 1), row({"(1,x)"}, std::nullopt, x, 0, 1)}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code({row({"(1,x)"}, std::nullopt, x, 1, 1)}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code({row({"(1,x)"}, Values{"1", "x"}, x, kMaxRepairCopies + 2, 1)}),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(code({row({"(1,x)"}, Values{"1", "x"}, x, uint64_t{1} << 63, 0),
                  row({"(2,y)"}, Values{"2", "y"}, HashValues({"2", "y"}), uint64_t{1} << 63, 0)}),
            StatusCode::kResourceExhausted);
  // A row text that is SQL: a literal, never code.
  EXPECT_TRUE(RepairOnStandby(standby_->dsn(), spec,
                              {row({"x'); DROP TABLE guarded; --"}, std::nullopt, x, 0, 1)})
                  .ok());
  // A keyless spec with an unknown column, or none.
  TableSpec unknown = spec;
  unknown.columns = {"a", "secret"};
  EXPECT_EQ(code({row({"(1,x)"}, std::nullopt, x, 0, 1)}, unknown), StatusCode::kInvalidArgument);
  TableSpec empty = spec;
  empty.columns.clear();
  EXPECT_EQ(code({row({"(1,x)"}, std::nullopt, x, 0, 1)}, empty), StatusCode::kInvalidArgument);
  EXPECT_EQ(Rows(*standby_, "guarded"), "(1,x)");
}

TEST_F(RepairTest, SchemaDifferencesAreNotRepairedAndNameTheDdl) {
  Both(
      "CREATE TABLE shaped (id int PRIMARY KEY, v text, n numeric(10,2), gone int);"
      "INSERT INTO shaped SELECT g, 'v' || g, g, g FROM generate_series(1, 300) g;"
      "CREATE TABLE fine (id int PRIMARY KEY, v text);"
      "INSERT INTO fine SELECT g, 'v' FROM generate_series(1, 300) g;"
      "CREATE TABLE rekeyed (a int, b int, v text, CONSTRAINT rekeyed_pk PRIMARY KEY (a));"
      "INSERT INTO rekeyed SELECT g, g, 'v' FROM generate_series(1, 100) g");
  ASSERT_TRUE(
      primary_->Exec("ALTER TABLE shaped ADD COLUMN \"Added col\" text COLLATE \"C\"").ok());
  ASSERT_TRUE(standby_
                  ->Exec("ALTER TABLE shaped DROP COLUMN gone;"
                         "ALTER TABLE shaped ADD COLUMN only_standby int;"
                         "ALTER TABLE shaped ALTER COLUMN n TYPE numeric;"
                         "UPDATE shaped SET v = 'bad' WHERE id = 3;"
                         "UPDATE fine SET v = 'bad' WHERE id = 4;"
                         "ALTER TABLE rekeyed DROP CONSTRAINT rekeyed_pk;"
                         "ALTER TABLE rekeyed ADD CONSTRAINT other_pk PRIMARY KEY (a, b)")
                  .ok());
  VerifyReport r = Verify({{"public", "shaped"}, {"public", "fine"}, {"public", "rekeyed"}}, true);
  ASSERT_EQ(r.tables.size(), 3u);
  const TableDifferences& shaped = r.tables[0];
  EXPECT_FALSE(shaped.repair_attempted);
  EXPECT_EQ(shaped.repaired.applied, 0u);
  EXPECT_EQ(shaped.standby_ddl,
            (std::vector<std::string>{
                "ALTER TABLE \"public\".\"shaped\" ADD COLUMN \"gone\" integer",
                "ALTER TABLE \"public\".\"shaped\" ADD COLUMN \"Added col\" text COLLATE \"C\"",
                "ALTER TABLE \"public\".\"shaped\" ALTER COLUMN \"n\" TYPE numeric(10,2) USING "
                "\"n\"::numeric(10,2)",
                "ALTER TABLE \"public\".\"shaped\" DROP COLUMN \"only_standby\""}));
  EXPECT_NE(shaped.repair_note.find("not repaired: the schemas differ; run on the standby"),
            std::string::npos)
      << shaped.repair_note;
  EXPECT_NE(shaped.repair_note.find(absl::StrJoin(shaped.standby_ddl, "; ")), std::string::npos);
  // The other tables of the same verify are repaired.
  EXPECT_EQ(r.tables[1].repaired.applied, 1u);
  const TableDifferences& rekeyed = r.tables[2];
  EXPECT_EQ(rekeyed.standby_ddl,
            (std::vector<std::string>{
                "ALTER TABLE \"public\".\"rekeyed\" DROP CONSTRAINT IF EXISTS \"other_pk\"",
                "ALTER TABLE \"public\".\"rekeyed\" ADD PRIMARY KEY (\"a\")"}));
  // The operator runs the DDL; a second --repair then repairs the rows; a third verify is equal.
  for (const TableDifferences* t : {&shaped, &rekeyed}) {
    ASSERT_TRUE(standby_->Exec(absl::StrJoin(t->standby_ddl, "; ")).ok());
  }
  VerifyReport second = Verify({{"public", "shaped"}, {"public", "rekeyed"}}, true);
  EXPECT_TRUE(second.tables[0].schema.empty());
  EXPECT_TRUE(second.tables[0].repair_attempted);
  EXPECT_TRUE(second.tables[1].equal());
  VerifyReport third =
      Verify({{"public", "shaped"}, {"public", "fine"}, {"public", "rekeyed"}}, false);
  for (const auto& t : third.tables) EXPECT_TRUE(t.equal()) << t.table;
}

TEST_F(RepairTest, ATableOnOneSideIsNotRepairedAndSaysWhatToDo) {
  ASSERT_TRUE(primary_->Exec("CREATE TABLE only_p (id int PRIMARY KEY)").ok());
  ASSERT_TRUE(standby_->Exec("CREATE TABLE only_s (id int PRIMARY KEY)").ok());
  VerifyReport r = Verify({{"public", "only_p"}, {"public", "only_s"}}, true);
  ASSERT_EQ(r.tables.size(), 2u);
  EXPECT_NE(r.tables[0].repair_note.find("create the table on the standby"), std::string::npos)
      << r.tables[0].repair_note;
  EXPECT_NE(r.tables[1].repair_note.find("DROP TABLE public.only_s"), std::string::npos)
      << r.tables[1].repair_note;
}

}  // namespace
}  // namespace ferry::consistency
