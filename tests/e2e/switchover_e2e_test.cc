// Planned switchover end to end (`ferryctl reverse`, docs/operations.md "Switchover"): two
// Postgres 15 clusters, two ferryd processes. The oracle is every write a database acknowledged:
// a writer inserts into a bigserial table on whichever region takes writes, moving on only when
// the fence refuses it, and records each id the database returned. Afterwards every recorded id
// is in both regions, the regions are equal, the old primary refuses writes with the fence's
// error, and the new primary's writes replicate back.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "connectors/postgres/common/pg_connection.h"
#include "tests/e2e/two_regions.h"
#include "tests/support/http_get.h"
#include "tests/support/read_file.h"
#include "tests/support/wait_until.h"

namespace ferry::testing {
namespace {

constexpr char kSchema[] = R"sql(
  CREATE TABLE acked (id bigserial PRIMARY KEY, writer int NOT NULL, note text);
  CREATE TABLE kv (k int PRIMARY KEY, v text);
  INSERT INTO kv SELECT g, 'v' || g FROM generate_series(1, 100) g;
)sql";

const std::vector<std::string> kTables = {"acked", "kv"};

Region Other(Region r) { return r == Region::kEast ? Region::kWest : Region::kEast; }

// Inserts into `acked` as fast as it can, on the region that takes writes, and records every id
// the database acknowledged. A refusal by the fence (SQLSTATE 25006) moves it to the other
// region; a session the fence ended reconnects. Any other error is recorded as unexpected (a
// duplicate key here would be a sequence handed out twice).
class AckedWriter {
 public:
  AckedWriter(TwoRegions* regions, int writer) : regions_(regions), writer_(writer) {
    thread_ = std::thread([this] { Run(); });
  }
  ~AckedWriter() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::set<int64_t> acked() {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_;
  }
  std::vector<std::string> refusals() {
    std::lock_guard<std::mutex> lock(mu_);
    return refusals_;
  }
  std::vector<std::string> unexpected() {
    std::lock_guard<std::mutex> lock(mu_);
    return unexpected_;
  }
  // Blocks until `n` more writes were acknowledged on `region` (bounded).
  bool WaitForWritesOn(Region region, size_t n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    const size_t start = count_on_[static_cast<int>(region)].load();
    while (count_on_[static_cast<int>(region)].load() < start + n) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(5));  // polling the writer's progress
    }
    return true;
  }

 private:
  void Run() {
    Region region = Region::kEast;
    std::unique_ptr<pg::PgConnection> conn;
    int64_t n = 0;
    while (!stop_) {
      if (conn == nullptr || conn->broken()) {
        auto c = pg::PgConnection::Connect(regions_->pg(region).dsn());
        if (!c.ok()) {
          absl::SleepFor(absl::Milliseconds(10));  // a backoff, not a synchronisation
          continue;
        }
        conn = *std::move(c);
      }
      auto r = conn->ExecParams("INSERT INTO acked (writer, note) VALUES ($1, $2) RETURNING id",
                                {std::to_string(writer_), absl::StrCat("write ", ++n)});
      std::lock_guard<std::mutex> lock(mu_);
      if (r.ok()) {
        acked_.insert(std::stoll(std::string(r->Get(0, 0))));
        ++count_on_[static_cast<int>(region)];
        continue;
      }
      const std::string message(r.status().message());
      if (absl::StrContains(message, "[25006]")) {
        refusals_.push_back(message);
        region = Other(region);
        conn.reset();
      } else if (conn->broken() || absl::StrContains(message, "[57P01]")) {
        conn.reset();  // ended by the fence: not acknowledged, so not recorded
      } else {
        unexpected_.push_back(message);
      }
    }
  }

  TwoRegions* const regions_;
  const int writer_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> count_on_[2] = {0, 0};
  std::mutex mu_;
  std::set<int64_t> acked_;
  std::vector<std::string> refusals_;
  std::vector<std::string> unexpected_;
  std::thread thread_;
};

class SwitchoverE2ETest : public ::testing::Test {
 protected:
  void StartRegions(bool with_proxy = false, const std::string& apply_yaml = "") {
    TwoRegionsOptions options;
    options.schema_sql = kSchema;
    options.with_proxy = with_proxy;
    options.apply_yaml = apply_yaml;
    auto regions = TwoRegions::Start(options);
    ASSERT_TRUE(regions.ok()) << regions.status();
    regions_ = std::move(*regions);
  }
  PgCluster& pg(Region r) { return regions_->pg(r); }

