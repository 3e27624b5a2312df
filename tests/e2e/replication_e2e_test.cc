// End to end over two regions: two Postgres 15 clusters, two ferryd processes, real gRPC over
// loopback. What a region operator relies on: changes flow, pause holds them back, resume
// delivers them, status matches the databases, restarts in either order lose nothing, and a bad
// admin token is refused.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "tests/e2e/two_regions.h"
#include "tests/support/http_get.h"

namespace ferry::testing {
namespace {

constexpr char kSchema[] = R"sql(
  CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2));
  CREATE TABLE events (id bigserial PRIMARY KEY, account int, note text, at timestamptz DEFAULT now());
  INSERT INTO accounts SELECT g, 'owner ' || g, g * 10 FROM generate_series(1, 100) g;
)sql";

const std::vector<std::string> kTables = {"accounts", "events"};

uint64_t ParseLsn(const std::string& text) {
  unsigned hi = 0, lo = 0;
  sscanf(text.c_str(), "%X/%X", &hi, &lo);
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

class ReplicationE2ETest : public ::testing::Test {
 protected:
  void StartRegions(TwoRegionsOptions options = {}) {
    options.schema_sql = kSchema;
    auto regions = TwoRegions::Start(options);
    ASSERT_TRUE(regions.ok()) << regions.status();
    regions_ = std::move(*regions);
  }
  PgCluster& east() { return regions_->pg(Region::kEast); }
  PgCluster& west() { return regions_->pg(Region::kWest); }
  uint64_t EastWalLsn() {
    auto v = east().QueryValue("SELECT pg_current_wal_lsn()::text");
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() && v->has_value() ? ParseLsn(**v) : 0;
  }
  // Waits until east's status reports a captured position at or past `lsn`.
  void WaitForCapture(uint64_t lsn) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      auto s = regions_->Status(Region::kEast);
      if (s.ok() && s->positions().captured_source_position() >= lsn) return;
      absl::SleepFor(absl::Milliseconds(50));
    }
    FAIL() << "east never captured up to " << lsn;
  }
  void TearDown() override {
    if (HasFailure() && regions_) {
      for (Region r : {Region::kEast, Region::kWest}) {
        std::ifstream in(regions_->log_path(r));
        std::string line, tail;
        while (std::getline(in, line))
          tail = (tail + line + "\n").substr(tail.size() > 8000 ? tail.size() - 8000 : 0);
        std::cerr << "---- ferryd log " << (r == Region::kEast ? "east" : "west") << " (tail)\n"
                  << tail;
      }
    }
  }
  std::unique_ptr<TwoRegions> regions_;
};

TEST_F(ReplicationE2ETest, SnapshotAndLiveChangesReachTheStandby) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  ASSERT_TRUE(
      east()
          .Exec("BEGIN;"
                "UPDATE accounts SET balance = balance - 5 WHERE id = 1;"
                "UPDATE accounts SET balance = balance + 5 WHERE id = 2;"
                "INSERT INTO events (account, note) VALUES (1, 'transfer'), (2, 'transfer');"
                "COMMIT;"
                "DELETE FROM accounts WHERE id = 100;"
                "INSERT INTO accounts VALUES (101, 'new owner', NULL);")
          .ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  auto west_count = west().QueryValue("SELECT count(*) FROM accounts");
  ASSERT_TRUE(west_count.ok());
  EXPECT_EQ(west_count->value_or(""), "100");  // 100 snapshot rows - 1 deleted + 1 inserted
}

