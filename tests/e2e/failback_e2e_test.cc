// Failback end to end (`ferryctl rejoin` and `ferryctl quarantine`, docs/operations.md "Rejoin"
// and "Quarantine"): two Postgres 15 clusters, two ferryd processes. The game day: east commits
// inserts, updates, deletes and a truncate it never ships, dies with its database; west is
// promoted and writes, some to the same keys; east comes back fenced; rejoin keeps exactly east's
// unshipped changes in ferry.quarantine (checked against the test's own record of them), makes
// east equal to west and its standby; a reverse makes east primary again with every write west
// acknowledged; the operator reapplies, is refused on a conflict, and discards.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/e2e/two_regions.h"

namespace ferry::testing {
namespace {

// Asserts an absl::Status is OK, printing it when not.
#define ASSERT_OK(expr)                   \
  do {                                    \
    const absl::Status status_ = (expr);  \
    ASSERT_TRUE(status_.ok()) << status_; \
  } while (0)

constexpr char kSchema[] = R"sql(
  CREATE TABLE items (id bigint PRIMARY KEY, v text);
  INSERT INTO items SELECT g, 'base-' || g FROM generate_series(1, 100) g;
  CREATE TABLE acked (id bigserial PRIMARY KEY, note text);
  INSERT INTO acked (note) SELECT 'before' FROM generate_series(1, 20);
  CREATE TABLE scratch (id int PRIMARY KEY);
  INSERT INTO scratch VALUES (1), (2), (3);
)sql";

const std::vector<std::string> kTables = {"items", "acked", "scratch"};

// One kept change as the test expects it: "op table key".
using Kept = std::multiset<std::string>;

class FailbackE2ETest : public ::testing::Test {
 protected:
  void StartRegions() {
    TwoRegionsOptions options;
    options.schema_sql = kSchema;
    // A primary whose peer is fenced (it refuses the stream) would wait all of its drain.
    options.ferryd_args = {"--drain", "2"};
    auto regions = TwoRegions::Start(options);
    ASSERT_TRUE(regions.ok()) << regions.status();
    regions_ = std::move(*regions);
    ASSERT_OK(regions_->WaitForTablesEqual(kTables, absl::Seconds(120)));
  }
  PgCluster& pg(Region r) { return regions_->pg(r); }

  void Exec(Region r, const std::string& sql) {
    const absl::Status s = pg(r).Exec(sql);
    ASSERT_TRUE(s.ok()) << sql << ": " << s;
  }

  std::string Value(Region r, const std::string& sql) {
    auto rows = pg(r).Query(sql);
    if (!rows.ok() || rows->empty() || (*rows)[0].empty()) return "<error>";
    return (*rows)[0][0].value_or("<null>");
  }

  // East, with its shipping held, commits changes west never receives; returns them as kept
  // changes (the test's truth).
  Kept DivergeEast() {
    EXPECT_TRUE(regions_->Pause(Region::kEast).ok());
    Exec(Region::kEast, "INSERT INTO items VALUES (1001, 'east-only'), (1002, 'east-only')");
    Exec(Region::kEast, "UPDATE items SET v = 'east-upd' WHERE id IN (10, 11)");
    Exec(Region::kEast, "DELETE FROM items WHERE id IN (20, 21)");
    Exec(Region::kEast, "UPDATE items SET v = 'east-conflict' WHERE id = 30");
    Exec(Region::kEast, "INSERT INTO acked (note) VALUES ('east unshipped')");
    Exec(Region::kEast, "TRUNCATE scratch");
    const std::string acked_id =
        Value(Region::kEast, "SELECT id FROM acked WHERE note = 'east unshipped'");
    return {"insert items {\"id\": \"1001\"}",
            "insert items {\"id\": \"1002\"}",
            "update items {\"id\": \"10\"}",
            "update items {\"id\": \"11\"}",
            "delete items {\"id\": \"20\"}",
            "delete items {\"id\": \"21\"}",
            "update items {\"id\": \"30\"}",
            absl::StrCat("insert acked {\"id\": \"", acked_id, "\"}"),
            "truncate scratch "};
  }

  // East's ferryd dies and its database stops; west is promoted.
  void LoseEastAndPromoteWest() {
    regions_->KillDaemon(Region::kEast);
    ASSERT_OK(pg(Region::kEast).Stop(PgCluster::StopMode::kImmediate));
    auto promoted = regions_->Ctl(Region::kWest, {"promote"});
    ASSERT_TRUE(promoted.ok());
    ASSERT_EQ(promoted->exit_code, 0) << promoted->output;
  }