  // Both regions settled: `primary` is the replicating primary with its fence lifted, the other
  // a replicating, fenced standby, both under the same epoch.
  void ExpectSettled(Region primary) {
    auto p = regions_->PollStatus(primary, [](const v1::StatusReply& s) {
      return s.role() == "primary" && s.state() == "replicating" && s.fence() == "lifted";
    });
    ASSERT_TRUE(p.ok()) << p.status();
    auto s = regions_->PollStatus(Other(primary), [](const v1::StatusReply& r) {
      return r.role() == "standby" && r.state() == "replicating" && r.fence() == "raised";
    });
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(p->epoch(), s->epoch());
    EXPECT_TRUE(s->fenced());
    EXPECT_FALSE(p->fenced());
  }

  // A write on `primary` reaches the other region; one on the other is refused by the fence.
  void ExpectWritesGoOneWay(Region primary, int key) {
    ASSERT_TRUE(
        pg(primary).Exec(absl::StrCat("INSERT INTO kv VALUES (", key, ", 'one way')")).ok());
    const absl::Status refused =
        pg(Other(primary)).Exec(absl::StrCat("INSERT INTO kv VALUES (", key + 1, ", 'refused')"));
    EXPECT_FALSE(refused.ok());
    EXPECT_NE(refused.message().find("fenced"), std::string::npos) << refused;
    EXPECT_NE(refused.message().find(primary == Region::kEast ? "write to region east"
                                                              : "write to region west"),
              std::string::npos)
        << refused;
    const absl::Status equal = regions_->WaitForTablesEqual(kTables, absl::Seconds(120));
    ASSERT_TRUE(equal.ok()) << equal;
  }

  // Every id the writer recorded is in both regions.
  void ExpectEveryAcknowledgedWrite(const std::set<int64_t>& acked) {
    for (Region r : {Region::kEast, Region::kWest}) {
      auto rows = pg(r).Query("SELECT id FROM acked");
      ASSERT_TRUE(rows.ok()) << rows.status();
      std::set<int64_t> present;
      for (const auto& row : *rows) present.insert(std::stoll(row[0].value_or("0")));
      size_t missing = 0;
      for (int64_t id : acked) missing += present.contains(id) ? 0 : 1;
      EXPECT_EQ(missing, 0u) << (r == Region::kEast ? "east" : "west") << " lacks " << missing
                             << " of " << acked.size() << " acknowledged writes";
    }
  }

  void TearDown() override {
    if (HasFailure() && regions_) std::cerr << regions_->BothLogTails(12000);
  }
  std::unique_ptr<TwoRegions> regions_;
};

