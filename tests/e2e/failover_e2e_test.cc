// Unplanned failover end to end (`ferryctl promote`, docs/operations.md "Promote"): two Postgres
// 15 clusters, two ferryd processes. The primary is lost with changes it never shipped; the
// standby is promoted and reports the loss bound against the test's own count; the old primary
// comes back and fences itself; the promote is refused while the primary is healthy.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/e2e/two_regions.h"
#include "tests/support/http_get.h"

namespace ferry::testing {
namespace {

constexpr char kSchema[] = R"sql(
  CREATE TABLE acked (id bigserial PRIMARY KEY, note text);
  INSERT INTO acked (note) SELECT 'before' FROM generate_series(1, 50);
)sql";

const std::vector<std::string> kTables = {"acked"};

// The number after `"key": ` in a flat JSON text (-1 when absent).
double JsonNumber(const std::string& json, const std::string& key) {
  const std::string needle = absl::StrCat("\"", key, "\": ");
  const size_t at = json.find(needle);
  if (at == std::string::npos) return -1;
  double value = -1;
  const size_t from = at + needle.size();
  const size_t end = json.find_first_of(",}", from);
  return absl::SimpleAtod(json.substr(from, end - from), &value) ? value : -1;
}

class FailoverE2ETest : public ::testing::Test {
 protected:
  void StartRegions(const std::string& extra_yaml = "", const std::string& apply_yaml = "") {
    TwoRegionsOptions options;
    options.schema_sql = kSchema;
    options.extra_yaml = extra_yaml;
    options.apply_yaml = apply_yaml;
    // A primary whose peer is fenced (it refuses the stream) would wait all of its drain.
    options.ferryd_args = {"--drain", "2"};
    auto regions = TwoRegions::Start(options);
    ASSERT_TRUE(regions.ok()) << regions.status();
    regions_ = std::move(*regions);
    ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(120)).ok());
  }
  PgCluster& pg(Region r) { return regions_->pg(r); }

  long PrimaryCheck(Region r) {
    auto got = HttpGet(absl::StrCat("http://", regions_->metrics_address(r), "/primary"));
    return got.ok() ? got->status : 0;
  }

  int64_t Count(Region r, const std::string& where = "true") {
    auto rows = pg(r).Query(absl::StrCat("SELECT count(*) FROM acked WHERE ", where));
    if (!rows.ok() || rows->empty()) return -1;
    int64_t n = -1;
    return absl::SimpleAtoi((*rows)[0][0].value_or(""), &n) ? n : -1;
  }

  void TearDown() override {
    if (HasFailure() && regions_) std::cerr << regions_->BothLogTails(10000);
  }
  std::unique_ptr<TwoRegions> regions_;
};