  // East comes back: fenced, its database refusing writes.
  void RestartEast() {
    ASSERT_OK(pg(Region::kEast).StartAgain());
    ASSERT_OK(regions_->StartDaemon(Region::kEast));
    auto east = regions_->PollStatus(Region::kEast, [](const v1::StatusReply& s) {
      return s.fence() == "raised" && s.role() == "primary";
    });
    ASSERT_TRUE(east.ok()) << east.status();
    const absl::Status refused = pg(Region::kEast).Exec("INSERT INTO items VALUES (5000, 'x')");
    EXPECT_NE(refused.message().find("was promoted"), std::string::npos) << refused;
  }

  // What ferry.quarantine on `r` holds, as "op table key".
  Kept Quarantine(Region r) {
    Kept out;
    auto rows = pg(r).Query(
        "SELECT op || ' ' || table_name || ' ' || coalesce(key, '') FROM ferry.quarantine");
    EXPECT_TRUE(rows.ok()) << rows.status();
    if (rows.ok()) {
      for (const auto& row : *rows) out.insert(row[0].value_or(""));
    }
    return out;
  }

  std::string QuarantineField(Region r, const std::string& field, const std::string& where) {
    return Value(r, absl::StrCat("SELECT ", field, " FROM ferry.quarantine WHERE ", where));
  }

  void TearDown() override {
    if (HasFailure() && regions_) std::cerr << regions_->BothLogTails(12000);
  }
  std::unique_ptr<TwoRegions> regions_;
};

TEST_F(FailbackE2ETest, GameDayKeepsEveryUnshippedChangeRepairsAndFailsBack) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  Kept truth = DivergeEast();
  // And one row changed behind Ferry's back, under an origin the capture skips: in no log, so
  // no kept change explains the difference; the rejoin keeps east's row as an anomaly.
  ASSERT_NO_FATAL_FAILURE(Exec(Region::kEast,
                               "SELECT pg_replication_origin_create('ferry_gameday'); "
                               "SELECT pg_replication_origin_session_setup('ferry_gameday'); "
                               "SET session_replication_role = replica; "
                               "UPDATE items SET v = 'unlogged' WHERE id = 60"));
  truth.insert("anomaly items {\"id\": \"60\"}");
  ASSERT_NO_FATAL_FAILURE(LoseEastAndPromoteWest());

  // West takes writes, some to keys east changed too; the test records what west acknowledged.
  ASSERT_NO_FATAL_FAILURE(
      Exec(Region::kWest, "UPDATE items SET v = 'west-upd' WHERE id IN (30, 40)"));
  ASSERT_NO_FATAL_FAILURE(Exec(Region::kWest, "INSERT INTO items VALUES (2001, 'west-new')"));
  ASSERT_NO_FATAL_FAILURE(Exec(Region::kWest, "DELETE FROM items WHERE id = 50"));
  ASSERT_NO_FATAL_FAILURE(Exec(Region::kWest, "INSERT INTO acked (note) VALUES ('west after')"));
  auto west_acked = regions_->TableRows(Region::kWest, "items");
  ASSERT_TRUE(west_acked.ok());

  ASSERT_NO_FATAL_FAILURE(RestartEast());
  auto rejoined = regions_->Ctl(Region::kEast, {"rejoin", "--json"});
  ASSERT_TRUE(rejoined.ok());
  ASSERT_EQ(rejoined->exit_code, 0) << rejoined->output;
  EXPECT_NE(rejoined->output.find("\"quarantined\": 9,"), std::string::npos) << rejoined->output;
  EXPECT_NE(rejoined->output.find("\"transactions\": 6,"), std::string::npos) << rejoined->output;
  EXPECT_NE(rejoined->output.find("\"anomaly_count\": 1,"), std::string::npos) << rejoined->output;

  // Exactly east's unshipped changes, each with both regions' rows.
  EXPECT_EQ(Quarantine(Region::kWest), truth);
  auto row_is = [&](const std::string& field, const std::string& where, const std::string& json) {
    return QuarantineField(
        Region::kWest,
        absl::StrCat(field, "::jsonb IS NOT DISTINCT FROM ",
                     json.empty() ? "NULL" : absl::StrCat("'", json, "'"), "::jsonb"),
        where);
  };
  const std::string key30 = "op = 'update' AND key LIKE '%\"30\"%'";
  EXPECT_EQ(row_is("after", key30, R"({"id": "30", "v": "east-conflict"})"), "t");
  EXPECT_EQ(row_is("old_primary_row", key30, R"({"id": "30", "v": "east-conflict"})"), "t");
  EXPECT_EQ(row_is("current_row", key30, R"({"id": "30", "v": "west-upd"})"), "t");
  const std::string key20 = "op = 'delete' AND key LIKE '%\"20\"%'";
  EXPECT_EQ(row_is("old_primary_row", key20, ""), "t");
  EXPECT_EQ(row_is("current_row", key20, R"({"id": "20", "v": "base-20"})"), "t");
  EXPECT_EQ(row_is("after", key20, ""), "t");
  const std::string key60 = "op = 'anomaly' AND key LIKE '%\"60\"%'";
  EXPECT_EQ(row_is("old_primary_row", key60, R"({"id": "60", "v": "unlogged"})"), "t");
  EXPECT_EQ(row_is("current_row", key60, R"({"id": "60", "v": "base-60"})"), "t");
  EXPECT_EQ(QuarantineField(Region::kWest, "count(DISTINCT status)", "true"), "1");