// The switchover under load: pgbench and the recording writer on east; `ferryctl reverse`;
// writes move to west when east's fence refuses them; and `reverse` sent to the (new) standby
// switches back.
TEST_F(SwitchoverE2ETest, ReverseUnderLoadKeepsEveryAcknowledgedWriteAndSwitchesBack) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  // pgbench beside the writer (its clients end when the fence refuses them).
  auto init =
      ChildProcess::Spawn(std::vector<std::string>{"/usr/lib/postgresql/15/bin/pgbench", "-i", "-s",
                                                   "1", "-q", pg(Region::kEast).dsn()},
                          regions_->log_path(Region::kEast) + ".pgbench-init");
  ASSERT_TRUE(init.ok()) << init.status();
  ASSERT_EQ((*init)->Wait(), 0);
  auto bench =
      ChildProcess::Spawn(std::vector<std::string>{"/usr/lib/postgresql/15/bin/pgbench", "-c", "2",
                                                   "-T", "600", "-n", pg(Region::kEast).dsn()},
                          regions_->log_path(Region::kEast) + ".pgbench");
  ASSERT_TRUE(bench.ok()) << bench.status();
  const std::vector<std::string> tables = {
      "acked", "kv", "pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"};

  AckedWriter writer(regions_.get(), 1);
  ASSERT_TRUE(writer.WaitForWritesOn(Region::kEast, 200));
  auto reversed = regions_->Ctl(Region::kEast, {"reverse", "--json"});
  ASSERT_TRUE(reversed.ok()) << reversed.status();
  ASSERT_EQ(reversed->exit_code, 0) << reversed->output;
  EXPECT_NE(reversed->output.find("\"new_primary\": \"west\""), std::string::npos)
      << reversed->output;
  ASSERT_NO_FATAL_FAILURE(ExpectSettled(Region::kWest));
  // Both regions keep the switchover as their last change (issue #20: status, metrics, page).
  for (Region r : {Region::kEast, Region::kWest}) {
    auto s = regions_->Status(r);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->last_change().kind(), "switchover") << s->DebugString();
    EXPECT_EQ(s->last_change().new_primary(), "west");
    EXPECT_EQ(s->last_change().epoch(), 2u);
    EXPECT_GT(s->last_change().duration_seconds(), 0);
    EXPECT_GT(s->last_change().finished_at_us(), 0);
  }
  ASSERT_TRUE(writer.WaitForWritesOn(Region::kWest, 200));  // the writer moved to west
  (*bench)->Kill(SIGKILL);
  (void)(*bench)->Wait();

  // Switch back, sent to the standby (east).
  auto back = regions_->Ctl(Region::kEast, {"reverse"});
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->exit_code, 0) << back->output;
  EXPECT_NE(back->output.find("east is the primary under epoch 3"), std::string::npos)
      << back->output;
  ASSERT_NO_FATAL_FAILURE(ExpectSettled(Region::kEast));
  ASSERT_TRUE(writer.WaitForWritesOn(Region::kEast, 200));
  writer.Stop();

  EXPECT_TRUE(writer.unexpected().empty()) << writer.unexpected().front();
  ASSERT_GE(writer.refusals().size(), 2u);
  EXPECT_NE(writer.refusals().front().find("ferry: region east is fenced"), std::string::npos)
      << writer.refusals().front();
  EXPECT_NE(writer.refusals().front().find("write to region west"), std::string::npos)
      << writer.refusals().front();
  const absl::Status equal = regions_->WaitForTablesEqual(tables, absl::Seconds(180));
  ASSERT_TRUE(equal.ok()) << equal;
  ASSERT_NO_FATAL_FAILURE(ExpectEveryAcknowledgedWrite(writer.acked()));
  ASSERT_NO_FATAL_FAILURE(ExpectWritesGoOneWay(Region::kEast, 100001));
}

// West applied every write east acknowledged; then west's database crashes and takes back
// commits apply had made and counted (asynchronous, not yet written out), just before a reverse
// and before west's apply notices by itself (it asks its database only once a minute here).
// The switchover must not hand writes to west without them: west waits until its database
// holds everything durably, which makes apply notice the crash and apply them again.
TEST_F(SwitchoverE2ETest, AStandbyDatabaseCrashJustBeforeAReverseLosesNoAcknowledgedWrite) {
  ASSERT_NO_FATAL_FAILURE(StartRegions(false, "  durable_poll_ms: 60000\n"));
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(120)).ok());
  auto lost = regions_->CrashStandbyDatabaseTakingBackCommits(
      "acked", "INSERT INTO acked (writer, note) VALUES (1, 'acknowledged')", 20);
  ASSERT_TRUE(lost.ok()) << lost.status();
  ASSERT_GT(*lost, 0);
  auto east_rows = regions_->TableRows(Region::kEast, "acked");
  ASSERT_TRUE(east_rows.ok()) << east_rows.status();

  auto reversed = regions_->Ctl(Region::kEast, {"reverse"});
  ASSERT_TRUE(reversed.ok()) << reversed.status();
  ASSERT_EQ(reversed->exit_code, 0) << reversed->output;
  ASSERT_NO_FATAL_FAILURE(ExpectSettled(Region::kWest));
  auto west_rows = regions_->TableRows(Region::kWest, "acked");
  ASSERT_TRUE(west_rows.ok()) << west_rows.status();
  EXPECT_EQ(west_rows->size(), east_rows->size()) << "the crash took back " << *lost << " rows";
  EXPECT_TRUE(*west_rows == *east_rows);
}

// The state letter of a process in /proc/PID/stat ('T': stopped); '?' when it cannot be read.
char ProcessState(int pid) {
  const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  const size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() ? stat[close + 2] : '?';
}