// A table stopped by a conflict is resumed by the operator with `ferryctl resume-table`: refused
// while the cause is still there (the table stays stopped), then, once fixed, every change from
// the one that stopped it is applied and the table applies again; other tables never stopped.
TEST_F(ReplicationE2ETest, ResumeTableAppliesFromTheChangeThatStoppedIt) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  // Out of band on the standby: the row the next update needs disappears.
  ASSERT_TRUE(regions_->ExecBehindFence(Region::kWest, "DELETE FROM accounts WHERE id = 5").ok());
  ASSERT_TRUE(east()
                  .Exec("UPDATE accounts SET balance = 1 WHERE id = 5;"
                        "UPDATE accounts SET balance = 2 WHERE id = 6;"
                        "INSERT INTO events (account, note) VALUES (6, 'after the stop');")
                  .ok());
  // accounts stops at the update of id 5; events goes on.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  bool stopped = false;
  while (!stopped && absl::Now() < deadline) {
    auto s = regions_->Status(Region::kWest);
    ASSERT_TRUE(s.ok()) << s.status();
    for (const std::string& t : StoppedTables(*s)) stopped |= t == "public.accounts";
    if (!stopped) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(stopped) << "accounts never stopped";
  ASSERT_TRUE(regions_->WaitForTablesEqual({"events"}, absl::Seconds(60)).ok());
  {  // Issue #14: the primary's status shows the standby's stopped table, and counts it in the
     // apply lag (everything else is applied).
    v1::StatusReply e;
    const absl::Time until = absl::Now() + absl::Seconds(60);
    while (absl::Now() < until) {
      auto s = regions_->Status(Region::kEast);
      ASSERT_TRUE(s.ok()) << s.status();
      e = *s;
      if (e.peer().stopped_tables_size() > 0) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_EQ(e.peer().stopped_tables_size(), 1) << e.DebugString();
    EXPECT_EQ(e.peer().stopped_tables(0).table(), "public.accounts");
    EXPECT_FALSE(e.peer().stopped_tables(0).reason().empty());
    EXPECT_EQ(e.peer().stopped_tables_total(), 1u);
    EXPECT_EQ(e.apply_lag().stopped_tables(), 1u);
    EXPECT_GT(e.apply_lag().records(), 0u);
    EXPECT_GT(e.apply_lag().bytes(), 0u);
    EXPECT_TRUE(StoppedTables(e).empty());  // east's own tables are not stopped
    auto readable = regions_->Ctl(Region::kEast, {"status"});
    ASSERT_TRUE(readable.ok());
    EXPECT_NE(readable->output.find("peer table  public.accounts STOPPED"), std::string::npos)
        << readable->output;
    auto west_status = regions_->Status(Region::kWest);
    ASSERT_TRUE(west_status.ok());
    EXPECT_EQ(west_status->apply_lag().stopped_tables(), 1u);
    EXPECT_GT(west_status->apply_lag().records(), 0u) << "the stopped table's changes wait";
  }
  {  // The stop is a log line too, not only a field of status.
    std::ifstream in(regions_->log_path(Region::kWest));
    std::stringstream log;
    log << in.rdbuf();
    EXPECT_NE(log.str().find("apply: table public.accounts stopped at inbound seq"),
              std::string::npos);
  }

  auto refused = regions_->Ctl(Region::kWest, {"resume-table", "public.accounts"});
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->exit_code, 1) << refused->output;
  EXPECT_NE(refused->output.find("stays stopped"), std::string::npos) << refused->output;

  // The operator puts the row back as it was, then resumes.
  ASSERT_TRUE(
      regions_->ExecBehindFence(Region::kWest, "INSERT INTO accounts VALUES (5, 'owner 5', 50)")
          .ok());
  auto resumed = regions_->Ctl(Region::kWest, {"resume-table", "public.accounts", "--json"});
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->exit_code, 0) << resumed->output;
  EXPECT_NE(resumed->output.find("\"table\": \"public.accounts\""), std::string::npos)
      << resumed->output;
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(60)).ok());
  auto balance = west().QueryValue("SELECT balance FROM accounts WHERE id = 5");
  ASSERT_TRUE(balance.ok());
  EXPECT_EQ(balance->value_or(""), "1.00");
  // Later changes apply again.
  ASSERT_TRUE(east().Exec("UPDATE accounts SET balance = 3 WHERE id = 5").ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(60)).ok());
  {  // The primary learns that the table applies again.
    const absl::Time until = absl::Now() + absl::Seconds(60);
    bool cleared = false;
    while (!cleared && absl::Now() < until) {
      auto s = regions_->Status(Region::kEast);
      ASSERT_TRUE(s.ok()) << s.status();
      cleared = s->peer().apply_state_known() && s->peer().stopped_tables_size() == 0;
      if (!cleared) absl::SleepFor(absl::Milliseconds(100));
    }
    EXPECT_TRUE(cleared);
  }

  for (const auto& [region, args, reason] :
       std::vector<std::tuple<Region, std::vector<std::string>, std::string>>{
           {Region::kWest, {"resume-table", "public.accounts"}, "is not stopped"},
           {Region::kEast, {"resume-table", "public.accounts"}, "not a standby"},
           {Region::kWest, {"resume-table", "nodot"}, "schema.name"},
           {Region::kWest, {"resume-table"}, "takes one TABLE"}}) {
    auto r = regions_->Ctl(region, args);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->exit_code, 1) << r->output;
    EXPECT_NE(r->output.find(reason), std::string::npos) << r->output;
  }
}

