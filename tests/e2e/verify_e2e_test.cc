// `ferryctl verify` over two real ferryd and two real Postgres clusters (docs/verify.md):
// planted differences on the standby (written out of band) are each reported exactly and
// nothing else; no false difference while a writer writes at full speed on the primary and the
// standby lags; replication going on while a throttled verify scans; refusals (standby, paused); a
// verify interrupted by a SIGKILL of either ferryd (at named kill points, never at a wall-clock
// moment) fails cleanly and the next one works.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <csignal>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "connectors/postgres/common/pg_connection.h"
#include "tests/e2e/two_regions.h"
#include "tests/support/child_process.h"

namespace ferry::testing {
namespace {

constexpr char kSchema[] = R"sql(
  CREATE TABLE planted (id int PRIMARY KEY, t text, f float8, n numeric);
  INSERT INTO planted SELECT g, 'v' || g, g, g FROM generate_series(1, 3000) g;
  UPDATE planted SET t = '' WHERE id = 10;
  UPDATE planted SET f = 0 WHERE id = 20;
  UPDATE planted SET n = 1.0 WHERE id = 30;
  CREATE TABLE bag (a int, b text);
  INSERT INTO bag SELECT g % 50, 'x' FROM generate_series(1, 1000) g;
  INSERT INTO bag VALUES (NULL, ''), (NULL, NULL);
  CREATE TABLE widened (id int PRIMARY KEY, v text);
  INSERT INTO widened SELECT g, 'v' FROM generate_series(1, 100) g;
  CREATE TABLE busy (id int PRIMARY KEY, v bigint, note text);
  INSERT INTO busy SELECT g, 0, 'n' FROM generate_series(1, 20000) g;
  CREATE TABLE fixme (id int PRIMARY KEY, v text, n numeric);
  INSERT INTO fixme SELECT g, 'v' || g, g FROM generate_series(1, 4000) g;
  CREATE TABLE quiet (id int PRIMARY KEY, v text);
  INSERT INTO quiet SELECT g, md5(g::text) FROM generate_series(1, 5000) g;
  CREATE TABLE bag2 (a int, b text);
  INSERT INTO bag2 SELECT g % 20, 'y' FROM generate_series(1, 400) g;
  CREATE TABLE shaped (id int PRIMARY KEY, v text);
  INSERT INTO shaped SELECT g, 'v' FROM generate_series(1, 200) g;
  CREATE TABLE still (id int PRIMARY KEY, v text);
  INSERT INTO still SELECT g, 'v' FROM generate_series(1, 1000) g;
  CREATE TABLE during (id int PRIMARY KEY);
)sql";

const std::vector<std::string> kTables = {
    "public.planted", "public.bag",  "public.widened", "public.busy",  "public.quiet",
    "public.fixme",   "public.bag2", "public.shaped",  "public.still", "public.during"};

class VerifyE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto regions = TwoRegions::Start({.schema_sql = kSchema});
    ASSERT_TRUE(regions.ok()) << regions.status();
    regions_ = regions->release();
    ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(120)).ok());
  }
  static void TearDownTestSuite() { delete regions_; }

  // Runs ferryctl verify on `r`; returns the exit code and the JSON line (if any).
  struct Verified {
    int exit_code = -1;
    std::string json;
    std::string output;
  };
  static Verified Verify(Region r, const std::vector<std::string>& tables,
                         std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"verify", "--json"};
    for (const auto& t : tables) {
      args.push_back("--table");
      args.push_back(t);
    }
    args.insert(args.end(), extra.begin(), extra.end());
    auto done = regions_->Ctl(r, args);
    EXPECT_TRUE(done.ok()) << done.status();
    Verified v;
    if (!done.ok()) return v;
    v.exit_code = done->exit_code;
    v.output = done->output;
    for (absl::string_view line : absl::StrSplit(done->output, '\n')) {
      if (absl::StartsWith(line, "{\"equal\"")) v.json = std::string(line);
    }
    return v;
  }

  // Sessions of `pg` running a verify's scan that match `condition` (SQL), or -1. Not this
  // probe, nor an earlier probe's session still exiting (its query names the scan too).
  static int Scans(PgCluster& pg, const std::string& condition) {
    auto n = pg.QueryValue(
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE "
        "'%ferry_verify_scan%' AND query NOT LIKE '%pg_stat_activity%' AND " +
        condition);
    return n.ok() && n->has_value() ? std::stoi(**n) : -1;
  }

  // East's status shows no verify (bounded poll: an ended verify clears its operation).
  static void ExpectNoVerifyRunsOnEast() {
    auto idle = regions_->PollStatus(
        Region::kEast,
        [](const v1::StatusReply& s) { return s.operation().find("verify") == std::string::npos; },
        absl::Seconds(30));
    EXPECT_TRUE(idle.ok()) << idle.status();
  }

  // Writes on the standby's database behind apply's back (the plants).
  static void OnStandby(const std::string& sql) {
    absl::Status s =
        regions_->pg(Region::kWest).Exec("SET session_replication_role = replica; " + sql);
    ASSERT_TRUE(s.ok()) << s << "\n" << sql;
  }

  static TwoRegions* regions_;
};

