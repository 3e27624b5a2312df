// `ferryctl resnapshot TABLE` over two regions (docs/operations.md, "Re-snapshotting a table"):
// sent to the primary, it copies one table at a consistent cut and the standby's copy becomes
// equal, the table's stop lifted, while writes to the table go on. Also: a volatile rewrite
// that left the regions different is repaired; hostile names, the standby and forged markers
// are refused or ignored; a SIGKILL of the primary's ferryd right after the copy's COMMIT (kill
// point resnapshot.committed) still delivers it. Mutants these catch: the sink skipping the
// stopped table's re-snapshot rows, the stop not cleared in the target, the scheduler keeping
// the table stopped, the capture deleting the copy before it is durable, an unsigned marker
// honoured, a name spliced into SQL.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "tests/e2e/two_regions.h"
#include "tests/support/read_file.h"

namespace ferry::testing {
namespace {

constexpr char kSchema[] = R"sql(
  CREATE TABLE t (id int PRIMARY KEY, v text);
  CREATE TABLE other (id int PRIMARY KEY);
  CREATE TABLE "odd; name""q" (id int PRIMARY KEY, v int);
  INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 200) g;
  INSERT INTO "odd; name""q" SELECT g, g FROM generate_series(1, 5) g;
)sql";

// Writes to t on east from another thread, one committed statement at a time, and remembers
// every write east acknowledged (the oracle): id -> v.
class Writer {
 public:
  Writer(PgCluster& east, int first_id, int count) : east_(east) {
    thread_ = std::thread([this, first_id, count] {
      for (int i = 0; i < count; ++i) {
        const int id = first_id + i;
        const std::string v = absl::StrCat("w", id);
        // Inserts, and updates of the copied rows (the re-snapshot must not lose either).
        absl::Status s =
            east_.Exec(absl::StrCat("INSERT INTO t VALUES (", id, ", '", v,
                                    "'); UPDATE t SET v = '", v, "' WHERE id = ", 1 + id % 200));
        absl::MutexLock lock(&mu_);
        if (s.ok()) {
          acked_[id] = v;
          acked_[1 + id % 200] = v;
        }
        ++done_;
      }
    });
  }
  ~Writer() { Join(); }
  void WaitForWrites(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ >= n; };
    mu_.Await(absl::Condition(&reached));
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  std::map<int, std::string> acked() {
    absl::MutexLock lock(&mu_);
    return acked_;
  }

 private:
  PgCluster& east_;
  std::thread thread_;
  absl::Mutex mu_;
  int done_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int, std::string> acked_ ABSL_GUARDED_BY(mu_);
};

class ResnapshotE2ETest : public ::testing::Test {
 protected:
  virtual TwoRegionsOptions Options() { return {.schema_sql = kSchema}; }
  void SetUp() override {
    auto started = TwoRegions::Start(Options());
    ASSERT_TRUE(started.ok()) << started.status();
    regions_ = std::move(*started);
    ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  }
  void TearDown() override {
    if (HasFailure() && regions_) {
      for (Region r : {Region::kEast, Region::kWest}) {
        std::string log = ReadFile(regions_->log_path(r));
        if (log.size() > 12000) log = log.substr(log.size() - 12000);
        std::cerr << "---- ferryd log " << (r == Region::kEast ? "east" : "west") << " (tail)\n"
                  << log;
      }
    }
  }
  PgCluster& east() { return regions_->pg(Region::kEast); }
  PgCluster& west() { return regions_->pg(Region::kWest); }