std::string ReadLog(const std::string& path) {
  std::ifstream in(path);
  std::stringstream log;
  log << in.rdbuf();
  return log.str();
}

// Issue #14 item 11: a table without a primary key created while ferryd runs, under the
// publication's FOR ALL TABLES. Postgres refuses the application's UPDATE on it until it has a
// replica identity; Ferry (postgres.keyless_tables: replica_identity_full, the default) sets
// REPLICA IDENTITY FULL within about a second, logs it, and the table's updates and deletes
// then replicate. Fails before the change: the UPDATE failed for good and nothing said so.
TEST_F(ReplicationE2ETest, KeylessTableCreatedWhileRunningTakesUpdatesThatReplicate) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  ASSERT_TRUE(
      east()
          .Exec("CREATE TABLE nopk (x int, y text); INSERT INTO nopk VALUES (1, 'a'), (2, 'b')")
          .ok());
  absl::Status update = absl::UnknownError("not tried");
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
       !update.ok() && absl::Now() < deadline;) {
    update = east().Exec("UPDATE nopk SET y = 'c' WHERE x = 1");
    if (!update.ok()) {
      ASSERT_NE(std::string(update.message()).find("replica identity"), std::string::npos)
          << update;
      absl::SleepFor(absl::Milliseconds(100));  // polling until Ferry's check ran
    }
  }
  ASSERT_TRUE(update.ok()) << update;
  ASSERT_TRUE(east().Exec("DELETE FROM nopk WHERE x = 2").ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual({"nopk"}, absl::Seconds(60)).ok());
  auto rows = west().QueryValue("SELECT string_agg(x || '=' || y, ',') FROM nopk");
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->value_or(""), "1=c");
  EXPECT_NE(ReadLog(regions_->log_path(Region::kEast)).find("set REPLICA IDENTITY FULL on it"),
            std::string::npos);
  auto status = regions_->Status(Region::kEast);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->source().blocked_tables_size(), 0);
}