  // East equals west, is its standby, and applies west's new writes; the quarantine replicated.
  auto east = regions_->Status(Region::kEast);
  ASSERT_TRUE(east.ok());
  EXPECT_EQ(east->role(), "standby");
  EXPECT_EQ(east->state(), "replicating");
  EXPECT_EQ(east->epoch(), 2u);
  ASSERT_OK(regions_->WaitForTablesEqual(kTables, absl::Seconds(60)));
  ASSERT_NO_FATAL_FAILURE(
      Exec(Region::kWest, "INSERT INTO items VALUES (2002, 'west-after-rejoin')"));
  ASSERT_OK(regions_->WaitForTablesEqual(kTables, absl::Seconds(60)));
  ASSERT_OK(regions_->WaitForTablesEqual({"ferry.quarantine"}, absl::Seconds(60)));
  auto verified = regions_->Ctl(Region::kWest, {"verify"});
  ASSERT_TRUE(verified.ok());
  EXPECT_EQ(verified->exit_code, 0) << verified->output;

  // Failback: east is the primary again, nothing west acknowledged lost.
  auto reversed = regions_->Ctl(Region::kEast, {"reverse"});
  ASSERT_TRUE(reversed.ok());
  ASSERT_EQ(reversed->exit_code, 0) << reversed->output;
  auto east_items = regions_->TableRows(Region::kEast, "items");
  ASSERT_TRUE(east_items.ok());
  for (const std::string& row : *west_acked) {
    EXPECT_NE(std::find(east_items->begin(), east_items->end(), row), east_items->end()) << row;
  }
  EXPECT_EQ(Value(Region::kEast, "SELECT count(*) FROM acked WHERE note = 'west after'"), "1");

  // The operator's decisions, on the primary (east now). Reapplying east's inserts of 1001 and
  // 1002 writes them through normal SQL: they replicate to west.
  const std::string insert_id = QuarantineField(Region::kEast, "min(id)", "key LIKE '%\"1001\"%'");
  auto reapplied = regions_->Ctl(
      Region::kEast, {"quarantine", "reapply", insert_id, "--note", "customer confirmed"});
  ASSERT_TRUE(reapplied.ok());
  ASSERT_EQ(reapplied->exit_code, 0) << reapplied->output;
  EXPECT_EQ(Value(Region::kEast, "SELECT v FROM items WHERE id = 1002"), "east-only");
  // Decided once: a second decision on the same transaction is refused.
  auto again = regions_->Ctl(Region::kEast, {"quarantine", "discard", insert_id});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->exit_code, 1) << again->output;
  EXPECT_NE(again->output.find("is decided"), std::string::npos) << again->output;

  // A reapply that conflicts writes nothing and says why: the primary changed key 10 since.
  ASSERT_NO_FATAL_FAILURE(
      Exec(Region::kEast, "UPDATE items SET v = 'changed-since' WHERE id = 10"));
  const std::string update_id = QuarantineField(Region::kEast, "min(id)", "key LIKE '%\"10\"%'");
  auto conflict = regions_->Ctl(Region::kEast, {"quarantine", "reapply", update_id});
  ASSERT_TRUE(conflict.ok());
  EXPECT_EQ(conflict->exit_code, 1) << conflict->output;
  EXPECT_NE(conflict->output.find("changed since the rejoin kept it"), std::string::npos)
      << conflict->output;
  EXPECT_EQ(Value(Region::kEast, "SELECT v FROM items WHERE id = 11"), "base-11");
  auto discarded = regions_->Ctl(Region::kEast, {"quarantine", "discard", update_id});
  ASSERT_TRUE(discarded.ok());
  ASSERT_EQ(discarded->exit_code, 0) << discarded->output;

  auto listed =
      regions_->Ctl(Region::kEast, {"quarantine", "list", "--status", "pending", "--json"});
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->exit_code, 0) << listed->output;
  EXPECT_NE(listed->output.find("\"total\": 6,"), std::string::npos) << listed->output;
  EXPECT_NE(listed->output.find("\"pending\": 6,"), std::string::npos) << listed->output;
  ASSERT_OK(regions_->WaitForTablesEqual({"items", "ferry.quarantine"}, absl::Seconds(60)));
  EXPECT_EQ(QuarantineField(Region::kWest, "note", absl::StrCat("id = ", insert_id)),
            "customer confirmed");
  EXPECT_EQ(QuarantineField(Region::kWest, "count(*)", "status = 'reapplied'"), "2");
  EXPECT_EQ(QuarantineField(Region::kWest, "count(*)", "status = 'discarded'"), "2");
}