  // Out of band on the standby, a row disappears; the primary's update of it stops t there.
  void StopTable() {
    ASSERT_TRUE(regions_->ExecBehindFence(Region::kWest, "DELETE FROM t WHERE id = 5").ok());
    ASSERT_TRUE(east().Exec("UPDATE t SET v = 'stopper' WHERE id = 5").ok());
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      if (Stopped("public.t")) return;
      absl::SleepFor(absl::Milliseconds(100));
    }
    FAIL() << "t never stopped";
  }
  bool Stopped(const std::string& table) {
    auto s = regions_->Status(Region::kWest);
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) return false;
    for (const auto& t : s->tables()) {
      if (t.table() == table && t.state() == "stopped") return true;
    }
    return false;
  }
  void WaitUntilNotStopped(const std::string& table) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline && Stopped(table)) absl::SleepFor(absl::Milliseconds(100));
    EXPECT_FALSE(Stopped(table));
    auto rows = west().QueryValue(
        "SELECT count(*) FROM ferry.table_state WHERE table_schema = 'public' AND table_name = "
        "'t'");
    ASSERT_TRUE(rows.ok()) << rows.status();
    EXPECT_EQ(rows->value_or(""), "0") << "the stop row is gone from the target";
  }
  // West's t holds every write east acknowledged.
  void ExpectOracleOnWest(const std::map<int, std::string>& acked) {
    for (const auto& [id, v] : acked) {
      auto got = west().QueryValue(absl::StrCat("SELECT v FROM t WHERE id = ", id));
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(got->value_or("<missing>"), v) << "id " << id;
    }
  }
  void ExpectNoStagedCopies() {
    const std::string dir = regions_->data_dir(Region::kEast) + "/resnapshot";
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    bool empty = false;
    while (!empty && absl::Now() < deadline) {
      empty = !std::filesystem::exists(dir) || std::filesystem::is_empty(dir);
      if (!empty) absl::SleepFor(absl::Milliseconds(50));
    }
    EXPECT_TRUE(empty) << "staged copies left in " << dir;
  }

  const std::vector<std::string> kTables = {"public.t", "public.other"};
  std::unique_ptr<TwoRegions> regions_;
};

TEST_F(ResnapshotE2ETest, AStoppedTableIsReplacedAndAppliesAgainWhileWritesGoOn) {
  ASSERT_NO_FATAL_FAILURE(StopTable());
  ASSERT_TRUE(east().Exec("INSERT INTO other VALUES (1)").ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual({"public.other"}, absl::Seconds(60)).ok());

  Writer writer(east(), 1000, 300);
  writer.WaitForWrites(20);
  auto done = regions_->Ctl(Region::kEast, {"resnapshot", "public.t", "--json"});
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->exit_code, 0) << done->output;
  EXPECT_NE(done->output.find("\"table\": \"public.t\""), std::string::npos) << done->output;
  EXPECT_NE(done->output.find("\"rows\": "), std::string::npos) << done->output;
  writer.Join();

  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  ExpectOracleOnWest(writer.acked());
  WaitUntilNotStopped("public.t");
  // Later changes of t apply as usual.
  ASSERT_TRUE(
      east().Exec("UPDATE t SET v = 'after' WHERE id = 1; DELETE FROM t WHERE id = 2").ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(60)).ok());
  EXPECT_NE(ReadFile(regions_->log_path(Region::kWest))
                .find("apply: table public.t re-snapshotted at seq"),
            std::string::npos);
  ExpectNoStagedCopies();

  auto readable = regions_->Ctl(Region::kEast, {"resnapshot", "public.t"});
  ASSERT_TRUE(readable.ok());
  EXPECT_EQ(readable->exit_code, 0) << readable->output;
  EXPECT_NE(readable->output.find("table public.t re-snapshotted: "), std::string::npos)
      << readable->output;
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(60)).ok());
}

TEST_F(ResnapshotE2ETest, AVolatileRewriteThatLeftTheRegionsDifferentIsMadeEqual) {
  ASSERT_TRUE(east().Exec("ALTER TABLE t ALTER COLUMN v TYPE float8 USING random()").ok());
  // The command replays on the standby, where random() draws other values.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  std::optional<std::string> type;
  while (absl::Now() < deadline) {
    auto v = west().QueryValue(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass "
        "AND attname = 'v'");
    if (v.ok() && v->value_or("") == "double precision") break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  auto on_east = regions_->TableRows(Region::kEast, "public.t");
  auto on_west = regions_->TableRows(Region::kWest, "public.t");
  ASSERT_TRUE(on_east.ok() && on_west.ok());
  ASSERT_NE(*on_east, *on_west) << "random() drew the same values twice";

  auto done = regions_->Ctl(Region::kEast, {"resnapshot", "public.t"});
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->exit_code, 0) << done->output;
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  EXPECT_FALSE(Stopped("public.t"));
}