size_t CountOf(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// The narrower window: west applied the reverse's marker and stopped at a pause point just
// before it waits for its database to hold everything durably; its database then crashes and
// takes back commits apply had made and counted (asynchronous; apply asks its database only once
// a minute here, so nothing else notices in time). West must not take writes without them: the
// wait makes apply notice the crash and apply them again.
//
// To make the crash take commits back whatever the timing, west's WAL writer is stopped
// (SIGSTOP) before east's rows arrive, so their commits stay in the database's WAL buffers, and
// the crash is its SIGKILL: Postgres restarts every process after one died, and recovers only
// what reached the WAL files. Up to three reverses, until a crash took rows back.
TEST_F(SwitchoverE2ETest, ACrashOfTheNewPrimarysDatabaseAfterTheMarkerLosesNoAcknowledgedWrite) {
  ASSERT_NO_FATAL_FAILURE(StartRegions(false, "  durable_poll_ms: 60000\n"));
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(120)).ok());
  ASSERT_TRUE(regions_->StopDaemon(Region::kWest).ok());
  ASSERT_TRUE(
      regions_->StartDaemon(Region::kWest, {"FERRY_PAUSE_POINT=switchover.marker_applied"}).ok());
  const std::string pause_line = "ferry: pause point switchover.marker_applied@";
  auto count_west = [&]() -> int64_t {
    auto n = pg(Region::kWest).QueryValue("SELECT count(*) FROM acked");
    int64_t count = -1;
    if (!n.ok() || !n->has_value() || !absl::SimpleAtoi(**n, &count)) return -1;
    return count;
  };
  int64_t lost = 0;
  bool west_is_primary = false;
  for (int attempt = 1; attempt <= 3 && lost == 0; ++attempt) {
    if (west_is_primary) {
      // The last crash took nothing back: west is the primary; east again, for another try.
      auto back = regions_->Ctl(Region::kWest, {"reverse"});
      ASSERT_TRUE(back.ok()) << back.status();
      ASSERT_EQ(back->exit_code, 0) << back->output;
      ASSERT_NO_FATAL_FAILURE(ExpectSettled(Region::kEast));
      west_is_primary = false;
    }
    auto walwriter =
        pg(Region::kWest)
            .QueryValue("SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'");
    int walwriter_pid = 0;
    ASSERT_TRUE(walwriter.ok() && walwriter->has_value() &&
                absl::SimpleAtoi(**walwriter, &walwriter_pid) && walwriter_pid > 0)
        << walwriter.status();
    ASSERT_EQ(kill(walwriter_pid, SIGSTOP), 0);
    // However the attempt ends before the crash (a failed assertion included): a stopped WAL
    // writer would hold up the cluster's shutdown. Disarmed once the crash killed it.
    struct ResumeOnExit {
      int pid;
      ~ResumeOnExit() {
        if (pid > 0) kill(pid, SIGCONT);
      }
    } resume_walwriter{walwriter_pid};
    // Until west's database holds a batch of east's rows in its WAL buffers only: apply flushes
    // the WAL when it asks for the durable progress (when it starts, then once a minute here).
    bool unflushed = false;
    for (int batch = 1; batch <= 3 && !unflushed; ++batch) {
      auto before = pg(Region::kWest).QueryValue("SELECT pg_current_wal_insert_lsn()::text");
      ASSERT_TRUE(before.ok() && before->has_value()) << before.status();
      for (int i = 0; i < 20; ++i) {
        ASSERT_TRUE(pg(Region::kEast)
                        .Exec("INSERT INTO acked (writer, note) VALUES (1, 'acknowledged')")
                        .ok());
      }
      ASSERT_TRUE(regions_->WaitForTablesEqual({"acked"}, absl::Seconds(120)).ok());
      auto flushed = pg(Region::kWest)
                         .QueryValue(absl::StrCat("SELECT pg_current_wal_flush_lsn() <= '",
                                                  **before, "'::pg_lsn"));
      ASSERT_TRUE(flushed.ok()) << flushed.status();
      unflushed = flushed->value_or("") == "t";
    }
    if (!unflushed) {
      std::cout << "attempt " << attempt << ": apply flushed every batch; the next attempt\n";
      continue;  // (its WAL writer resumed; west is still the standby)
    }
    auto east_rows = regions_->TableRows(Region::kEast, "acked");
    ASSERT_TRUE(east_rows.ok()) << east_rows.status();
    const size_t pauses = CountOf(ReadFile(regions_->log_path(Region::kWest)), pause_line);

    absl::StatusOr<TwoRegions::CtlResult> reversed = absl::UnknownError("not run");
    // Its timeout runs while west is stopped and its database recovers: ample.
    std::thread reverse([&] {
      reversed = regions_->Ctl(Region::kEast, {"reverse", "--timeout", "300"});
    });
    // West stops at the pause point (it says so first, then stops itself).
    const bool paused = ferry::testing::WaitUntil(
        [&] {
          return CountOf(ReadFile(regions_->log_path(Region::kWest)), pause_line) > pauses &&
                 ProcessState(regions_->pid(Region::kWest)) == 'T';
        },
        absl::Seconds(120), absl::Milliseconds(20));
    // West's database crashes; it is back once it answers again (after its recovery), and only
    // once the old processes are gone: one that still answers shows the rows not yet lost.
    int64_t west_after_crash = -1;
    if (paused && kill(walwriter_pid, SIGKILL) == 0) {
      resume_walwriter.pid = 0;
      ferry::testing::WaitUntil(
          [&] {
            return ProcessState(walwriter_pid) == '?' && (west_after_crash = count_west()) >= 0;
          },
          absl::Seconds(120), absl::Milliseconds(50));
    }
    kill(regions_->pid(Region::kWest), SIGCONT);
    reverse.join();
    ASSERT_TRUE(paused) << "west never reached the pause point";
    ASSERT_GE(west_after_crash, 0) << "west's database did not come back from the crash";
    lost = static_cast<int64_t>(east_rows->size()) - west_after_crash;
    std::cout << "attempt " << attempt << ": the crash took back " << lost << " rows\n";
    ASSERT_TRUE(reversed.ok()) << reversed.status();
    ASSERT_EQ(reversed->exit_code, 0) << reversed->output;
    ASSERT_NO_FATAL_FAILURE(ExpectSettled(Region::kWest));
    west_is_primary = true;
    auto west_rows = regions_->TableRows(Region::kWest, "acked");
    ASSERT_TRUE(west_rows.ok()) << west_rows.status();
    EXPECT_EQ(west_rows->size(), east_rows->size())
        << "attempt " << attempt << ": the crash took back " << lost << " rows";
    EXPECT_TRUE(*west_rows == *east_rows);
  }
  EXPECT_GT(lost, 0) << "3 crashes of west's database took back none of apply's commits";
}