TwoRegions* VerifyE2eTest::regions_ = nullptr;

TEST_F(VerifyE2eTest, EqualRegionsAreEqual) {
  Verified v = Verify(Region::kEast, {"public.quiet"});
  EXPECT_EQ(v.exit_code, 0) << v.output;
  EXPECT_NE(v.json.find("\"equal\": true, \"differences\": 0, \"truncated\": false"),
            std::string::npos)
      << v.json;
  EXPECT_NE(v.json.find("\"table\": \"public.quiet\", \"equal\": true"), std::string::npos);
}

TEST_F(VerifyE2eTest, PlantedDifferencesAreReportedExactly) {
  OnStandby(
      "UPDATE planted SET t = 'changed' WHERE id = 5;"
      "DELETE FROM planted WHERE id = 1500;"
      "INSERT INTO planted VALUES (4000, 'extra', 0, 0);"
      "UPDATE planted SET t = NULL WHERE id = 10;"  // NULL where the primary has ''
      "UPDATE planted SET f = '-0' WHERE id = 20;"  // -0 where the primary has 0
      "UPDATE planted SET n = 1.00 WHERE id = 30;"  // 1.00 where the primary has 1.0
      // The standby publishes too (for a switchover): a keyless delete needs a replica identity.
      "ALTER TABLE bag REPLICA IDENTITY FULL;"
      "DELETE FROM bag WHERE ctid = (SELECT ctid FROM bag WHERE a = 7 LIMIT 1);"
      "INSERT INTO bag VALUES (8, 'x'), (8, 'x');"
      "ALTER TABLE widened ADD COLUMN only_on_standby int DEFAULT 1;");
  Verified v = Verify(Region::kEast, {"public.planted", "public.bag", "public.widened"});
  EXPECT_EQ(v.exit_code, 2) << v.output;
  // The primary keeps it as its last verify (issue #20: status, metrics, page).
  auto status = regions_->Status(Region::kEast);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->last_verify().result(), "different");
  EXPECT_EQ(status->last_verify().differences(), 10u);
  EXPECT_EQ(status->last_verify().remaining(), 10u);
  EXPECT_NE(v.json.find("\"equal\": false, \"differences\": 10,"), std::string::npos) << v.json;
  EXPECT_NE(v.json.find("{\"table\": \"public.planted\", \"equal\": false, \"keyless\": false, "
                        "\"missing\": [{\"id\": \"1500\"}], \"extra\": [{\"id\": \"4000\"}], "
                        "\"changed\": [{\"id\": \"5\"}, {\"id\": \"10\"}, {\"id\": \"20\"}, "
                        "{\"id\": \"30\"}], \"missing_count\": 1, \"extra_count\": 1, "
                        "\"changed_count\": 4, \"truncated\": false, \"repaired_rows\": 0, "
                        "\"repair_skipped\": 0, \"schema\": []"),
            std::string::npos)
      << v.json;
  EXPECT_NE(v.json.find("{\"table\": \"public.bag\", \"equal\": false, \"keyless\": true, "
                        "\"missing\": [], \"extra\": [], \"changed\": [], \"missing_count\": 1, "
                        "\"extra_count\": 2, \"changed_count\": 0"),
            std::string::npos)
      << v.json;
  EXPECT_NE(v.json.find("{\"table\": \"public.widened\", \"equal\": false, \"keyless\": false, "
                        "\"missing\": [], \"extra\": [], \"changed\": [], \"missing_count\": 0, "
                        "\"extra_count\": 0, \"changed_count\": 0, \"truncated\": false, "
                        "\"repaired_rows\": 0, \"repair_skipped\": 0, "
                        "\"schema\": [\"column only_on_standby extra on the standby\"]"),
            std::string::npos)
      << v.json;
  // The readable form names the same keys.
  auto human = regions_->Ctl(Region::kEast, {"verify", "--table", "public.planted"});
  ASSERT_TRUE(human.ok());
  EXPECT_EQ(human->exit_code, 2);
  EXPECT_NE(human->output.find("missing  id=1500"), std::string::npos) << human->output;
  EXPECT_NE(human->output.find("extra    id=4000"), std::string::npos);
  EXPECT_NE(human->output.find("changed  id=30"), std::string::npos);
  // The key cap: one key listed, every difference counted.
  Verified capped = Verify(Region::kEast, {"public.planted"}, {"--max-keys", "1"});
  EXPECT_EQ(capped.exit_code, 2);
  EXPECT_NE(capped.json.find("\"differences\": 6, \"truncated\": true"), std::string::npos)
      << capped.json;
}