TEST_F(ResnapshotE2ETest, HostileNamesTheStandbyAndForgedMarkersAreRefusedOrIgnored) {
  for (const auto& [region, args, reason] :
       std::vector<std::tuple<Region, std::vector<std::string>, std::string>>{
           {Region::kEast, {"resnapshot", "public.nosuch"}, "no table"},
           {Region::kEast, {"resnapshot", "ferry.capture_key"}, "Ferry's own tables"},
           {Region::kEast, {"resnapshot", "public.t; DROP TABLE t"}, "no table"},
           {Region::kEast, {"resnapshot", "public.\"t\""}, "no table"},
           {Region::kEast, {"resnapshot", "public.t' OR '1'='1"}, "no table"},
           {Region::kEast, {"resnapshot", "nodot"}, "schema.name"},
           {Region::kEast, {"resnapshot", ".t"}, "schema.name"},
           {Region::kEast, {"resnapshot", std::string(2000, 'x') + ".t"}, "schema.name"},
           {Region::kEast, {"resnapshot"}, "takes one TABLE"},
           {Region::kWest, {"resnapshot", "public.t"}, "send resnapshot to the primary"}}) {
    auto r = regions_->Ctl(region, args);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->exit_code, 1) << r->output;
    EXPECT_NE(r->output.find(reason), std::string::npos) << r->output;
  }
  auto still = east().QueryValue("SELECT count(*) FROM t");
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->value_or(""), "200");

  // A table whose name holds a quote and a semicolon is re-snapshotted like any other.
  ASSERT_TRUE(regions_->ExecBehindFence(Region::kWest, "DELETE FROM \"odd; name\"\"q\"").ok());
  auto odd = regions_->Ctl(Region::kEast, {"resnapshot", "public.odd; name\"q"});
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(odd->exit_code, 0) << odd->output;
  ASSERT_TRUE(regions_->WaitForTablesEqual({"public.\"odd; name\"\"q\""}, absl::Seconds(60)).ok());

  // Any role may emit a message with the marker's prefix: unsigned or wrongly signed, it is
  // carried and never acted on (a marker acted on would look for its copy and stop the table).
  const std::string payload =
      "{\"v\":1,\"schema\":\"public\",\"name\":\"t\",\"id\":\"0123456789abcdef0123456789abcdef\"}";
  ASSERT_TRUE(east()
                  .Exec("CREATE ROLE app LOGIN; GRANT ALL ON ALL TABLES IN SCHEMA public TO app; "
                        "SET ROLE app; SELECT pg_logical_emit_message(true, 'ferry.resnapshot', '" +
                        payload + "'); SELECT pg_logical_emit_message(true, 'ferry.resnapshot', '" +
                        std::string(64, 'a') + " " + payload +
                        "'); UPDATE t SET v = 'after forgery' WHERE id = 7")
                  .ok());
  ASSERT_TRUE(
      regions_->ExecBehindFence(Region::kWest, "INSERT INTO t VALUES (9999, 'only on west')").ok());
  ASSERT_TRUE(east().Exec("INSERT INTO other VALUES (2)").ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual({"public.other"}, absl::Seconds(60)).ok());
  auto kept = west().QueryValue("SELECT v FROM t WHERE id = 9999");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->value_or(""), "only on west") << "a forged marker emptied the table";
  auto updated = west().QueryValue("SELECT v FROM t WHERE id = 7");
  ASSERT_TRUE(updated.ok());
  EXPECT_EQ(updated->value_or(""), "after forgery");
  EXPECT_FALSE(Stopped("public.t"));
}