// A former primary that shipped everything before it was fenced rejoins with an empty quarantine
// and replicates.
TEST_F(FailbackE2ETest, RejoinOfARegionThatNeverDivergedKeepsNothing) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  auto forced = regions_->Ctl(Region::kWest, {"promote", "--force"});
  ASSERT_TRUE(forced.ok());
  ASSERT_EQ(forced->exit_code, 0) << forced->output;
  auto fenced = regions_->PollStatus(Region::kEast, [](const v1::StatusReply& s) {
    return s.fence() == "raised" && s.divergence().known();
  });
  ASSERT_TRUE(fenced.ok()) << fenced.status();
  auto rejoined = regions_->Ctl(Region::kEast, {"rejoin", "--json"});
  ASSERT_TRUE(rejoined.ok());
  ASSERT_EQ(rejoined->exit_code, 0) << rejoined->output;
  EXPECT_NE(rejoined->output.find("\"quarantined\": 0,"), std::string::npos) << rejoined->output;
  EXPECT_NE(rejoined->output.find("\"differences\": 0,"), std::string::npos) << rejoined->output;
  EXPECT_TRUE(Quarantine(Region::kWest).empty());
  ASSERT_NO_FATAL_FAILURE(Exec(Region::kWest, "INSERT INTO items VALUES (3001, 'after')"));
  ASSERT_OK(regions_->WaitForTablesEqual(kTables, absl::Seconds(60)));
  // Sent again to a replicating standby: refused, nothing changed.
  auto again = regions_->Ctl(Region::kEast, {"rejoin"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->exit_code, 1) << again->output;
  EXPECT_NE(again->output.find("only a former primary"), std::string::npos) << again->output;
}

// SIGKILL at a step of the rejoin: east restarts, the rejoin is sent again and goes on; the
// quarantine holds each unshipped change exactly once and east ends equal to west.
class FailbackKillTest : public FailbackE2ETest,
                         public ::testing::WithParamInterface<const char*> {};

TEST_P(FailbackKillTest, SigkillDuringRejoinResumesSafely) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  const Kept truth = DivergeEast();
  ASSERT_NO_FATAL_FAILURE(LoseEastAndPromoteWest());
  ASSERT_NO_FATAL_FAILURE(Exec(Region::kWest, "UPDATE items SET v = 'west-upd' WHERE id = 30"));
  ASSERT_OK(pg(Region::kEast).StartAgain());
  ASSERT_OK(regions_->StartDaemon(Region::kEast, {absl::StrCat("FERRY_KILL_POINT=", GetParam())}));
  auto killed = regions_->Ctl(Region::kEast, {"rejoin"});
  ASSERT_TRUE(killed.ok());
  EXPECT_NE(killed->exit_code, 0) << killed->output;
  ASSERT_TRUE(regions_->WaitForExit(Region::kEast)) << "east never reached the kill point";
  EXPECT_NE(regions_->LogTail(Region::kEast).find(absl::StrCat("kill point ", GetParam())),
            std::string::npos);
  ASSERT_OK(regions_->StartDaemon(Region::kEast));
  auto rejoined = regions_->Ctl(Region::kEast, {"rejoin", "--json"});
  ASSERT_TRUE(rejoined.ok());
  ASSERT_EQ(rejoined->exit_code, 0) << rejoined->output;
  EXPECT_EQ(Quarantine(Region::kWest), truth);
  ASSERT_NO_FATAL_FAILURE(Exec(Region::kWest, "INSERT INTO items VALUES (3001, 'after')"));
  ASSERT_OK(regions_->WaitForTablesEqual(kTables, absl::Seconds(60)));
  auto east = regions_->Status(Region::kEast);
  ASSERT_TRUE(east.ok());
  EXPECT_EQ(east->role(), "standby");
  EXPECT_EQ(east->state(), "replicating");
}

INSTANTIATE_TEST_SUITE_P(Steps, FailbackKillTest,
                         ::testing::Values("rejoin.quarantined", "rejoin.dropped",
                                           "role.rejoined_as_standby", "rejoin.standby"),
                         [](const ::testing::TestParamInfo<const char*>& step) {
                           std::string name = step.param;
                           for (char& c : name) {
                             if (c == '.') c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace ferry::testing