TEST_F(VerifyE2eTest, NoFalseDifferenceWhileTheWriterWritesAtFullSpeed) {
  std::atomic<bool> stop{false};
  absl::Mutex mu;
  int commits = 0;
  std::thread writer([&] {
    // As fast as the primary takes them: updates spread over the table, and inserts.
    for (int i = 0; !stop.load(); ++i) {
      absl::Status s =
          regions_->pg(Region::kEast)
              .Exec(absl::StrCat("UPDATE busy SET v = v + 1, note = 'w", i,
                                 "' WHERE id % 97 = ", i % 97, "; INSERT INTO busy VALUES (",
                                 100000 + i, ", ", i, ", 'new')"));
      if (s.ok()) {
        absl::MutexLock lock(&mu);
        ++commits;
      }
    }
  });
  auto wait_for_commits = [&](int n) {
    absl::MutexLock lock(&mu);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return commits >= n; };
    mu.Await(absl::Condition(&reached));
  };
  int verified = 0;
  for (int round = 0; round < 3; ++round) {
    if (round == 1) {
      // Make the standby lag for sure: hold its apply back while 300 more transactions commit,
      // then verify at once (apply must first work through that backlog to reach the cut).
      ASSERT_TRUE(regions_->Pause(Region::kWest).ok());
      int now;
      {
        absl::MutexLock lock(&mu);
        now = commits;
      }
      wait_for_commits(now + 300);
      // The backlog reached the standby's inbound log (received, not applied).
      uint64_t lag = 0;
      for (absl::Time deadline = absl::Now() + absl::Seconds(30);
           lag == 0 && absl::Now() < deadline;) {
        auto status = regions_->Status(Region::kWest);
        ASSERT_TRUE(status.ok());
        lag = status->apply_lag().records();
      }
      EXPECT_GT(lag, 0u);
      ASSERT_TRUE(regions_->Resume(Region::kWest).ok());
    }
    Verified v = Verify(Region::kEast, {"public.busy"});
    EXPECT_EQ(v.exit_code, 0) << v.output;
    EXPECT_NE(v.json.find("\"equal\": true"), std::string::npos) << v.json;
    if (v.exit_code == 0) ++verified;
  }
  stop = true;
  writer.join();
  EXPECT_EQ(verified, 3);
}