// A bigserial key: the new primary's sequence continues past every value the old one handed
// out (sequence values travel with the stream, periodically and at the fence), so inserts on
// the new primary never collide with replicated rows.
TEST_F(SwitchoverE2ETest, SequencesCarryOverSoNewKeysNeverCollide) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  // The standby made the publication at its first start (FOR ALL TABLES needs a superuser,
  // which apply's role is), and holds no slot.
  auto published = pg(Region::kWest).Query("SELECT count(*) FROM pg_publication");
  ASSERT_TRUE(published.ok());
  EXPECT_EQ((*published)[0][0].value_or(""), "1");
  ASSERT_TRUE(pg(Region::kEast)
                  .Exec("INSERT INTO acked (writer, note) SELECT 1, 'east' FROM "
                        "generate_series(1, 500); SELECT nextval('acked_id_seq') FROM "
                        "generate_series(1, 50)")
                  .ok());
  // The standby's sequence follows the primary's through the stream (ferry.sequences, sent
  // every 5 s when a value changed), before any switchover.
  const absl::Time carried_by = absl::Now() + absl::Seconds(60);
  int64_t carried = 0;
  while (absl::Now() < carried_by) {
    // (The sequence exists on west once the initial snapshot created its table.)
    auto v = pg(Region::kWest).Query("SELECT last_value FROM acked_id_seq");
    carried = v.ok() ? std::stoll((*v)[0][0].value_or("0")) : 0;
    if (carried >= 550) break;
    absl::SleepFor(absl::Milliseconds(200));  // polling a condition, not synchronisation
  }
  EXPECT_EQ(carried, 550) << "the standby's sequence did not follow the primary's";
  auto reversed = regions_->Ctl(Region::kEast, {"reverse"});
  ASSERT_TRUE(reversed.ok()) << reversed.status();
  ASSERT_EQ(reversed->exit_code, 0) << reversed->output;
  ASSERT_NO_FATAL_FAILURE(ExpectSettled(Region::kWest));
  // Only the new primary holds a slot: the old one's retains no WAL any more.
  for (Region r : {Region::kEast, Region::kWest}) {
    auto slots = pg(r).Query("SELECT slot_name FROM pg_replication_slots");
    ASSERT_TRUE(slots.ok());
    ASSERT_EQ(slots->size(), r == Region::kWest ? 1u : 0u);
  }
  auto east_last = pg(Region::kEast).Query("SELECT last_value FROM acked_id_seq");
  auto west_last = pg(Region::kWest).Query("SELECT last_value FROM acked_id_seq");
  ASSERT_TRUE(east_last.ok() && west_last.ok());
  // The flip adds failover.sequence_gap (100000) to the carried value.
  EXPECT_EQ(std::stoll((*west_last)[0][0].value_or("0")), 550 + 100000);
  EXPECT_GE(std::stoll((*west_last)[0][0].value_or("0")),
            std::stoll((*east_last)[0][0].value_or("0")));
  ASSERT_TRUE(pg(Region::kWest)
                  .Exec("INSERT INTO acked (writer, note) SELECT 2, 'west' FROM "
                        "generate_series(1, 100)")
                  .ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(120)).ok());
  auto rows = pg(Region::kEast).Query("SELECT count(*), count(DISTINCT id) FROM acked");
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ((*rows)[0][0].value_or(""), "600");
  EXPECT_EQ((*rows)[0][1].value_or(""), "600");
}