// Issue #14: a lost source or target database connection is a log line, not only a field of
// status. The standby's Postgres restarts (apply's connection is lost), then the primary's
// (capture's replication connection is lost); both recover and nothing is lost.
TEST_F(ReplicationE2ETest, LostDatabaseConnectionsAreLogLines) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  ASSERT_TRUE(west().Restart(PgCluster::StopMode::kImmediate).ok());
  ASSERT_TRUE(east().Exec("UPDATE accounts SET balance = 7 WHERE id = 7").ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  ASSERT_TRUE(east().Restart(PgCluster::StopMode::kImmediate).ok());
  ASSERT_TRUE(east().Exec("UPDATE accounts SET balance = 8 WHERE id = 8").ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  const std::string west_log = ReadLog(regions_->log_path(Region::kWest));
  EXPECT_TRUE(west_log.find("apply: retrying inbound seqs") != std::string::npos ||
              west_log.find("apply: cannot start, retrying") != std::string::npos)
      << "no log line for the lost target connection";
  EXPECT_NE(ReadLog(regions_->log_path(Region::kEast))
                .find("postgres source: lost the replication connection to the source database"),
            std::string::npos);
}

// Issue #14 item 8 through real ferryd processes: a stopped table past
// apply.stopped_table_retention_bytes needs a re-snapshot (status, metrics, ferryctl), the
// standby's inbound log is trimmed past its stop again, resume-table refuses it with what to
// do, and the other table keeps replicating.
TEST_F(ReplicationE2ETest, AStoppedTableOverItsBoundNeedsAResnapshotAndNoLongerPinsTheLog) {
  ASSERT_NO_FATAL_FAILURE(
      StartRegions({.apply_yaml = "  stopped_table_retention_bytes: 64KiB\n",
                    .extra_yaml = "log:\n  retention_bytes: 0\n  retention_seconds: 0\n"}));
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  ASSERT_TRUE(regions_->ExecBehindFence(Region::kWest, "DELETE FROM accounts WHERE id = 5").ok());
  ASSERT_TRUE(east().Exec("UPDATE accounts SET balance = 1 WHERE id = 5").ok());
  // Then far more than 64 KiB of the stopped table's changes, and the other table's.
  ASSERT_TRUE(east()
                  .Exec("DO $$ BEGIN FOR i IN 1..40 LOOP UPDATE accounts SET owner = "
                        "repeat(md5(i::text), 16); INSERT INTO events (account, note) VALUES "
                        "(i, 'beside'); COMMIT; END LOOP; END $$")
                  .ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  v1::TableState accounts;
  v1::StatusReply status;
  while (absl::Now() < deadline) {  // polling west's status, not synchronisation
    auto s = regions_->Status(Region::kWest);
    ASSERT_TRUE(s.ok()) << s.status();
    status = *s;
    for (const auto& t : s->tables()) {
      if (t.table() == "public.accounts") accounts = t;
    }
    if (accounts.state() == "needs_resnapshot" &&
        status.positions().inbound_first_seq() > accounts.stopped_at_seq()) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(accounts.state(), "needs_resnapshot") << accounts.DebugString();
  EXPECT_EQ(accounts.resnapshot_cause(), "retention_bytes");
  EXPECT_NE(accounts.resnapshot_reason().find("apply.stopped_table_retention_bytes"),
            std::string::npos)
      << accounts.resnapshot_reason();
  EXPECT_NE(accounts.reason().find("update_missing"), std::string::npos) << accounts.reason();
  // It no longer pins the log: west's inbound log is trimmed past its stop.
  EXPECT_GT(status.positions().inbound_first_seq(), accounts.stopped_at_seq());
  // Metrics and the log say so too.
  auto metrics =
      HttpGet(absl::StrCat("http://", regions_->metrics_address(Region::kWest), "/metrics"));
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_NE(metrics->body.find("ferry_table_needs_resnapshot{table=\"public.accounts\",reason="
                               "\"retention_bytes\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics->body.find("ferry_tables_needing_resnapshot 1"), std::string::npos);
  {
    std::ifstream in(regions_->log_path(Region::kWest));
    std::stringstream log;
    log << in.rdbuf();
    EXPECT_NE(log.str().find("apply: table public.accounts (stopped at inbound seq"),
              std::string::npos);
  }
  // resume-table refuses, naming what is gone and what to do.
  auto refused = regions_->Ctl(Region::kWest, {"resume-table", "public.accounts"});
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->exit_code, 1) << refused->output;
  EXPECT_NE(refused->output.find("needs a re-snapshot"), std::string::npos) << refused->output;
  EXPECT_NE(refused->output.find("is gone"), std::string::npos) << refused->output;
  auto shown = regions_->Ctl(Region::kWest, {"status"});
  ASSERT_TRUE(shown.ok());
  EXPECT_NE(shown->output.find("needs_resnapshot"), std::string::npos) << shown->output;
  // Nothing else is lost: events keeps replicating, now and after a restart of the standby.
  ASSERT_TRUE(regions_->WaitForTablesEqual({"events"}, absl::Seconds(60)).ok());
  ASSERT_TRUE(regions_->StopDaemon(Region::kWest).ok());
  ASSERT_TRUE(east().Exec("INSERT INTO events (account, note) VALUES (1, 'later')").ok());
  ASSERT_TRUE(regions_->StartDaemon(Region::kWest).ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual({"events"}, absl::Seconds(60)).ok());
  std::string state;
  while (absl::Now() < deadline) {  // polling west's status, not synchronisation
    auto again = regions_->Status(Region::kWest);
    ASSERT_TRUE(again.ok());
    ASSERT_EQ(StoppedTables(*again), std::vector<std::string>{"public.accounts"});
    for (const auto& t : again->tables()) {
      if (t.table() == "public.accounts") state = t.state();
    }
    if (state == "needs_resnapshot") break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(state, "needs_resnapshot");
}

// What a load balancer or a DNS failover record polls, on real ferryd processes.
TEST_F(ReplicationE2ETest, HealthEndpointsTellThePrimaryApart) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  auto get = [&](Region r, const std::string& path) {
    return HttpGet(absl::StrCat("http://", regions_->metrics_address(r), path));
  };
  auto east_primary = get(Region::kEast, "/primary");
  ASSERT_TRUE(east_primary.ok()) << east_primary.status();
  EXPECT_EQ(east_primary->status, 200) << east_primary->body;
  auto west_primary = get(Region::kWest, "/primary");
  ASSERT_TRUE(west_primary.ok());
  EXPECT_EQ(west_primary->status, 503) << west_primary->body;
  EXPECT_NE(west_primary->body.find("west is standby"), std::string::npos) << west_primary->body;
  for (Region r : {Region::kEast, Region::kWest}) {
    auto health = get(r, "/healthz");
    ASSERT_TRUE(health.ok());
    EXPECT_EQ(health->status, 200) << health->body;
  }
  // ferryctl's --json for pause and resume, which scripts read.
  auto pause = regions_->Ctl(Region::kEast, {"pause", "--json"});
  ASSERT_TRUE(pause.ok());
  EXPECT_EQ(pause->exit_code, 0);
  EXPECT_NE(pause->output.find("{\"paused\": true, \"was_paused\": false}"), std::string::npos)
      << pause->output;
  auto resume = regions_->Ctl(Region::kEast, {"resume", "--json"});
  ASSERT_TRUE(resume.ok());
  EXPECT_NE(resume->output.find("{\"paused\": false, \"was_paused\": true}"), std::string::npos)
      << resume->output;
}

// Regression: ferryd never passed the region's epoch to the sink, so apply's replication origins
// were named with epoch 0 and the fence against an applier of an older epoch never engaged.
TEST_F(ReplicationE2ETest, ApplyOriginsCarryTheRegionsEpoch) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  ASSERT_TRUE(east().Exec("INSERT INTO events (account, note) VALUES (1, 'epoch');").ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  auto status = regions_->Status(Region::kWest);
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(status->epoch(), 1u);
  auto origins = west().Query("SELECT roname FROM pg_replication_origin ORDER BY roname");
  ASSERT_TRUE(origins.ok()) << origins.status();
  ASSERT_FALSE(origins->empty());
  // Every worker origin carries the epoch; besides them, one marker names the upstream log
  // the progress counts (docs/operations.md, "Log identity").
  int markers = 0;
  for (const auto& row : *origins) {
    if (row[0]->rfind("ferry_east_log_", 0) == 0) {
      ++markers;
      EXPECT_EQ(row[0]->size(), std::string("ferry_east_log_").size() + 32) << *row[0];
      continue;
    }
    EXPECT_EQ(row[0]->rfind("ferry_east_1_w", 0), 0u) << *row[0];
  }
  EXPECT_EQ(markers, 1);
}

TEST_F(ReplicationE2ETest, PauseHoldsChangesBackAndResumeDeliversThem) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  ASSERT_TRUE(regions_->Pause(Region::kEast).ok());
  // What was sent before the pause may still be acknowledged: wait until nothing is in flight.
  auto paused = regions_->PollStatus(Region::kEast, [](const v1::StatusReply& s) {
    return s.positions().acked_seq() >= s.positions().shipped_seq();
  });
  ASSERT_TRUE(paused.ok()) << paused.status();
  EXPECT_TRUE(paused->paused());
  const uint64_t acked_before = paused->positions().acked_seq();

  ASSERT_TRUE(east().Exec("INSERT INTO accounts VALUES (500, 'while paused', 1)").ok());
  WaitForCapture(EastWalLsn());
  // Captured into east's durable log, but not shipped while paused.
  auto after = regions_->Status(Region::kEast);
  ASSERT_TRUE(after.ok());
  EXPECT_GT(after->positions().outbound_next_seq(), acked_before + 1);
  EXPECT_EQ(after->positions().acked_seq(), acked_before);
  EXPECT_GT(after->rpo().records(), 0u);
  auto missing = west().QueryValue("SELECT count(*) FROM accounts WHERE id = 500");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->value_or(""), "0");

  // The pause survives a restart of the primary.
  ASSERT_TRUE(regions_->StopDaemon(Region::kEast).ok());
  ASSERT_TRUE(regions_->StartDaemon(Region::kEast).ok());
  auto restarted = regions_->Status(Region::kEast);
  ASSERT_TRUE(restarted.ok());
  EXPECT_TRUE(restarted->paused());
  EXPECT_EQ(restarted->positions().acked_seq(), acked_before);
  // Issue #14: RPO and lag bytes are the records' real bytes, not a count times an average
  // since start (which was 0 after this restart, and 8.7 GB for 1,435 transactions elsewhere).
  ASSERT_GT(restarted->rpo().records(), 0u);
  EXPECT_GT(restarted->rpo().bytes(), 0u);
  EXPECT_LT(restarted->rpo().bytes(), restarted->rpo().records() * 4096)
      << "small transactions and heartbeats";
  EXPECT_GE(restarted->apply_lag().bytes(), restarted->rpo().bytes());

  ASSERT_TRUE(regions_->Resume(Region::kEast).ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(60)).ok());
}

TEST_F(ReplicationE2ETest, StatusPositionsAndLagMatchTheDatabases) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  ASSERT_TRUE(east()
                  .Exec("INSERT INTO events (account, note) SELECT g % 100, 'n' FROM "
                        "generate_series(1, 1000) g")
                  .ok());
  const uint64_t lsn = EastWalLsn();
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  // Once the tables match, the positions settle: poll until they say "caught up".
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  v1::StatusReply e, w;
  while (absl::Now() < deadline) {
    auto es = regions_->Status(Region::kEast);
    auto ws = regions_->Status(Region::kWest);
    ASSERT_TRUE(es.ok() && ws.ok());
    e = *es;
    w = *ws;
    if (e.rpo().records() == 0 && w.apply_lag().records() == 0 &&
        e.positions().peer_applied_seq() + 1 >= e.positions().outbound_next_seq())
      break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(e.role(), "primary");
  EXPECT_EQ(w.role(), "standby");
  EXPECT_GE(e.positions().captured_source_position(), lsn);
  EXPECT_EQ(e.positions().acked_seq() + 1, e.positions().outbound_next_seq());
  EXPECT_EQ(w.positions().inbound_next_seq(), e.positions().outbound_next_seq());
  EXPECT_EQ(w.positions().applied_seq() + 1, w.positions().inbound_next_seq());
  EXPECT_EQ(e.rpo().records(), 0u);
  EXPECT_EQ(w.apply_lag().records(), 0u);
  EXPECT_TRUE(e.peer().connected());
  EXPECT_TRUE(e.source().connected());
  EXPECT_GE(e.source().slot_retained_wal_bytes(), 0);
  EXPECT_TRUE(e.peer().apply_state_known());
  EXPECT_EQ(e.peer().stopped_tables_size(), 0);
  EXPECT_FALSE(e.peer().applied_beyond_log_end());
  EXPECT_EQ(e.source().unreplicated_objects(), 0);
  EXPECT_EQ(e.source().warnings_size(), 0);
  {  // Caught up: nothing committed on east is left uncaptured.
    const absl::Time until = absl::Now() + absl::Seconds(60);
    v1::StatusReply now = e;
    while (absl::Now() < until && !(now.uncaptured().known() && now.uncaptured().bytes() == 0)) {
      absl::SleepFor(absl::Milliseconds(100));
      auto s = regions_->Status(Region::kEast);
      ASSERT_TRUE(s.ok());
      now = *s;
    }
    EXPECT_TRUE(now.uncaptured().known());
    EXPECT_EQ(now.uncaptured().bytes(), 0u) << now.uncaptured().DebugString();
    EXPECT_EQ(now.uncaptured().seconds(), 0);
  }
  // ferryctl shows the same, as JSON for scripts.
  auto ctl = regions_->Ctl(Region::kWest, {"status", "--json"});
  ASSERT_TRUE(ctl.ok());
  EXPECT_EQ(ctl->exit_code, 0) << ctl->output;
  EXPECT_NE(ctl->output.find("\"role\": \"standby\""), std::string::npos) << ctl->output;
}

TEST_F(ReplicationE2ETest, BothDaemonsRestartInEitherOrderWithoutLoss) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  // Order 1: east stops first, west second; changes made while both are down; east starts
  // first.
  ASSERT_TRUE(regions_->StopDaemon(Region::kEast).ok());
  ASSERT_TRUE(regions_->StopDaemon(Region::kWest).ok());
  ASSERT_TRUE(east().Exec("UPDATE accounts SET balance = balance + 1 WHERE id <= 50").ok());
  ASSERT_TRUE(regions_->StartDaemon(Region::kEast).ok());
  ASSERT_TRUE(east().Exec("INSERT INTO events (account, note) VALUES (7, 'east only')").ok());
  ASSERT_TRUE(regions_->StartDaemon(Region::kWest).ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  // Order 2: west stops first; west starts first.
  ASSERT_TRUE(regions_->StopDaemon(Region::kWest).ok());
  ASSERT_TRUE(east().Exec("DELETE FROM accounts WHERE id BETWEEN 10 AND 19").ok());
  ASSERT_TRUE(regions_->StopDaemon(Region::kEast).ok());
  ASSERT_TRUE(east().Exec("INSERT INTO accounts VALUES (900, 'offline', 9)").ok());
  ASSERT_TRUE(regions_->StartDaemon(Region::kWest).ok());
  ASSERT_TRUE(regions_->StartDaemon(Region::kEast).ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
}

// Issue #14 item 9: SIGTERM on a standby waited for apply to work off its whole backlog (up to
// --drain). Now it exits at once, the backlog stays durable in the inbound log, and a restart
// applies it: the standby ends equal to the primary. "At once" is shown by progress, not by the
// wall clock: with --drain 600 the old standby applied everything before exiting; this one
// exits while the standby's database still lacks most of the backlog.
TEST_F(ReplicationE2ETest, SigtermOnAStandbyWithABacklogExitsAndTheRestartCatchesUp) {
  ASSERT_NO_FATAL_FAILURE(StartRegions(
      {.apply_workers = 1, .apply_group_max_transactions = 5, .ferryd_args = {"--drain", "600"}}));
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  // A backlog in west's inbound log: apply held back while 20,000 transactions arrive.
  ASSERT_TRUE(regions_->Pause(Region::kWest).ok());
  ASSERT_TRUE(east()
                  .Exec("DO $$ BEGIN FOR i IN 1..20000 LOOP INSERT INTO events (account, note) "
                        "VALUES (i % 100, 'backlog'); COMMIT; END LOOP; END $$")
                  .ok());
  WaitForCapture(EastWalLsn());
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (absl::Now() < deadline) {  // polling the positions, not synchronisation
    auto e = regions_->Status(Region::kEast);
    auto w = regions_->Status(Region::kWest);
    ASSERT_TRUE(e.ok() && w.ok());
    if (w->positions().inbound_next_seq() >= e->positions().outbound_next_seq()) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  auto held = regions_->Status(Region::kWest);
  ASSERT_TRUE(held.ok());
  const uint64_t applied_before = held->positions().applied_seq();
  ASSERT_GE(held->apply_lag().records(), 20000u) << "the backlog never reached west";

  // Apply runs again; once it made progress through the backlog, SIGTERM.
  ASSERT_TRUE(regions_->Resume(Region::kWest).ok());
  while (absl::Now() < deadline) {  // polling apply's progress, not synchronisation
    auto w = regions_->Status(Region::kWest);
    ASSERT_TRUE(w.ok());
    if (w->positions().applied_seq() > applied_before) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(regions_->StopDaemon(Region::kWest).ok());
  auto east_rows = east().QueryValue("SELECT count(*) FROM events");
  auto west_rows = west().QueryValue("SELECT count(*) FROM events");
  ASSERT_TRUE(east_rows.ok() && west_rows.ok());
  const int at_exit = std::stoi(west_rows->value_or("0"));
  const int oracle = std::stoi(east_rows->value_or("0"));
  EXPECT_LT(at_exit, oracle) << "the standby applied its whole backlog before it exited";
  std::cerr << "west had " << at_exit << " of " << oracle << " rows when it exited\n";
  // Nothing was lost: the restart applies the rest, and the regions end equal.
  ASSERT_TRUE(regions_->StartDaemon(Region::kWest).ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(180)).ok());
}

TEST_F(ReplicationE2ETest, BadAdminTokenIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartRegions({.admin_token = "right-admin-token"}));
  const std::string wrong = regions_->config_path(Region::kEast) + ".wrong-token";
  std::ofstream(wrong) << "wrong-admin-token\n";
  auto refused = regions_->Ctl(Region::kEast, {"pause"}, wrong);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->exit_code, 1);
  EXPECT_NE(refused->output.find("wrong admin token"), std::string::npos) << refused->output;
  auto none = regions_->Ctl(Region::kEast, {"status"});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->exit_code, 1);
  auto status = regions_->Status(Region::kEast);  // the fixture sends the right token
  ASSERT_TRUE(status.ok());
  EXPECT_FALSE(status->paused());
}

}  // namespace
}  // namespace ferry::testing