TEST_F(VerifyE2eTest, RepairMakesTheStandbyEqualThroughItsOwnOrigin) {
  OnStandby(
      "UPDATE fixme SET v = 'changed', n = 1.00 WHERE id = 7;"
      "UPDATE fixme SET v = NULL WHERE id = 8;"
      "DELETE FROM fixme WHERE id IN (100, 2000);"
      "INSERT INTO fixme VALUES (5000, 'extra', 0), (-1, 'extra', NULL);");
  auto repaired = regions_->Ctl(Region::kEast, {"verify", "--repair", "--table", "public.fixme"});
  ASSERT_TRUE(repaired.ok());
  EXPECT_EQ(repaired->exit_code, 0) << repaired->output;
  EXPECT_NE(repaired->output.find("repaired 6 row(s) on the standby, 0 left to apply"),
            std::string::npos)
      << repaired->output;
  EXPECT_NE(repaired->output.find("the repaired tables are now EQUAL"), std::string::npos);
  auto status = regions_->Status(Region::kEast);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->last_verify().result(), "repaired");  // 6 found, none left
  EXPECT_EQ(status->last_verify().differences(), 6u);
  EXPECT_EQ(status->last_verify().remaining(), 0u);
  Verified after = Verify(Region::kEast, {"public.fixme"});
  EXPECT_EQ(after.exit_code, 0) << after.output;
  EXPECT_EQ(regions_->TableRows(Region::kEast, "public.fixme").value(),
            regions_->TableRows(Region::kWest, "public.fixme").value());
  // The repair wrote under its own origin.
  auto origin = regions_->pg(Region::kWest)
                    .QueryValue(
                        "SELECT count(*) FROM pg_replication_origin WHERE roname = "
                        "'ferry_verify_repair'");
  ASSERT_TRUE(origin.ok());
  EXPECT_EQ(**origin, "1");
  // Replication goes on afterwards: a change on the primary reaches the repaired row.
  ASSERT_TRUE(regions_->pg(Region::kEast).Exec("UPDATE fixme SET v = 'later' WHERE id = 7").ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual({"public.fixme"}, absl::Seconds(60)).ok());
}

TEST_F(VerifyE2eTest, RepairOfAKeylessTableAndRefusalOfASchemaDifference) {
  OnStandby(
      // The standby publishes too (for a switchover): a keyless delete needs a replica identity
      // (its capture sets one in time, but not before this test; repair_test covers a standby
      // without one).
      "ALTER TABLE bag2 REPLICA IDENTITY FULL;"
      "DELETE FROM bag2 WHERE ctid IN (SELECT ctid FROM bag2 WHERE a = 3 LIMIT 4);"
      "INSERT INTO bag2 VALUES (5, 'y'), (5, 'y'), (99, 'z');"
      "ALTER TABLE shaped ADD COLUMN only_standby int;"
      "UPDATE shaped SET v = 'bad' WHERE id = 9;");
  // The keyless table is repaired copy by copy; the schema difference is refused with the DDL
  // to run on the standby.
  Verified first = Verify(Region::kEast, {"public.bag2", "public.shaped"}, {"--repair"});
  EXPECT_EQ(first.exit_code, 2) << first.output;
  EXPECT_NE(first.json.find(R"("table": "public.bag2", "equal": false, "keyless": true, )"
                            R"("missing": [], "extra": [], "changed": [], "missing_count": 4, )"
                            R"("extra_count": 3, "changed_count": 0, "truncated": false, )"
                            R"("repaired_rows": 7, "repair_skipped": 0)"),
            std::string::npos)
      << first.json;
  EXPECT_NE(first.json.find(R"("repair_note": "not repaired: the schemas differ; run on the )"
                            R"(standby (the primary is the reference), then verify --repair )"
                            R"(again: ALTER TABLE \"public\".\"shaped\" DROP COLUMN )"
                            R"(\"only_standby\""})"),
            std::string::npos)
      << first.json;
  // The operator runs the DDL; the second --repair repairs the rows, and its recheck finds
  // them equal.
  OnStandby("ALTER TABLE shaped DROP COLUMN only_standby;");
  Verified second = Verify(Region::kEast, {"public.bag2", "public.shaped"}, {"--repair"});
  EXPECT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.json.find(R"("recheck_equal": true)"), std::string::npos) << second.json;
  EXPECT_NE(second.json.find(R"("table": "public.shaped", "equal": false, "keyless": false, )"
                             R"("missing": [], "extra": [], "changed": [{"id": "9"}])"),
            std::string::npos)
      << second.json;
  EXPECT_NE(second.json.find(R"("repaired_rows": 1)"), std::string::npos) << second.json;
  Verified after = Verify(Region::kEast, {"public.bag2", "public.shaped"});
  EXPECT_EQ(after.exit_code, 0) << after.output;
  // Replication goes on: the primary's later changes reach the repaired tables.
  ASSERT_TRUE(regions_->pg(Region::kEast)
                  .Exec("INSERT INTO bag2 VALUES (5, 'y'); DELETE FROM bag2 WHERE a = 3; "
                        "UPDATE shaped SET v = 'later' WHERE id = 9")
                  .ok());
  ASSERT_TRUE(
      regions_->WaitForTablesEqual({"public.bag2", "public.shaped"}, absl::Seconds(60)).ok());
  EXPECT_EQ(Verify(Region::kEast, {"public.bag2", "public.shaped"}).exit_code, 0);
}