// East commits ten transactions it never ships (shipping held), then its ferryd dies. West is
// promoted: the loss bound names at least those ten (the truth the test counted), west takes
// writes with keys past east's, and east, restarted, learns of the new epoch from west before
// it takes a write and fences its database.
TEST_F(FailoverE2ETest, PromoteReportsTheLossBoundAndTheOldPrimaryFencesItself) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  ASSERT_TRUE(regions_->Pause(Region::kEast).ok());
  constexpr int kUnshipped = 10;
  for (int i = 0; i < kUnshipped; ++i) {
    ASSERT_TRUE(pg(Region::kEast).Exec("INSERT INTO acked (note) VALUES ('never shipped')").ok());
  }
  // West knows what it is missing from east's reports on the stream (every ping).
  auto reported = regions_->PollStatus(Region::kWest, [](const v1::StatusReply& s) {
    return s.primary_unshipped().known() && s.primary_unshipped().records() >= kUnshipped;
  });
  ASSERT_TRUE(reported.ok()) << reported.status();
  regions_->KillDaemon(Region::kEast);

  auto promoted = regions_->Ctl(Region::kWest, {"promote", "--json"});
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  ASSERT_EQ(promoted->exit_code, 0) << promoted->output;
  EXPECT_NE(promoted->output.find("\"known\": true"), std::string::npos) << promoted->output;
  EXPECT_GE(JsonNumber(promoted->output, "records"), kUnshipped) << promoted->output;
  EXPECT_GT(JsonNumber(promoted->output, "bytes"), 0) << promoted->output;
  EXPECT_EQ(JsonNumber(promoted->output, "epoch"), 2) << promoted->output;

  auto west = regions_->PollStatus(Region::kWest, [](const v1::StatusReply& s) {
    return s.role() == "primary" && s.state() == "replicating" && s.fence() == "lifted";
  });
  ASSERT_TRUE(west.ok()) << west.status();
  EXPECT_EQ(PrimaryCheck(Region::kWest), 200);
  // The promote is west's last change, with the loss bound it reported (issue #20).
  EXPECT_EQ(west->last_change().kind(), "promote");
  EXPECT_EQ(west->last_change().epoch(), 2u);
  EXPECT_TRUE(west->last_change().loss().known());
  EXPECT_GE(west->last_change().loss().records(), static_cast<uint64_t>(kUnshipped));
  // West's keys continue past anything east handed out, the unshipped ones included.
  ASSERT_TRUE(pg(Region::kWest).Exec("INSERT INTO acked (note) VALUES ('west after')").ok());
  auto max_east = pg(Region::kEast).Query("SELECT max(id) FROM acked");
  auto new_west = pg(Region::kWest).Query("SELECT id FROM acked WHERE note = 'west after'");
  ASSERT_TRUE(max_east.ok() && new_west.ok());
  int64_t east_max = 0, west_id = 0;
  ASSERT_TRUE(absl::SimpleAtoi((*max_east)[0][0].value_or(""), &east_max));
  ASSERT_TRUE(absl::SimpleAtoi((*new_west)[0][0].value_or(""), &west_id));
  EXPECT_GT(west_id, east_max);

  // East comes back: it asks west before it starts, and is fenced for good.
  ASSERT_TRUE(regions_->StartDaemon(Region::kEast).ok());
  auto east = regions_->Status(Region::kEast);
  ASSERT_TRUE(east.ok());
  // Diverged: west applied east's log up to a point; east holds the unshipped ones beyond it.
  EXPECT_EQ(east->state(), "diverged");
  EXPECT_TRUE(east->divergence().known());
  EXPECT_EQ(east->divergence().new_primary(), "west");
  EXPECT_GE(east->divergence().records_beyond(), static_cast<uint64_t>(kUnshipped));
  EXPECT_GT(east->divergence().bytes_beyond(), 0u);
  EXPECT_EQ(east->epoch(), 2u);
  EXPECT_TRUE(east->fenced());
  EXPECT_EQ(PrimaryCheck(Region::kEast), 503);
  const absl::Status refused = pg(Region::kEast).Exec("INSERT INTO acked (note) VALUES ('x')");
  EXPECT_NE(refused.message().find("was promoted"), std::string::npos) << refused;
  // The changes east never shipped are still there (rejoin keeps them in the quarantine).
  EXPECT_EQ(Count(Region::kEast, "note = 'never shipped'"), kUnshipped);
  EXPECT_EQ(Count(Region::kWest, "note = 'never shipped'"), 0);
}