// The staged copy lost between the copy's COMMIT and its capture (ferryd died after reading it,
// and the copy was deleted while it was down): capture goes on, the marker arrives marked, and
// the standby stops the table saying to run the re-snapshot again; run again, it converges.
TEST_F(ResnapshotE2ETest, ALostCopyStopsTheTableUntilTheResnapshotIsRunAgain) {
  ASSERT_TRUE(regions_->StopDaemon(Region::kEast).ok());
  ASSERT_TRUE(
      regions_->StartDaemon(Region::kEast, {"FERRY_KILL_POINT=capture.resnapshot_read"}).ok());
  ASSERT_TRUE(regions_->ExecBehindFence(Region::kWest, "DELETE FROM t WHERE id > 100").ok());
  auto call = regions_->Ctl(Region::kEast, {"resnapshot", "public.t"});
  ASSERT_TRUE(call.ok());
  ASSERT_TRUE(regions_->WaitForExit(Region::kEast));
  const std::string dir = regions_->data_dir(Region::kEast) + "/resnapshot";
  ASSERT_FALSE(std::filesystem::is_empty(dir));
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::filesystem::remove(entry.path());
  }
  ASSERT_TRUE(regions_->StartDaemon(Region::kEast).ok());

  std::string reason;
  const absl::Time until = absl::Now() + absl::Seconds(60);
  while (reason.empty() && absl::Now() < until) {
    auto s = regions_->Status(Region::kWest);
    ASSERT_TRUE(s.ok()) << s.status();
    for (const auto& t : s->tables()) {
      if (t.table() == "public.t" && t.state() == "stopped") reason = t.reason();
    }
    if (reason.empty()) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_NE(reason.find("run `ferryctl resnapshot public.t` on the primary again"),
            std::string::npos)
      << reason;
  ASSERT_TRUE(east().Exec("INSERT INTO other VALUES (3); UPDATE t SET v = 'x' WHERE id = 3").ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual({"public.other"}, absl::Seconds(60)).ok());

  auto again = regions_->Ctl(Region::kEast, {"resnapshot", "public.t"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->exit_code, 0) << again->output;
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  WaitUntilNotStopped("public.t");
}

// A SIGKILL of the primary's ferryd after the copy was staged and before its transaction
// committed (kill point resnapshot.copied): the transaction rolls back, nothing reaches the
// standby (the table stays stopped), and the next capture start deletes the orphaned copy (its
// transaction id is aborted).
TEST_F(ResnapshotE2ETest, ACopyWhoseTransactionNeverCommittedIsDeletedAtTheNextStart) {
  ASSERT_NO_FATAL_FAILURE(StopTable());
  ASSERT_TRUE(regions_->StopDaemon(Region::kEast).ok());
  ASSERT_TRUE(regions_->StartDaemon(Region::kEast, {"FERRY_KILL_POINT=resnapshot.copied"}).ok());
  auto call = regions_->Ctl(Region::kEast, {"resnapshot", "public.t"});
  ASSERT_TRUE(call.ok());
  EXPECT_EQ(call->exit_code, 1) << call->output;
  ASSERT_TRUE(regions_->WaitForExit(Region::kEast));
  const std::string dir = regions_->data_dir(Region::kEast) + "/resnapshot";
  ASSERT_FALSE(std::filesystem::is_empty(dir));
  // Until its backend noticed the lost client and rolled back (the lock goes with it).
  const absl::Time until = absl::Now() + absl::Seconds(60);
  while (absl::Now() < until) {
    auto locks = east().QueryValue(
        "SELECT count(*) FROM pg_locks WHERE relation = 't'::regclass AND mode = 'ShareLock'");
    ASSERT_TRUE(locks.ok()) << locks.status();
    if (locks->value_or("") == "0") break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  std::string orphan;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) orphan = entry.path();
  ASSERT_TRUE(regions_->StartDaemon(Region::kEast).ok());
  ASSERT_TRUE(east().Exec("INSERT INTO other VALUES (4)").ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual({"public.other"}, absl::Seconds(60)).ok());
  EXPECT_FALSE(std::filesystem::exists(orphan)) << "the orphaned copy is still there";
  EXPECT_TRUE(Stopped("public.t")) << "nothing was committed: the stop stays";

  auto again = regions_->Ctl(Region::kEast, {"resnapshot", "public.t"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->exit_code, 0) << again->output;
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  WaitUntilNotStopped("public.t");
}

// A stopped table whose changes were released from the log (over
// apply.stopped_table_retention_bytes: state needs_resnapshot, resume-table refuses it) is
// recovered by a re-snapshot: equal again, and neither stopped nor needing a re-snapshot.
class ResnapshotRetentionE2ETest : public ResnapshotE2ETest {
 protected:
  TwoRegionsOptions Options() override {
    return {.schema_sql = kSchema,
            .apply_yaml = "  stopped_table_retention_bytes: 64KiB\n",
            .extra_yaml = "log:\n  retention_bytes: 0\n  retention_seconds: 0\n"};
  }
};

TEST_F(ResnapshotRetentionE2ETest, ATableThatNeedsAResnapshotIsRecoveredByOne) {
  ASSERT_NO_FATAL_FAILURE(StopTable());
  ASSERT_TRUE(east()
                  .Exec("DO $$ BEGIN FOR i IN 1..40 LOOP UPDATE t SET v = repeat(md5(i::text), "
                        "16); INSERT INTO other VALUES (1000 + i); COMMIT; END LOOP; END $$")
                  .ok());
  std::string state;
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (absl::Now() < deadline && state != "needs_resnapshot") {
    auto s = regions_->Status(Region::kWest);
    ASSERT_TRUE(s.ok()) << s.status();
    for (const auto& t : s->tables()) {
      if (t.table() == "public.t") state = t.state();
    }
    if (state != "needs_resnapshot") absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(state, "needs_resnapshot");
  auto refused = regions_->Ctl(Region::kWest, {"resume-table", "public.t"});
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->exit_code, 1) << refused->output;

  auto done = regions_->Ctl(Region::kEast, {"resnapshot", "public.t"});
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->exit_code, 0) << done->output;
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  bool listed = true;
  const absl::Time until = absl::Now() + absl::Seconds(60);
  while (listed && absl::Now() < until) {
    auto s = regions_->Status(Region::kWest);
    ASSERT_TRUE(s.ok()) << s.status();
    listed = false;
    for (const std::string& t : StoppedTables(*s)) listed |= t == "public.t";
    if (listed) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_FALSE(listed) << "public.t is still stopped or needs a re-snapshot";
  ASSERT_TRUE(east().Exec("UPDATE t SET v = 'after' WHERE id = 9").ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(60)).ok());
}

// A SIGKILL of the primary's ferryd after the copy's COMMIT: right after it in the admin call
// (resnapshot.committed; the capture may or may not have appended it by then), and in the
// capture after the copy was read and before anything of it was durable
// (capture.resnapshot_read). After a restart the re-snapshot arrives all the same, the tables
// end equal with every acknowledged write, and no staged copy is left.
class ResnapshotCrashE2ETest : public ResnapshotE2ETest,
                               public ::testing::WithParamInterface<std::string> {};

TEST_P(ResnapshotCrashE2ETest, APrimarySigkilledAfterTheCopysCommitStillDeliversIt) {
  ASSERT_NO_FATAL_FAILURE(StopTable());
  ASSERT_TRUE(regions_->StopDaemon(Region::kEast).ok());
  ASSERT_TRUE(regions_->StartDaemon(Region::kEast, {"FERRY_KILL_POINT=" + GetParam()}).ok());

  Writer writer(east(), 2000, 200);
  writer.WaitForWrites(20);
  auto call = regions_->Ctl(Region::kEast, {"resnapshot", "public.t"});
  ASSERT_TRUE(call.ok());
  if (GetParam() == "resnapshot.committed") {
    EXPECT_EQ(call->exit_code, 1) << "the admin call died with ferryd: " << call->output;
  }
  ASSERT_TRUE(regions_->WaitForExit(Region::kEast));
  EXPECT_NE(ReadFile(regions_->log_path(Region::kEast)).find("kill point " + GetParam()),
            std::string::npos);
  writer.Join();
  ASSERT_TRUE(regions_->StartDaemon(Region::kEast).ok());

  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(90)).ok());
  ExpectOracleOnWest(writer.acked());
  WaitUntilNotStopped("public.t");
  ExpectNoStagedCopies();
}

std::string KillPointTestName(const ::testing::TestParamInfo<std::string>& point) {
  std::string name = point.param;
  for (char& c : name) {
    if (c == '.') c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(KillPoints, ResnapshotCrashE2ETest,
                         ::testing::Values("resnapshot.committed", "capture.resnapshot_read"),
                         KillPointTestName);

}  // namespace
}  // namespace ferry::testing