// With the peer's ferryd down, reverse fails with the reason and leaves the primary writable.
TEST_F(SwitchoverE2ETest, ReverseWithThePeerDownFailsCleanlyAndStaysWritable) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  ASSERT_TRUE(regions_->StopDaemon(Region::kWest).ok());
  auto refused = regions_->Ctl(Region::kEast, {"reverse", "--timeout", "5"});
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->exit_code, 1) << refused->output;
  EXPECT_NE(refused->output.find("cannot be reached"), std::string::npos) << refused->output;
  auto east = regions_->Status(Region::kEast);
  ASSERT_TRUE(east.ok());
  EXPECT_EQ(east->role(), "primary");
  EXPECT_EQ(east->state(), "replicating");
  EXPECT_EQ(east->fence(), "lifted");
  ASSERT_TRUE(pg(Region::kEast).Exec("INSERT INTO kv VALUES (5000, 'still writable')").ok());
  ASSERT_TRUE(regions_->StartDaemon(Region::kWest).ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(120)).ok());
}

// A primary whose capture stopped until an operator acts (here its slot was dropped) cannot
// ship the changes it did not capture: `reverse` is refused before anything is fenced, naming
// the capture's error, and the primary stays writable (before the check it fenced the database
// and waited out its whole timeout for a marker the capture never reaches). `verify`, whose cut
// the standby can then never reach, is refused the same way (it waited 30 s for it).
TEST_F(SwitchoverE2ETest, APrimaryWhoseSlotWasDroppedRefusesReverseAndVerifyWithTheReason) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  // Past the initial snapshot first: a slot dropped during it is made again, by design (the
  // snapshot starts over). A write made now reaches west only once capture streams.
  ASSERT_TRUE(pg(Region::kEast).Exec("INSERT INTO kv VALUES (5999, 'streamed')").ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(120)).ok());
  // The walsender holds the slot: end it, then drop the slot before the capture reconnects (its
  // source retries after 100 ms at first), again when the capture got there first.
  absl::Status dropped = absl::UnknownError("not tried");
  for (int attempt = 0; attempt < 100 && !dropped.ok(); ++attempt) {
    (void)pg(Region::kEast)
        .Exec(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
            "WHERE slot_name = 'ferry_east' AND active_pid IS NOT NULL");
    dropped = pg(Region::kEast).Exec("SELECT pg_drop_replication_slot('ferry_east')");
    if (!dropped.ok()) absl::SleepFor(absl::Milliseconds(20));  // the walsender still exiting
  }
  ASSERT_TRUE(dropped.ok()) << dropped;
  // The capture finds the slot gone when it looks it up, or when it starts streaming from it
  // (dropped in between): either stops it until an operator acts, with the recovery's pointer.
  auto slot_gone = [](absl::string_view error) {
    return (absl::StrContains(error, "the slot no longer exists") ||
            absl::StrContains(error, "replication slot \"ferry_east\" does not exist")) &&
           absl::StrContains(error, "capture stopped so that no change is skipped silently");
  };
  auto halted = regions_->PollStatus(
      Region::kEast, [&](const v1::StatusReply& s) { return slot_gone(s.last_error()); });
  ASSERT_TRUE(halted.ok()) << halted.status();
  // What the FerryCaptureDisconnected alert (deploy/prometheus/ferry-rules.yml) fires on.
  auto metrics =
      HttpGet(absl::StrCat("http://", regions_->metrics_address(Region::kEast), "/metrics"));
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_NE(metrics->body.find("\nferry_source_connected 0\n"), std::string::npos);
  EXPECT_NE(metrics->body.find("\nferry_is_primary 1\n"), std::string::npos);

  auto refused = regions_->Ctl(Region::kEast, {"reverse", "--timeout", "120"});
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->exit_code, 1) << refused->output;
  EXPECT_NE(refused->output.find("region east's capture stopped until an operator acts"),
            std::string::npos)
      << refused->output;
  EXPECT_TRUE(slot_gone(refused->output)) << refused->output;
  EXPECT_NE(refused->output.find("nothing changed"), std::string::npos) << refused->output;
  auto east = regions_->Status(Region::kEast);
  ASSERT_TRUE(east.ok()) << east.status();
  EXPECT_EQ(east->role(), "primary");
  EXPECT_EQ(east->fence(), "lifted");
  EXPECT_FALSE(east->fenced());
  auto west = regions_->Status(Region::kWest);
  ASSERT_TRUE(west.ok()) << west.status();
  EXPECT_EQ(west->role(), "standby");
  EXPECT_EQ(west->epoch(), east->epoch());
  EXPECT_TRUE(pg(Region::kEast).Exec("INSERT INTO kv VALUES (6000, 'still writable')").ok());

  auto verify = regions_->Ctl(Region::kEast, {"verify", "--table", "public.kv"});
  ASSERT_TRUE(verify.ok()) << verify.status();
  EXPECT_EQ(verify->exit_code, 1) << verify->output;
  EXPECT_NE(verify->output.find("verify refused: region east's capture stopped until an "
                                "operator acts"),
            std::string::npos)
      << verify->output;
  EXPECT_NE(verify->output.find("the standby cannot reach the cut"), std::string::npos)
      << verify->output;
  EXPECT_TRUE(slot_gone(verify->output)) << verify->output;
}