// West applied every write east acknowledged; then west's database crashes and takes back
// commits apply had made and counted (asynchronous, not yet written out), and east is lost
// before west's apply notices by itself (it asks its database only once a minute here). The
// promote must not open west for writes without them: it waits until west's database holds
// everything durably, which makes apply notice the crash and apply them again.
TEST_F(FailoverE2ETest, APromoteRightAfterTheStandbysDatabaseCrashedKeepsEveryAcknowledgedWrite) {
  ASSERT_NO_FATAL_FAILURE(StartRegions("", "  durable_poll_ms: 60000\n"));
  auto lost = regions_->CrashStandbyDatabaseTakingBackCommits(
      "acked", "INSERT INTO acked (note) VALUES ('acknowledged')", 20);
  ASSERT_TRUE(lost.ok()) << lost.status();
  ASSERT_GT(*lost, 0);
  const int64_t acknowledged = Count(Region::kEast);
  regions_->KillDaemon(Region::kEast);

  auto promoted = regions_->Ctl(Region::kWest, {"promote"});
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  ASSERT_EQ(promoted->exit_code, 0) << promoted->output;
  EXPECT_EQ(Count(Region::kWest), acknowledged) << "the crash took back " << *lost << " rows";
  auto east = regions_->TableRows(Region::kEast, "acked");
  auto west = regions_->TableRows(Region::kWest, "acked");
  ASSERT_TRUE(east.ok() && west.ok());
  EXPECT_TRUE(*east == *west);
}

// Promote is refused while the primary answers as a healthy primary (a planned change is
// reverse's job); --force promotes anyway, and the old primary, still running, learns the new
// epoch from its peer and fences itself. A second promote is refused.
TEST_F(FailoverE2ETest, PromoteRefusedWhileThePrimaryIsHealthyForcedFencesItAndTwiceIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  auto refused = regions_->Ctl(Region::kWest, {"promote"});
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->exit_code, 1) << refused->output;
  EXPECT_NE(refused->output.find("use ferryctl reverse"), std::string::npos) << refused->output;
  auto west = regions_->Status(Region::kWest);
  ASSERT_TRUE(west.ok());
  EXPECT_EQ(west->role(), "standby");
  EXPECT_EQ(west->epoch(), 1u);

  auto forced = regions_->Ctl(Region::kWest, {"promote", "--force"});
  ASSERT_TRUE(forced.ok());
  ASSERT_EQ(forced->exit_code, 0) << forced->output;
  // Fenced ("diverged" when east captured a record, such as an idle heartbeat, that west never
  // received before the promote), with its divergence from west known.
  auto east = regions_->PollStatus(Region::kEast, [](const v1::StatusReply& s) {
    return (s.state() == "fenced" || s.state() == "diverged") && s.fence() == "raised" &&
           s.divergence().known();
  });
  ASSERT_TRUE(east.ok()) << east.status();
  EXPECT_EQ(east->divergence().new_primary(), "west");
  EXPECT_EQ(PrimaryCheck(Region::kEast), 503);
  EXPECT_EQ(PrimaryCheck(Region::kWest), 200);
  EXPECT_FALSE(pg(Region::kEast).Exec("INSERT INTO acked (note) VALUES ('x')").ok());
  ASSERT_TRUE(pg(Region::kWest).Exec("INSERT INTO acked (note) VALUES ('west')").ok());

  auto twice = regions_->Ctl(Region::kWest, {"promote", "--force"});
  ASSERT_TRUE(twice.ok());
  EXPECT_EQ(twice->exit_code, 1) << twice->output;
  EXPECT_NE(twice->output.find("only a replicating standby is promoted"), std::string::npos)
      << twice->output;
}