TEST_F(VerifyE2eTest, CtrlCOfFerryctlStopsTheStandbysScanInsideItsStatement) {
  // The standby's table is locked out of band: its scan waits inside its first statement,
  // which only a cancel in Postgres ends. ferryctl's Ctrl-C must end the verify on both sides
  // while the lock is still held.
  auto locker = pg::PgConnection::Connect(regions_->pg(Region::kWest).dsn());
  ASSERT_TRUE(locker.ok()) << locker.status();
  ASSERT_TRUE((*locker)->Exec("BEGIN; LOCK TABLE still IN ACCESS EXCLUSIVE MODE").ok());
  const std::string out = ::testing::TempDir() + "/ferryctl_interrupted.out";
  auto ctl = ChildProcess::Spawn(
      {BuiltBinary("ferryctl"), "--admin", regions_->admin_address(Region::kEast), "verify",
       "--table", "public.still"},
      out);
  ASSERT_TRUE(ctl.ok()) << ctl.status();
  auto scans = &VerifyE2eTest::Scans;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (scans(regions_->pg(Region::kWest), "wait_event_type = 'Lock'") != 1 &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(scans(regions_->pg(Region::kWest), "wait_event_type = 'Lock'"), 1);
  (*ctl)->Kill(SIGINT);
  std::optional<int> status = (*ctl)->WaitFor(absl::Seconds(60));
  ASSERT_TRUE(status.has_value()) << "ferryctl did not end while the table stayed locked";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1);
  // Nothing left running on either side (the lock still held), no slot on the primary, no
  // verify in east's status.
  const absl::Time gone = absl::Now() + absl::Seconds(30);
  while (scans(regions_->pg(Region::kWest), "true") != 0 && absl::Now() < gone) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(scans(regions_->pg(Region::kWest), "true"), 0);
  EXPECT_EQ(scans(regions_->pg(Region::kEast), "state = 'active'"), 0);
  auto slots = regions_->pg(Region::kEast)
                   .QueryValue(
                       "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE "
                       "'ferry_verify%'");
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ(**slots, "0");
  ExpectNoVerifyRunsOnEast();
  ASSERT_TRUE((*locker)->Exec("COMMIT").ok());
  EXPECT_EQ(Verify(Region::kEast, {"public.still"}).exit_code, 0);
}

TEST_F(VerifyE2eTest, ReplicationGoesOnWhileAThrottledVerifyScans) {
  // At 100 rows a second each side needs minutes for busy's 20,000 rows. Meanwhile the
  // primary's new transactions reach the standby: the verify holds back neither the capture
  // nor the standby's apply (its cut is a moment, its scans read snapshots).
  const std::string out = ::testing::TempDir() + "/ferryctl_throttled.out";
  auto ctl = ChildProcess::Spawn(
      {BuiltBinary("ferryctl"), "--admin", regions_->admin_address(Region::kEast), "verify",
       "--table", "public.busy", "--rate", "100"},
      out);
  ASSERT_TRUE(ctl.ok()) << ctl.status();
  // Past the cut: the table's comparison has begun (the step ferryctl prints as progress).
  auto comparing = regions_->PollStatus(
      Region::kEast,
      [](const v1::StatusReply& s) {
        return s.operation().find("comparing public.busy") != std::string::npos;
      },
      absl::Seconds(60));
  ASSERT_TRUE(comparing.ok()) << comparing.status();
  // Both regions' scans have begun (each seen once: a statement may be done already, the rest of
  // the table waiting in the socket for the throttled reader).
  bool east_seen = false, west_seen = false;
  for (absl::Time deadline = absl::Now() + absl::Seconds(60);
       !(east_seen && west_seen) && absl::Now() < deadline;
       absl::SleepFor(absl::Milliseconds(20))) {
    east_seen = east_seen || Scans(regions_->pg(Region::kEast), "true") >= 1;
    west_seen = west_seen || Scans(regions_->pg(Region::kWest), "true") >= 1;
  }
  ASSERT_TRUE(east_seen && west_seen) << "the scans never began";
  for (int i = 1; i <= 50; ++i) {
    ASSERT_TRUE(
        regions_->pg(Region::kEast).Exec(absl::StrCat("INSERT INTO during VALUES (", i, ")")).ok());
  }
  std::string arrived;
  for (absl::Time deadline = absl::Now() + absl::Seconds(60);
       arrived != "50" && absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(20))) {
    auto n = regions_->pg(Region::kWest).QueryValue("SELECT count(*) FROM during");
    if (n.ok() && n->has_value()) arrived = **n;
  }
  EXPECT_EQ(arrived, "50") << "the standby did not apply while the verify scanned";
  EXPECT_TRUE((*ctl)->running()) << "the throttled verify ended before the writes arrived";
  (*ctl)->Kill(SIGINT);
  std::optional<int> status = (*ctl)->WaitFor(absl::Seconds(60));
  ASSERT_TRUE(status.has_value()) << "ferryctl did not end on Ctrl-C";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1);
  ExpectNoVerifyRunsOnEast();
}