// A partition while the standby flips: east (whose calls to west go through the fault proxy)
// loses the answer and cannot ask, so it stays fenced; west completes the flip and takes writes.
// At no moment are both writable; once the partition heals, east learns of the flip and becomes
// west's standby with nothing lost.
TEST_F(SwitchoverE2ETest, PartitionDuringTheFlipNeverLeavesTwoWritablePrimaries) {
  ASSERT_NO_FATAL_FAILURE(StartRegions(/*with_proxy=*/true));
  ASSERT_TRUE(pg(Region::kEast)
                  .Exec("INSERT INTO acked (writer, note) SELECT 4, 'before' FROM "
                        "generate_series(1, 50)")
                  .ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(120)).ok());
  // West's apply of kv waits behind a lock, so the switchover waits in west's last step.
  auto locker = pg::PgConnection::Connect(pg(Region::kWest).dsn());
  ASSERT_TRUE(locker.ok()) << locker.status();
  ASSERT_TRUE((*locker)->Exec("BEGIN; LOCK TABLE kv IN ACCESS EXCLUSIVE MODE").ok());
  ASSERT_TRUE(pg(Region::kEast).Exec("INSERT INTO kv VALUES (7001, 'waits on west')").ok());

  absl::StatusOr<TwoRegions::CtlResult> reversed = absl::UnknownError("not run");
  std::thread ctl([&] { reversed = regions_->Ctl(Region::kEast, {"reverse", "--timeout", "60"}); });
  auto waiting = regions_->PollStatus(Region::kWest, [](const v1::StatusReply& st) {
    return absl::StrContains(st.operation(), "applying through");
  });
  EXPECT_TRUE(waiting.ok()) << waiting.status();
  regions_->proxy()->SetBlackhole(true);  // east -> west: nothing gets through
  regions_->proxy()->DropConnections();
  ASSERT_TRUE((*locker)->Exec("ROLLBACK").ok());  // west applies and flips
  ctl.join();
  ASSERT_TRUE(reversed.ok()) << reversed.status();
  EXPECT_EQ(reversed->exit_code, 1) << reversed->output;
  EXPECT_NE(reversed->output.find("stays fenced"), std::string::npos) << reversed->output;

  auto west = regions_->PollStatus(Region::kWest, [](const v1::StatusReply& st) {
    return st.role() == "primary" && st.fence() == "lifted";
  });
  ASSERT_TRUE(west.ok()) << west.status();
  auto east = regions_->Status(Region::kEast);
  ASSERT_TRUE(east.ok());
  EXPECT_EQ(east->state(), "switching");
  EXPECT_EQ(east->fence(), "raised");
  const absl::Status refused = pg(Region::kEast).Exec("INSERT INTO kv VALUES (7002, 'split')");
  EXPECT_NE(refused.message().find("fenced"), std::string::npos) << refused;
  ASSERT_TRUE(pg(Region::kWest).Exec("INSERT INTO kv VALUES (7003, 'west during')").ok());

  regions_->proxy()->SetBlackhole(false);
  ASSERT_NO_FATAL_FAILURE(ExpectSettled(Region::kWest));
  const absl::Status equal = regions_->WaitForTablesEqual(kTables, absl::Seconds(120));
  ASSERT_TRUE(equal.ok()) << equal;
  auto rows = pg(Region::kEast).Query("SELECT count(*) FROM kv WHERE k IN (7001, 7003)");
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ((*rows)[0][0].value_or(""), "2");
}