// A table stopped on the standby (a conflict) received changes that were never applied: promote
// lists it and keeps those changes in ferry.quarantine, never drops them.
TEST_F(FailoverE2ETest, PromoteKeepsTheChangesOfATableStoppedOnTheStandby) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  ASSERT_TRUE(
      regions_
          ->ExecBehindFence(Region::kWest, "INSERT INTO acked (id, note) VALUES (1000, 'planted')")
          .ok());
  ASSERT_TRUE(pg(Region::kEast).Exec("INSERT INTO acked (id, note) VALUES (1000, 'east')").ok());
  ASSERT_TRUE(pg(Region::kEast)
                  .Exec("INSERT INTO acked (id, note) VALUES (1001, 'east'), (1002, 'east')")
                  .ok());
  auto stopped = regions_->PollStatus(Region::kWest, [](const v1::StatusReply& s) {
    bool acked_stopped = false;
    for (const v1::TableState& t : s.tables()) {
      acked_stopped |= t.table() == "public.acked" && t.state() == "stopped";
    }
    return acked_stopped && s.positions().applied_seq() + 1 >= s.positions().inbound_next_seq();
  });
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  regions_->KillDaemon(Region::kEast);

  auto promoted = regions_->Ctl(Region::kWest, {"promote", "--json"});
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  ASSERT_EQ(promoted->exit_code, 0) << promoted->output;
  EXPECT_NE(promoted->output.find("public.acked"), std::string::npos) << promoted->output;
  EXPECT_EQ(JsonNumber(promoted->output, "quarantined"), 3) << promoted->output;
  auto kept = pg(Region::kWest)
                  .Query(
                      "SELECT source_region || ' ' || op || ' ' || key FROM ferry.quarantine ORDER "
                      "BY log_seq, "
                      "change_index");
  ASSERT_TRUE(kept.ok()) << kept.status();
  std::vector<std::string> rows;
  for (const auto& row : *kept) rows.push_back(row[0].value_or(""));
  EXPECT_EQ(rows, (std::vector<std::string>{"east insert {\"id\": \"1000\"}",
                                            "east insert {\"id\": \"1001\"}",
                                            "east insert {\"id\": \"1002\"}"}));
  EXPECT_EQ(Count(Region::kWest, "id >= 1000"), 1);  // only the planted row

  // East rejoins: the kept changes replicate to it (written once the new primary's slot
  // existed), its rows for those keys are repaired, and nothing is kept twice.
  ASSERT_TRUE(regions_->StartDaemon(Region::kEast).ok());
  auto rejoined = regions_->Ctl(Region::kEast, {"rejoin", "--json"});
  ASSERT_TRUE(rejoined.ok()) << rejoined.status();
  ASSERT_EQ(rejoined->exit_code, 0) << rejoined->output;
  EXPECT_NE(rejoined->output.find("\"anomaly_count\": 0,"), std::string::npos) << rejoined->output;
  ASSERT_TRUE(regions_->WaitForTablesEqual({"acked", "ferry.quarantine"}, absl::Seconds(60)).ok());
  auto total = pg(Region::kEast).QueryValue("SELECT count(*) FROM ferry.quarantine");
  ASSERT_TRUE(total.ok()) << total.status();
  EXPECT_EQ(total->value_or(""), "3");
}

// failover.self_fence_after_seconds: a primary that cannot reach its peer for that long fences
// its database (its standby may be promoted meanwhile), and lifts the fence once the peer
// answers and was not promoted.
TEST_F(FailoverE2ETest, APrimaryCutOffFromItsPeerFencesItselfWhenConfigured) {
  ASSERT_NO_FATAL_FAILURE(StartRegions("failover:\n  self_fence_after_seconds: 2\n"));
  ASSERT_TRUE(regions_->StopDaemon(Region::kWest).ok());
  auto fenced =
      regions_->PollStatus(Region::kEast, [](const v1::StatusReply& s) { return s.fenced(); });
  ASSERT_TRUE(fenced.ok()) << fenced.status();
  EXPECT_EQ(fenced->role(), "primary");
  EXPECT_EQ(fenced->state(), "replicating");
  EXPECT_EQ(PrimaryCheck(Region::kEast), 503);
  const absl::Status refused = pg(Region::kEast).Exec("INSERT INTO acked (note) VALUES ('x')");
  EXPECT_NE(refused.message().find("fenced itself"), std::string::npos) << refused;

  ASSERT_TRUE(regions_->StartDaemon(Region::kWest).ok());
  auto lifted = regions_->PollStatus(
      Region::kEast, [](const v1::StatusReply& s) { return !s.fenced() && s.fence() == "lifted"; });
  ASSERT_TRUE(lifted.ok()) << lifted.status();
  EXPECT_EQ(PrimaryCheck(Region::kEast), 200);
  ASSERT_TRUE(pg(Region::kEast).Exec("INSERT INTO acked (note) VALUES ('after')").ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(120)).ok());
}

}  // namespace
}  // namespace ferry::testing