TEST_F(VerifyE2eTest, RefusedOnTheStandbyAndWhilePaused) {
  Verified on_standby = Verify(Region::kWest, {"public.quiet"});
  EXPECT_EQ(on_standby.exit_code, 1);
  EXPECT_NE(on_standby.output.find("send verify to the replicating primary"), std::string::npos)
      << on_standby.output;

  ASSERT_TRUE(regions_->Pause(Region::kEast).ok());
  Verified paused = Verify(Region::kEast, {"public.quiet"});
  ASSERT_TRUE(regions_->Resume(Region::kEast).ok());
  EXPECT_EQ(paused.exit_code, 1);
  EXPECT_NE(paused.output.find("paused on east"), std::string::npos) << paused.output;

  ASSERT_TRUE(regions_->Pause(Region::kWest).ok());
  Verified standby_paused = Verify(Region::kEast, {"public.quiet"});
  ASSERT_TRUE(regions_->Resume(Region::kWest).ok());
  EXPECT_EQ(standby_paused.exit_code, 1);
  EXPECT_NE(standby_paused.output.find("apply is paused on west"), std::string::npos)
      << standby_paused.output;

  // Usage errors are exit 1 too.
  auto bad = regions_->Ctl(Region::kEast, {"verify", "--table", "nodot"});
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->exit_code, 1);
  // And after all that, a verify runs.
  EXPECT_EQ(Verify(Region::kEast, {"public.quiet"}).exit_code, 0);
}

TEST_F(VerifyE2eTest, ASigkillOfTheStandbyDuringAVerifyFailsItCleanly) {
  ASSERT_TRUE(regions_->StopDaemon(Region::kWest).ok());
  ASSERT_TRUE(
      regions_->StartDaemon(Region::kWest, {"FERRY_KILL_POINT=verify.standby_cut_taken"}).ok());
  Verified v = Verify(Region::kEast, {"public.quiet"});
  EXPECT_EQ(v.exit_code, 1) << v.output;
  ASSERT_TRUE(regions_->WaitForExit(Region::kWest));
  ASSERT_TRUE(regions_->StartDaemon(Region::kWest).ok());
  // East's status no longer shows the verify; the next one works.
  auto status = regions_->Status(Region::kEast);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->operation().find("verify"), std::string::npos) << status->operation();
  Verified again = Verify(Region::kEast, {"public.quiet"});
  EXPECT_EQ(again.exit_code, 0) << again.output;
}

TEST_F(VerifyE2eTest, ASigkillOfThePrimaryDuringAVerifyFailsItCleanly) {
  ASSERT_TRUE(regions_->StopDaemon(Region::kEast).ok());
  ASSERT_TRUE(
      regions_->StartDaemon(Region::kEast, {"FERRY_KILL_POINT=verify.tables_scanned"}).ok());
  Verified v = Verify(Region::kEast, {"public.quiet"});
  EXPECT_EQ(v.exit_code, 1) << v.output;
  ASSERT_TRUE(regions_->WaitForExit(Region::kEast));
  ASSERT_TRUE(regions_->StartDaemon(Region::kEast).ok());
  // The standby ended the dead coordinator's verify when the new one began.
  Verified again = Verify(Region::kEast, {"public.quiet"});
  EXPECT_EQ(again.exit_code, 0) << again.output;
  // No slot is left behind on the primary (temporary slots die with their connection).
  auto slots = regions_->pg(Region::kEast)
                   .QueryValue(
                       "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE "
                       "'ferry_verify%'");
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ(**slots, "0");
}

}  // namespace
}  // namespace ferry::testing
