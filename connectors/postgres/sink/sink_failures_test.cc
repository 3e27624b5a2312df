// Integration tests of apply when something goes wrong (postgres_sink_test.cc has the rest):
// a session whose setup failed, conflicts under each policy, a table stopped past its log
// retention, schema changes and a dropped key, hostile input, and a target that crashes or
// restarts during apply or while apply is idle.
#include <gtest/gtest.h>
#include <signal.h>

#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "connectors/postgres/common/ferry_messages.h"
#include "connectors/postgres/common/lsn.h"
#include "connectors/postgres/common/pg_connection.h"
#include "connectors/postgres/sink/apply_test_fixture.h"
#include "connectors/postgres/sink/postgres_sink.h"
#include "connectors/postgres/testing/transaction_builders.h"
#include "engine/apply/apply_scheduler.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/wait_until.h"

namespace ferry {
namespace {

using namespace sink_test;  // NOLINT: test builders
using ::ferry::testing::PgCluster;
using ::ferry::testing::WaitUntil;

// After a crash of the target: apply noticed it (a round ended after `resets` of them) and the
// target holds everything through `last` durably again.
void ExpectCrashNoticedAndDurableThrough(ApplyScheduler& apply, uint64_t resets, uint64_t last) {
  ASSERT_TRUE(WaitUntil([&] { return apply.status().resets > resets; }, absl::Seconds(60)))
      << "apply did not notice the target's crash";
  ASSERT_TRUE(apply.WaitForDurable(last, absl::Seconds(120)))
      << "durable through " << apply.status().durable_seq << " of " << last;
}

// Regression: a session whose setup failed after its connection opened (a refused SET) kept
// that connection, so the next Begin applied without the session settings.
TEST_F(ApplyTest, SessionWhoseSetupFailedConnectsAgainAtTheNextBeginAndPrivilegesAreNamed) {
  ASSERT_TRUE(
      pg_->Exec("DROP ROLE IF EXISTS plain_applier; CREATE ROLE plain_applier LOGIN", "postgres")
          .ok());
  ASSERT_TRUE(pg_->Exec("ALTER DATABASE " + db_ + " OWNER TO plain_applier", "postgres").ok());
  auto sink = PostgresSink::Open({.dsn = pg_->dsn(db_) + " user=plain_applier",
                                  .source_region = region_,
                                  .replica_role = true});
  ASSERT_TRUE(sink.ok()) << sink.status();
  auto session = (*sink)->OpenSession(0);
  ASSERT_TRUE(session.ok()) << session.status();
  for (int attempt = 0; attempt < 2; ++attempt) {
    // session_replication_role needs a superuser: the setup fails, every time.
    absl::Status s = (*session)->Begin({.first_seq = 1});
    EXPECT_FALSE(s.ok()) << "attempt " << attempt;
    EXPECT_NE(s.message().find("session_replication_role"), std::string::npos) << s;
  }
  // And the sink says so plainly before apply starts, naming the role and the fix.
  auto state = (*sink)->LoadState({});
  ASSERT_FALSE(state.ok());
  EXPECT_EQ(state.status().code(), absl::StatusCode::kPermissionDenied) << state.status();
  EXPECT_NE(state.status().message().find("role 'plain_applier' is not a superuser"),
            std::string::npos)
      << state.status();
  EXPECT_NE(state.status().message().find("ALTER ROLE plain_applier SUPERUSER"), std::string::npos);
  // Once granted, the same sink goes on (apply retries: no restart needed).
  ASSERT_TRUE(pg_->Exec("ALTER ROLE plain_applier SUPERUSER", "postgres").ok());
  EXPECT_TRUE((*sink)->LoadState({}).ok());
  ASSERT_TRUE(pg_->Exec("ALTER ROLE plain_applier NOSUPERUSER", "postgres").ok());
}

TEST_F(ApplyTest, ConflictsUnderStopPolicyStopOnlyThatTable) {
  const v1::Relation other = Relation(5, "public", "other", {{"id", "integer", true}});
  uint64_t last = Append({Txn({kItems, other}, {Insert(1, {"1", "a", "b"}), Insert(5, {"1"})})});
  StartApply();
  WaitApplied(last);
  // A local write on the target makes the next insert conflict.
  ASSERT_TRUE(pg_->Exec("INSERT INTO items VALUES (2, 'local', 'l')", db_).ok());
  last =
      Append({Txn({kItems, other}, {Insert(5, {"2"}), Insert(1, {"2", "remote", "r"})}),
              Txn({kItems}, {Insert(1, {"3", "later", "l"})}), Txn({other}, {Insert(5, {"3"})})});
  WaitApplied(last);
  ApplyStatus s = apply_->status();
  ASSERT_EQ(s.stopped_tables.size(), 1u);
  const TableStop& stop = s.stopped_tables.begin()->second;
  EXPECT_EQ(stop.table.name, "items");
  EXPECT_EQ(stop.seq, 2u);
  EXPECT_NE(stop.reason.find("insert_exists"), std::string::npos) << stop.reason;
  // The other table went on, including the part of the conflicting transaction.
  EXPECT_EQ(Value("SELECT string_agg(id::text, ',' ORDER BY id) FROM other"), "1,2,3");
  EXPECT_EQ(Table("SELECT id, name FROM items ORDER BY id"), "1|a\n2|local\n");
  EXPECT_EQ(Table("SELECT seq, kind, resolution, remote_row->>'name', local_row->>'name' FROM "
                  "ferry.conflicts"),
            "2|insert_exists|table_stopped|remote|local\n");
  EXPECT_EQ(Table("SELECT table_name, stopped_at_seq FROM ferry.table_state"), "items|2\n");
  EXPECT_EQ(s.conflicts, 1u);

  // Survives a restart: the table is still stopped, its changes still skipped.
  apply_.reset();
  last = Append({Txn({kItems}, {Insert(1, {"4", "after", "x"})})});
  StartApply();
  WaitApplied(last);
  EXPECT_EQ(apply_->status().stopped_tables.size(), 1u);
  EXPECT_EQ(Value("SELECT count(*) FROM items"), "2");

  // The operator fixes the target and resumes: the skipped changes are applied in order.
  ASSERT_TRUE(pg_->Exec("DELETE FROM items WHERE id = 2", db_).ok());
  ASSERT_TRUE(apply_->ResumeTable({"public", "items"}).ok());
  EXPECT_TRUE(apply_->status().stopped_tables.empty());
  EXPECT_EQ(Table("SELECT id, name FROM items ORDER BY id"), "1|a\n2|remote\n3|later\n4|after\n");
  EXPECT_EQ(Value("SELECT count(*) FROM ferry.table_state"), "0");
  last = Append({Txn({kItems}, {Insert(1, {"5", "new", "x"})})});
  WaitApplied(last);
  EXPECT_EQ(Value("SELECT count(*) FROM items"), "5");
}

// Issue #14 item 8: a stopped table kept the inbound log from being trimmed forever. Past
// apply.stopped_table_retention_bytes it needs a re-snapshot: status says so with the reason,
// it stops pinning the log, resume-table refuses it with what to do, the other tables go on,
// and after a restart (its log trimmed meanwhile) it is still known as needing a re-snapshot.
// Mutant: without the release, apply_retain_from stays at the stop and the wait below fails.
TEST_F(ApplyTest, StoppedTableOverItsRetentionBoundNeedsAResnapshotAndStopsPinningTheLog) {
  const v1::Relation other = Relation(5, "public", "other", {{"id", "integer", true}});
  uint64_t last = Append({Txn({kItems, other}, {Insert(1, {"1", "a", "b"}), Insert(5, {"1"})})});
  const ApplyOptions options{.durable_poll = absl::ZeroDuration(),
                             .cursor_interval = absl::ZeroDuration(),
                             .stopped_table_retention_bytes = 64 << 10};
  StartApply(options);
  WaitApplied(last);
  ASSERT_TRUE(pg_->Exec("INSERT INTO items VALUES (2, 'local', 'l')", db_).ok());
  const uint64_t stop_seq = Append({Txn({kItems}, {Insert(1, {"2", "remote", "r"})})});
  WaitApplied(stop_seq);
  ASSERT_EQ(apply_->status().stopped_tables.size(), 1u);
  // Below the bound: the table keeps its log, and says how much.
  last = Append({Txn({kItems}, {Insert(1, {"3", "small", "s"})})});
  WaitApplied(last);
  {
    const ApplyStatus s = apply_->status();
    ASSERT_EQ(s.stopped_table_logs.size(), 1u);
    EXPECT_FALSE(s.stopped_table_logs.begin()->second.needs_resnapshot);
  }
  // Well over 64 KiB of the stopped table's changes, and the other table's beside them.
  std::vector<v1::Transaction> txns;
  for (int i = 10; i < 110; ++i) {
    txns.push_back(
        Txn({kItems, other}, {Insert(1, {absl::StrCat(i), "big", std::string(4096, 'x')}),
                              Insert(5, {absl::StrCat(i)})}));
  }
  last = Append(txns);
  WaitApplied(last);
  const TableName items{"public", "items"};
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  // Polls apply's status (not synchronisation) until `items` needs a re-snapshot; an entry that
  // does not when the deadline passes.
  auto needs_resnapshot = [&]() -> StoppedTableLog {
    while (absl::Now() < deadline) {
      const ApplyStatus s = apply_->status();
      auto it = s.stopped_table_logs.find(items);
      if (it != s.stopped_table_logs.end() && it->second.needs_resnapshot) return it->second;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return {};
  };
  StoppedTableLog entry = needs_resnapshot();
  ASSERT_TRUE(entry.needs_resnapshot) << "the stopped table never passed its bound";
  EXPECT_EQ(entry.cause, "retention_bytes");
  EXPECT_NE(entry.reason.find("apply.stopped_table_retention_bytes"), std::string::npos)
      << entry.reason;
  EXPECT_EQ(apply_->status().stopped_tables.at(items).seq, stop_seq);
  // It no longer pins the log: the retain cursor passes its stop, and the log is trimmed there.
  uint64_t retain = 0;
  while (absl::Now() < deadline) {  // polling the cursor apply writes, not synchronisation
    auto cursor = log_->GetCursor("apply_retain_from");
    ASSERT_TRUE(cursor.ok()) << cursor.status();
    retain = cursor->value_or(0);
    if (retain > stop_seq) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_GT(retain, stop_seq) << "the stopped table still pins the log";
  ASSERT_TRUE(log_->TrimBelow(retain).ok());
  EXPECT_GT(log_->first_seq(), stop_seq);
  // resume-table refuses, saying why and what to do.
  absl::Status resumed = apply_->ResumeTable(items);
  EXPECT_EQ(resumed.code(), absl::StatusCode::kFailedPrecondition) << resumed;
  EXPECT_NE(resumed.message().find("needs a re-snapshot"), std::string::npos) << resumed;
  EXPECT_NE(resumed.message().find("is gone"), std::string::npos) << resumed;
  EXPECT_NE(resumed.message().find("ferryctl --admin PRIMARY resnapshot "), std::string::npos)
      << resumed;
  EXPECT_EQ(apply_->status().stopped_tables.size(), 1u);
  // Nothing else is lost: the other table has every row, the stopped one what it had.
  EXPECT_EQ(Value("SELECT count(*) FROM other"), "101");
  EXPECT_EQ(Table("SELECT id, name FROM items ORDER BY id"), "1|a\n2|local\n");

  // After a restart the table's log is found trimmed: still needs a re-snapshot, still skipped,
  // the others apply.
  apply_.reset();
  last = Append({Txn({kItems, other}, {Insert(1, {"500", "after", "x"}), Insert(5, {"500"})})});
  StartApply(options);
  WaitApplied(last);
  entry = needs_resnapshot();
  EXPECT_EQ(entry.cause, "log_trimmed");
  EXPECT_EQ(apply_->ResumeTable(items).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Value("SELECT count(*) FROM other"), "102");
  EXPECT_EQ(Value("SELECT count(*) FROM items"), "2");
}

TEST_F(ApplyTest, ConflictsUnderApplyRemotePolicyAreResolvedAndRecorded) {
  uint64_t last = Append({Txn({kItems}, {Insert(1, {"1", "a", "b"}), Insert(1, {"2", "a", "b"})})});
  StartApply({}, {.conflict_policy = ConflictPolicy::kApplyRemote});
  WaitApplied(last);
  ASSERT_TRUE(
      pg_->Exec("INSERT INTO items VALUES (3, 'local', 'l'); DELETE FROM items WHERE id = 1;"
                "DELETE FROM items WHERE id = 2",
                db_)
          .ok());
  last = Append({Txn({kItems}, {Insert(1, {"3", "remote", "r"})}),
                 Txn({kItems}, {Update(1, {"1", "upd", "u"})}),
                 Txn({kItems}, {Delete(1, {"2", std::nullopt, std::nullopt})})});
  WaitApplied(last);
  EXPECT_TRUE(apply_->status().stopped_tables.empty()) << apply_->status().last_error;
  EXPECT_EQ(Table("SELECT id, name FROM items ORDER BY id"), "1|upd\n3|remote\n");
  EXPECT_EQ(Table("SELECT seq, kind, resolution, local_row->>'name' FROM ferry.conflicts ORDER BY "
                  "seq"),
            "2|insert_exists|applied_remote|local\n3|update_missing|applied_remote|NULL\n"
            "4|delete_missing|skipped|NULL\n");
  EXPECT_EQ(apply_->status().conflicts, 3u);
}

TEST_F(ApplyTest, SchemaChangesApplyAsTheSourcesDdlAndOtherShapeChangesStopTheirTable) {
  const v1::Relation a1 = Relation(1, "s1", "a", {{"id", "integer", true}, {"x", "text"}});
  const v1::Relation a2 =
      Relation(1, "s1", "a", {{"id", "integer", true}, {"x", "text"}, {"y", "bigint"}});
  const v1::Relation c1 = Relation(3, "public", "c", {{"id", "integer", true}});
  const v1::Relation c2 = Relation(3, "public", "c", {{"id", "integer", true}, {"y", "bigint"}});
  ASSERT_TRUE(pg_->Exec("CREATE TABLE b (id integer PRIMARY KEY, v integer)", db_).ok());
  const v1::Relation b_bad = Relation(2, "public", "b", {{"id", "integer", true}, {"v", "point"}});
  uint64_t last = Append({
      Txn({a1, c1}, {Insert(1, {"1", "one"}), Insert(3, {"1"})}),
      // The source's own DDL: existing rows get the default, as on the source.
      Txn({}, {DdlMessage("ALTER TABLE", "ALTER TABLE c ADD COLUMN y bigint NOT NULL DEFAULT 5",
                          {{"public", "c"}})}),
      Txn({c2}, {Insert(3, {"2", "6"})}),
      // A forged message (the capture could not check its signature) is never run.
      Txn({}, {DdlMessage("DROP TABLE", "DROP TABLE c", {{"public", "c"}}, false)}),
      // Shapes that changed without DDL: nothing is added or altered, the table stops.
      Txn({a2}, {Insert(1, {"2", "two", "22"})}),
      Txn({b_bad}, {Insert(2, {"1", "(1,1)"})}),
      Txn({c2}, {Insert(3, {"3", "7"})}),
  });
  StartApply();
  WaitApplied(last);
  EXPECT_EQ(Table("SELECT id, y FROM c ORDER BY id"), "1|5\n2|6\n3|7\n");
  EXPECT_EQ(Table("SELECT id, x FROM s1.a ORDER BY id"), "1|one\n");
  EXPECT_EQ(Value("SELECT count(*) FROM information_schema.columns WHERE table_name = 'a'"), "2");
  ApplyStatus s = apply_->status();
  ASSERT_EQ(s.stopped_tables.size(), 2u);
  const std::string a_reason = s.stopped_tables.at({"s1", "a"}).reason;
  EXPECT_NE(a_reason.find("column \"y\" (bigint) of the source is missing on the target"),
            std::string::npos)
      << a_reason;
  const std::string b_reason = s.stopped_tables.at({"public", "b"}).reason;
  EXPECT_NE(b_reason.find("the source sends point"), std::string::npos) << b_reason;
  EXPECT_EQ(Value("SELECT count(*) FROM b"), "0");
}

TEST_F(ApplyTest, ADroppedKeyStopsTheTable) {
  const v1::Relation a1 = Relation(1, "s1", "a", {{"id", "integer", true}, {"x", "text"}});
  const v1::Relation a_nokey = Relation(1, "s1", "a", {{"x", "text"}}, v1::REPLICA_IDENTITY_FULL);
  uint64_t last =
      Append({Txn({a1}, {Insert(1, {"1", "one"})}), Txn({a_nokey}, {Insert(1, {"nokey"})})});
  StartApply();
  WaitApplied(last);
  ASSERT_EQ(apply_->status().stopped_tables.size(), 1u);
  EXPECT_NE(apply_->status().stopped_tables.at({"s1", "a"}).reason.find("dropped key"),
            std::string::npos);
}

TEST_F(ApplyTest, HostileInputStopsTheTableAndNothingIsHalfApplied) {
  const v1::Relation good = Relation(7, "public", "good", {{"id", "integer", true}});
  const v1::Relation n = Relation(8, "public", "nums", {{"id", "integer", true}, {"v", "integer"}});
  const v1::Relation w = Relation(9, "public", "wide", {{"id", "integer", true}, {"v", "text"}});
  const v1::Relation big = Relation(10, "public", "big", {{"id", "integer", true}, {"v", "text"}});
  uint64_t last = Append({Txn({good, n, w, big}, {Insert(7, {"0"}), Insert(8, {"0", "0"}),
                                                  Insert(9, {"0", "0"}), Insert(10, {"0", "0"})})});
  StartApply();
  WaitApplied(last);
  std::vector<v1::Transaction> bad;
  // nums: the first change is fine, the second does not parse: none of the transaction's nums
  // changes may stay.
  bad.push_back(Txn({good, n}, {Insert(8, {"1", "1"}), Insert(7, {"1"}), Insert(8, {"2", "abc"})}));
  // wide: wrong number of values.
  bad.push_back(Txn({good, w}, {Insert(9, {"1", "1"}), Insert(7, {"2"}), Insert(9, {"2"})}));
  // big: a 64 MiB value.
  bad.push_back(
      Txn({good, big}, {Insert(10, {"1", std::string(64 << 20, 'x')}), Insert(7, {"3"})}));
  bad.push_back(Txn({good, n, w, big}, {Insert(7, {"4"}), Insert(8, {"9", "9"})}));
  apply_.reset();  // first: its reader thread waits on the log
  log_.reset();
  auto reopened = DurableLog::Open(
      {.path = dir_.File("inbound"), .sync = false, .max_record_bytes = 128 << 20});
  ASSERT_TRUE(reopened.ok());
  log_ = *std::move(reopened);
  last = Append(bad);
  StartApply();
  WaitApplied(last);
  EXPECT_EQ(Value("SELECT string_agg(id::text, ',' ORDER BY id) FROM good"), "0,1,2,3,4");
  EXPECT_EQ(Value("SELECT count(*) FROM nums"), "1");
  EXPECT_EQ(Value("SELECT count(*) FROM wide"), "1");
  EXPECT_EQ(Value("SELECT count(*) FROM big"), "1");
  ApplyStatus s = apply_->status();
  ASSERT_EQ(s.stopped_tables.size(), 3u);
  EXPECT_NE(s.stopped_tables.at({"public", "nums"}).reason.find("integer"), std::string::npos)
      << s.stopped_tables.at({"public", "nums"}).reason;
  EXPECT_EQ(s.stopped_tables.at({"public", "nums"}).seq, 2u);
  EXPECT_NE(s.stopped_tables.at({"public", "wide"}).reason.find("1 values but the relation has 2"),
            std::string::npos);
  EXPECT_NE(s.stopped_tables.at({"public", "big"}).reason.find("max_value_bytes"),
            std::string::npos);
  EXPECT_FALSE(s.failed);

  // A change naming a relation the transaction does not describe names no table: apply stops
  // at that record, with a clear error, and applies nothing of it.
  v1::Transaction unknown = Txn({good}, {Insert(7, {"5"}), Insert(99, {"1"})});
  last = Append({unknown});
  ASSERT_FALSE(apply_->WaitForApplied(last, absl::Seconds(30)));
  s = apply_->status();
  EXPECT_TRUE(s.failed);
  EXPECT_NE(s.last_error.find("relation 99"), std::string::npos) << s.last_error;
  EXPECT_EQ(s.applied_seq, last - 1);
  EXPECT_EQ(Value("SELECT count(*) FROM good WHERE id = 5"), "0");
}

// Apply commits with synchronous_commit = off (like a native subscription). The inbound log
// must then be kept from the target's FLUSHED progress on: a crash of the target takes back
// the commits it had not flushed, and they must be applied again from the log.
TEST_F(ApplyTest, AsynchronousCommitsKeepTheInboundLogUntilDurable) {
  // A slow WAL writer leaves recent asynchronous commits unflushed for longer.
  ASSERT_TRUE(pg_->Exec("ALTER SYSTEM SET wal_writer_delay = '10s'", "postgres").ok());
  ASSERT_TRUE(pg_->Exec("SELECT pg_reload_conf()", "postgres").ok());
  const v1::Relation acc =
      Relation(3, "public", "counters", {{"id", "integer", true}, {"n", "bigint"}});
  std::vector<v1::Transaction> txns = {Txn({acc}, {Insert(3, {"1", "0"})})};
  for (int i = 1; i <= 2000; ++i) txns.push_back(Txn({acc}, {Update(3, {"1", absl::StrCat(i)})}));
  const uint64_t last = Append(txns);
  StartApply({.workers = 2, .max_group_transactions = 1, .durable_poll = absl::ZeroDuration()});
  WaitApplied(last);
  EXPECT_LE(apply_->status().durable_seq, apply_->status().applied_seq);
  // Flushed progress first, then the cursor that holds trimming: the cursor was computed from
  // an earlier reading, so it may never be past this one.
  auto flushed = pg_->QueryValue(
      "SELECT max(pg_replication_origin_progress(roname, true))::text FROM "
      "pg_replication_origin WHERE roname LIKE 'ferry\\_" +
          region_ + "\\_%'",
      db_);
  ASSERT_TRUE(flushed.ok()) << flushed.status();
  const uint64_t flushed_seq = flushed->has_value() ? pg::ParseLsn(**flushed).value_or(0) : 0;
  auto retain = log_->GetCursor("apply_retain_from");
  ASSERT_TRUE(retain.ok()) << retain.status();
  EXPECT_LE(retain->value_or(0), flushed_seq + 1);
  // Crash the target: whatever it had not flushed is gone, and comes back from the log.
  apply_.reset();
  ASSERT_TRUE(pg_->Restart(PgCluster::StopMode::kImmediate).ok());
  StartApply({.workers = 2});
  WaitApplied(last);
  EXPECT_EQ(Table("SELECT id, n FROM counters"), "1|2000\n");
  EXPECT_EQ(Value("SELECT count(*) FROM ferry.conflicts"), "0");
  ASSERT_TRUE(pg_->Exec("ALTER SYSTEM RESET wal_writer_delay", "postgres").ok());
  ASSERT_TRUE(pg_->Exec("SELECT pg_reload_conf()", "postgres").ok());
}

// The case above where the lost commit and a later one are on different workers: a worker
// that connects to the recovered server would commit a later group in the same round, and the
// progress (the maximum over the origins) would pass the group that was lost. Seen end to end:
// a table created by apply vanished with a target crash while the progress stayed past it. A
// session connecting after a crash refuses until the next round read the progress: after a
// crash of one backend (Postgres restarts the others, its postmaster stays up) and after an
// immediate restart of the whole server.
TEST_F(ApplyTest, ASessionRefusesToCommitOnATargetThatCrashedDuringTheRound) {
  // Created and flushed up front: apply's own creation of it could be lost with the crash.
  ASSERT_TRUE(
      pg_->Exec("CREATE TABLE items (id integer PRIMARY KEY, name text, doc text)", db_).ok());
  auto sink = PostgresSink::Open({.dsn = pg_->dsn(db_), .source_region = region_});
  ASSERT_TRUE(sink.ok()) << sink.status();
  auto apply = [&](SinkSession& session, uint64_t seq) {
    GroupContext context;
    context.first_seq = seq;
    // Kept until the commit: the session's statements point into it.
    const v1::Transaction txn = Txn({kItems}, {Insert(1, {absl::StrCat(seq), "a", "x"})});
    absl::Status s = session.Begin(context);
    if (s.ok()) s = session.Apply(seq, txn);
    if (s.ok()) s = session.PrepareAndCommit(seq, 1700000000000000 + seq);
    if (!s.ok()) session.Abort();
    return s;
  };
  // The checkpointer's pid, or "" while the server refuses connections.
  auto checkpointer = [&] {
    auto pid = pg_->QueryValue(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'", db_);
    return pid.ok() && pid->has_value() ? **pid : std::string();
  };
  auto kill_a_backend = [&] {
    const std::string checkpointer_before = checkpointer();
    ASSERT_FALSE(checkpointer_before.empty());
    auto conn = pg::PgConnection::Connect(pg_->dsn(db_));
    ASSERT_TRUE(conn.ok()) << conn.status();
    auto pid = (*conn)->Exec("SELECT pg_backend_pid()");
    ASSERT_TRUE(pid.ok()) << pid.status();
    ASSERT_EQ(::kill(std::stoi(std::string(pid->Get(0, 0))), SIGKILL), 0);
    // Postgres restarts every process but itself (the checkpointer too) and recovers; until then
    // it refuses connections. A connection that works is not enough: one made before the
    // postmaster noticed the death works, and the restart comes after it (a CI run failed so).
    // Done once a new checkpointer answers.
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    std::string now = checkpointer();
    while ((now.empty() || now == checkpointer_before) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(50));  // polling for recovery, not synchronisation
      now = checkpointer();
    }
    ASSERT_FALSE(now.empty() || now == checkpointer_before) << "Postgres did not restart";
  };
  auto restart = [&] { ASSERT_TRUE(pg_->Restart(PgCluster::StopMode::kImmediate).ok()); };
  uint64_t seq = 0;
  for (const auto& crash : std::vector<std::function<void()>>{kill_a_backend, restart}) {
    ASSERT_TRUE((*sink)->LoadState({}).ok());
    auto first = (*sink)->OpenSession(0);
    ASSERT_TRUE(first.ok()) << first.status();
    ASSERT_TRUE(apply(**first, ++seq).ok());
    ASSERT_NO_FATAL_FAILURE(crash());
    auto second = (*sink)->OpenSession(1);
    ASSERT_TRUE(second.ok()) << second.status();
    absl::Status refused = apply(**second, ++seq);
    EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
    EXPECT_NE(refused.message().find("crashed or was restarted"), std::string::npos) << refused;
    EXPECT_EQ(Value(absl::StrCat("SELECT count(*) FROM items WHERE id = ", seq)), "0");
    // The worker whose connection the crash broke fails too, and reconnects to a refusal.
    EXPECT_FALSE(apply(**first, seq).ok());
    EXPECT_EQ(apply(**first, seq).code(), absl::StatusCode::kUnavailable);
    // A new round read the progress again: both commit.
    ASSERT_TRUE((*sink)->LoadState({}).ok());
    EXPECT_TRUE(apply(**second, seq).ok());
    EXPECT_TRUE(apply(**first, ++seq).ok());
    EXPECT_EQ(
        Value(absl::StrCat("SELECT count(*) FROM items WHERE id IN (", seq - 1, ", ", seq, ")")),
        "2");
  }
}

// With synchronous_commit on, a crash takes no commit back, so sessions never check the run
// token and LoadState writes none (one write less per round); with it off, it writes one.
TEST_F(ApplyTest, TheRunTokenIsWrittenOnlyForAsynchronousCommits) {
  auto synchronous = PostgresSink::Open(
      {.dsn = pg_->dsn(db_), .source_region = region_, .synchronous_commit = true});
  ASSERT_TRUE(synchronous.ok()) << synchronous.status();
  ASSERT_TRUE((*synchronous)->LoadState({}).ok());
  const std::string count =
      absl::StrCat("SELECT count(*) FROM ferry.target_run WHERE source_region = '", region_, "'");
  EXPECT_EQ(Value(count), "0");
  auto asynchronous = PostgresSink::Open({.dsn = pg_->dsn(db_), .source_region = region_});
  ASSERT_TRUE(asynchronous.ok()) << asynchronous.status();
  ASSERT_TRUE((*asynchronous)->LoadState({}).ok());
  EXPECT_EQ(Value(count), "1");
}

// apply.synchronous_commit: true means every commit apply counts is durable (nothing is kept
// for a crash to take back), whatever the target's own default: a database set to
// synchronous_commit = off must not make apply's commits asynchronous. The WAL writer is slowed
// so that asynchronous commits would still be in memory at the crash.
TEST_F(ApplyTest, SynchronousCommitsStayDurableWhenTheDatabaseDefaultIsOff) {
  // The cluster serves the whole suite: its WAL writer is set back however this test ends.
  struct WalWriterSetBack {
    ~WalWriterSetBack() {
      (void)pg_->Exec("ALTER SYSTEM RESET wal_writer_delay", "postgres");
      (void)pg_->Exec("SELECT pg_reload_conf()", "postgres");
    }
  } set_back;
  ASSERT_TRUE(pg_->Exec("ALTER SYSTEM SET wal_writer_delay = '10s'", "postgres").ok());
  ASSERT_TRUE(pg_->Exec("SELECT pg_reload_conf()", "postgres").ok());
  ASSERT_TRUE(
      pg_->Exec("ALTER DATABASE " + db_ + " SET synchronous_commit = off", "postgres").ok());
  std::vector<v1::Transaction> txns;
  for (int i = 1; i <= 50; ++i) {
    txns.push_back(Txn({kItems}, {Insert(1, {absl::StrCat(i), "a", "b"})}));
  }
  const uint64_t last = Append(txns);
  StartApply({.workers = 2}, {.synchronous_commit = true});
  WaitApplied(last);
  ASSERT_TRUE(pg_->Restart(PgCluster::StopMode::kImmediate).ok());
  EXPECT_EQ(Value("SELECT count(*) FROM items"), "50");
}

TEST_F(ApplyTest, TargetRestartMidApplyIsRetriedAndNothingIsSkipped) {
  const v1::Relation acc =
      Relation(3, "public", "counters", {{"id", "integer", true}, {"n", "bigint"}});
  std::vector<v1::Transaction> txns;
  txns.push_back(Txn({acc}, {Insert(3, {"1", "0"}), Insert(3, {"2", "0"})}));
  for (int i = 1; i <= 3000; ++i) {
    txns.push_back(Txn({acc}, {Update(3, {absl::StrCat(1 + i % 2), absl::StrCat(i)})}));
  }
  const uint64_t last = Append(txns);
  StartApply({.workers = 3,
              .max_group_transactions = 20,
              .backoff_initial = absl::Milliseconds(20),
              .backoff_max = absl::Milliseconds(200)});
  ASSERT_TRUE(apply_->WaitForApplied(last / 4, absl::Seconds(60)));
  const uint64_t resets = apply_->status().resets;
  ASSERT_TRUE(pg_->Restart(PgCluster::StopMode::kImmediate).ok());
  // The crash (an immediate stop) takes back the commits not yet flushed. Apply may have
  // committed everything before it: it must notice the crash all the same (a session that
  // fails, or the durable progress it polls) and apply the lost ones again.
  ExpectCrashNoticedAndDurableThrough(*apply_, resets, last);
  if (HasFatalFailure()) return;
  EXPECT_EQ(Table("SELECT id, n FROM counters ORDER BY id"), "1|3000\n2|2999\n");
  EXPECT_EQ(Value("SELECT count(*) FROM ferry.conflicts"), "0");
}

// The crash comes when apply has nothing left to do: no session fails, yet apply must notice
// it (through the durable progress it polls) and start again from what the target kept, so
// that whatever the crash took back is applied again.
TEST_F(ApplyTest, ATargetCrashWhileApplyIsIdleIsNoticedAndApplyStartsAgainFromWhatItKept) {
  const v1::Relation acc =
      Relation(3, "public", "counters", {{"id", "integer", true}, {"n", "bigint"}});
  std::vector<v1::Transaction> txns;
  txns.push_back(Txn({acc}, {Insert(3, {"1", "0"})}));
  for (int i = 1; i <= 200; ++i) txns.push_back(Txn({acc}, {Update(3, {"1", absl::StrCat(i)})}));
  const uint64_t last = Append(txns);
  StartApply({.workers = 2, .backoff_initial = absl::Milliseconds(20)});
  WaitApplied(last);
  const uint64_t resets = apply_->status().resets;
  // Stopped before the walwriter flushed them, the last commits would be gone; whether or not
  // they are, the round must start again from what the target kept.
  ASSERT_TRUE(pg_->Restart(PgCluster::StopMode::kImmediate).ok());
  ExpectCrashNoticedAndDurableThrough(*apply_, resets, last);
  if (HasFatalFailure()) return;
  EXPECT_EQ(Table("SELECT id, n FROM counters ORDER BY id"), "1|200\n");
}

// A group whose statements write nothing (sequence values the target is already past: no
// setval runs) must still move its origin: the durable progress and the restart point are the
// origins'. A promote and a switchover wait for the durable progress, and a switchover's last
// records are such values and its marker (committed without a transaction id, no origin moved,
// and every switchover waited out its timeout there).
TEST_F(ApplyTest, TheDurableProgressReachesAGroupThatWroteNothing) {
  ASSERT_TRUE(pg_->Exec("CREATE SEQUENCE s; SELECT setval('s', 100)", db_).ok());
  v1::Change values;
  values.set_op(v1::MESSAGE);
  values.set_message_prefix(pg::kSequencesMessagePrefix);
  values.set_message_content(
      R"({"v": 1, "sequences": [{"schema": "public", "name": "s", "value": "5"}]})");
  values.set_message_authenticated(true);
  const uint64_t written = Append({Txn({kItems}, {Insert(1, {"1", "a", "b"})})});
  const uint64_t last = Append({Txn({}, {values})});
  ASSERT_EQ(last, written + 1);
  StartApply({.workers = 1});
  WaitApplied(last);
  EXPECT_TRUE(apply_->WaitForDurable(last, absl::Seconds(30)))
      << "durable through " << apply_->status().durable_seq << " of " << last;
  EXPECT_EQ(Value("SELECT last_value FROM s"), "100");
  EXPECT_EQ(Value("SELECT count(*) FROM items"), "1");
  auto committed = sink_->CommittedProgress();
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(committed->applied_seq, last);
}

}  // namespace
}  // namespace ferry