// SIGKILL of either ferryd at each step of a switchover (named kill points), then a restart:
// afterwards exactly one region is primary, under one epoch, with nothing lost: every write
// acknowledged before the switchover is in both regions and a new write goes one way.
TEST_F(SwitchoverE2ETest, KilledAtEachStepSettlesWithOnePrimaryAndNothingLost) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  struct Step {
    const char* point;
    bool kill_primary;  // the primary's ferryd (else the standby's)
    bool flips;         // the switchover completes after the restart
  };
  const Step steps[] = {
      {"reverse.fenced", true, false},    {"reverse.drained", true, false},
      {"switchover.begun", false, false}, {"switchover.capture_prepared", false, false},
      {"role.flipped", false, true},      {"reverse.peer_flipped", true, true},
  };
  Region primary = Region::kEast;
  int key = 20000;
  for (const Step& step : steps) {
    SCOPED_TRACE(step.point);
    const Region victim = step.kill_primary ? primary : Other(primary);
    ASSERT_TRUE(pg(primary)
                    .Exec(absl::StrCat("INSERT INTO acked (writer, note) SELECT 3, '", step.point,
                                       "' FROM generate_series(1, 20)"))
                    .ok());
    ASSERT_TRUE(regions_->StopDaemon(victim).ok());
    ASSERT_TRUE(
        regions_->StartDaemon(victim, {std::string("FERRY_KILL_POINT=") + step.point}).ok());
    // reverse runs while the victim dies; its outcome is what the regions settle to.
    std::thread ctl([&] { (void)regions_->Ctl(primary, {"reverse", "--timeout", "30"}); });
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (regions_->running(victim) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));  // waiting for the kill point's SIGKILL
    }
    const bool killed = !regions_->running(victim);
    if (killed) {
      EXPECT_TRUE(regions_->StartDaemon(victim).ok());
    }
    ctl.join();
    ASSERT_TRUE(killed) << "the kill point was never reached";
    if (step.flips) primary = Other(primary);
    ASSERT_NO_FATAL_FAILURE(ExpectSettled(primary));
    const absl::Status equal = regions_->WaitForTablesEqual(kTables, absl::Seconds(120));
    ASSERT_TRUE(equal.ok()) << equal;
    auto rows =
        pg(Other(primary))
            .Query(absl::StrCat("SELECT count(*) FROM acked WHERE note = '", step.point, "'"));
    ASSERT_TRUE(rows.ok());
    EXPECT_EQ((*rows)[0][0].value_or(""), "20");
    ASSERT_NO_FATAL_FAILURE(ExpectWritesGoOneWay(primary, key += 10));
  }
}

}  // namespace
}  // namespace ferry::testing
