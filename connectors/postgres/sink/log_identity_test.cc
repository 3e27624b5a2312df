// Log identity of apply progress (issue #14, items 1 and 10), against a real Postgres 15: the
// target's progress counts the seqs of one upstream log (the shipper's outbound log id, which the
// receiver records in the inbound log), and apply never takes progress counted in another log
// for this one's. Each test builds inbound logs by hand (records and the recorded log id) and
// applies them with the real ApplyScheduler and PostgresSink.
//
// Mutants these tests kill: LoadState ignoring the marker (the re-seed applies nothing, silently:
// ApplyRefusesProgressOfAnotherLogAndReseedAppliesTheNewLog); DiscardProgress dropping the
// inbound log's own progress (double apply: DiscardProgressNeverTouchesTheLogBeingApplied);
// legacy progress adopted whatever the inbound log holds (ProgressWithoutARecordedLog...); a
// round that does not notice the inbound log switching logs (InboundLogSwitching...).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "connectors/postgres/common/lsn.h"
#include "connectors/postgres/sink/postgres_sink.h"
#include "connectors/postgres/testing/transaction_builders.h"
#include "engine/apply/apply_scheduler.h"
#include "engine/log/log_names.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

using namespace sink_test;  // NOLINT: test builders
using ::ferry::testing::PgCluster;
using ::ferry::testing::TempDir;

constexpr char kLogA[] = "aaaaaaaaaaaaaaaa0000000000000001";
constexpr char kLogB[] = "bbbbbbbbbbbbbbbb0000000000000002";
constexpr char kLogC[] = "cccccccccccccccc0000000000000003";

const v1::Relation kItems =
    Relation(1, "public", "items", {{"id", "integer", true}, {"v", "text"}});

// Inserts of ids [from, to], one transaction each.
std::vector<v1::Transaction> Inserts(int from, int to, const std::string& v) {
  std::vector<v1::Transaction> txns;
  for (int i = from; i <= to; ++i) txns.push_back(Txn({kItems}, {Insert(1, {absl::StrCat(i), v})}));
  return txns;
}

// The rows those inserts leave, as Rows() prints them.
std::string Expected(int from, int to, const std::string& v) {
  std::string out;
  for (int i = from; i <= to; ++i) absl::StrAppend(&out, i, "|", v, "\n");
  return out;
}

class LogIdentityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto pg = PgCluster::Start();
    ASSERT_TRUE(pg.ok()) << pg.status();
    pg_ = pg->release();
  }
  static void TearDownTestSuite() {
    delete pg_;
    pg_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(pg_, nullptr);
    static int n = 0;
    ++n;
    db_ = absl::StrCat("identity_", n);
    region_ = absl::StrCat("id", n);
    ASSERT_TRUE(pg_->Exec("CREATE DATABASE " + db_, "postgres").ok());
  }
  void TearDown() override {
    apply_.reset();
    sink_.reset();
    (void)pg_->Exec(
        "DO $$ DECLARE o text; BEGIN FOR o IN SELECT roname FROM pg_replication_origin LOOP "
        "BEGIN PERFORM pg_replication_origin_drop(o); EXCEPTION WHEN OTHERS THEN NULL; END; "
        "END LOOP; END $$",
        "postgres");
  }

  // A new inbound log (a new data_dir) that copies `log_id` ("" = records none). The fixture
  // owns it: it outlives the apply of the test (reset in TearDown).
  DurableLog* NewInbound(const std::string& log_id) {
    auto log =
        DurableLog::Open({.path = dir_.File(absl::StrCat("inbound", logs_.size())), .sync = false});
    EXPECT_TRUE(log.ok()) << log.status();
    if (!log.ok()) return nullptr;
    if (!log_id.empty()) {
      EXPECT_TRUE(RecordLogId(**log, log_id).ok());
    }
    logs_.push_back(*std::move(log));
    return logs_.back().get();
  }
  static absl::Status RecordLogId(DurableLog& log, const std::string& log_id) {
    AppendRequest r;
    r.state.emplace_back(kPeerLogIdState, log_id);
    return log.Append(std::move(r)).status();
  }

  void StartApply(DurableLog* log) {
    apply_.reset();
    auto sink = PostgresSink::Open({.dsn = pg_->dsn(db_), .source_region = region_});
    ASSERT_TRUE(sink.ok()) << sink.status();
    sink_ = *std::move(sink);
    auto apply = ApplyScheduler::Start({.workers = 2}, log, sink_.get());
    ASSERT_TRUE(apply.ok()) << apply.status();
    apply_ = *std::move(apply);
  }
  // Waits until apply applied `seq` (true) or stopped for good (false).
  bool Applied(uint64_t seq) { return apply_->WaitForApplied(seq, absl::Seconds(120)); }

  std::string Rows() {
    auto rows = pg_->Query("SELECT id, v FROM items ORDER BY id", db_);
    if (!rows.ok()) return absl::StrCat("<", rows.status().message(), ">");
    std::string out;
    for (const auto& row : *rows)
      absl::StrAppend(&out, row[0].value_or("NULL"), "|", row[1].value_or("NULL"), "\n");
    return out;
  }
  std::string Origins() {
    auto rows = pg_->Query(
        absl::StrCat("SELECT roname FROM pg_replication_origin WHERE roname LIKE 'ferry\\_",
                     region_, "\\_log\\_%' ORDER BY roname"),
        db_);
    if (!rows.ok()) return "<error>";
    std::vector<std::string> names;
    for (const auto& row : *rows) names.push_back(row[0].value_or(""));
    return absl::StrJoin(names, ",");
  }
  std::string Marker(const std::string& log_id) {
    return absl::StrCat("ferry_", region_, "_log_", log_id);
  }

  static PgCluster* pg_;
  TempDir dir_{"ferry-log-identity-test"};
  std::vector<std::unique_ptr<DurableLog>> logs_;  // before apply_: destroyed after it
  std::string db_;
  std::string region_;
  std::unique_ptr<PostgresSink> sink_;
  std::unique_ptr<ApplyScheduler> apply_;
};

PgCluster* LogIdentityTest::pg_ = nullptr;

// Issue #14 item 1: the peer's data_dir (its outbound log A) was re-created, so it ships a new
// log B from seq 1 into a new inbound log, while the target's origins (cluster-wide: they even
// survive dropdb/createdb) still claim A's progress far beyond B's end. Before the fix apply
// skipped all of B and status said it was caught up.
TEST_F(LogIdentityTest, ApplyRefusesProgressOfAnotherLogAndReseedAppliesTheNewLog) {
  auto a = NewInbound(kLogA);
  auto last_a = AppendTxns(*a, Inserts(1, 30, "a"));
  ASSERT_TRUE(last_a.ok());
  StartApply(a);
  ASSERT_TRUE(Applied(*last_a)) << apply_->status().last_error;
  EXPECT_EQ(apply_->status().log_id, kLogA);
  EXPECT_EQ(Origins(), Marker(kLogA));
  auto progress = sink_->CommittedProgress();
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_EQ(progress->log_id, kLogA);
  EXPECT_EQ(progress->applied_seq, *last_a);
  apply_.reset();

  // Log B from seq 1: its 5 records are all below A's progress.
  auto b = NewInbound(kLogB);
  auto last_b = AppendTxns(*b, Inserts(101, 105, "b"));
  ASSERT_TRUE(last_b.ok());
  ASSERT_LT(*last_b, *last_a);
  StartApply(b);
  EXPECT_FALSE(Applied(*last_b)) << "apply skipped log B, taking log A's progress for B's";
  const ApplyStatus s = apply_->status();
  EXPECT_TRUE(s.failed);
  EXPECT_TRUE(s.identity_mismatch);
  EXPECT_EQ(s.log_id, kLogB);
  EXPECT_EQ(s.target_log_id, kLogA);
  EXPECT_EQ(s.target_applied_seq, *last_a);
  EXPECT_EQ(s.applied_seq, 0u) << "status must not claim A's progress for B";
  EXPECT_NE(s.last_error.find("identity mismatch"), std::string::npos) << s.last_error;
  EXPECT_NE(s.last_error.find(kLogA), std::string::npos) << s.last_error;
  EXPECT_NE(s.last_error.find(kLogB), std::string::npos) << s.last_error;
  const std::string verb = absl::StrCat("ferryctl reseed ", kLogA);
  EXPECT_NE(s.last_error.find(verb), std::string::npos) << s.last_error;
  EXPECT_EQ(Rows(), Expected(1, 30, "a")) << "nothing of B may be applied";
  EXPECT_EQ(Origins(), Marker(kLogA)) << "a mismatch changes nothing in the target";
  apply_.reset();

  // The re-seed refuses to discard what it was not told to, and the log being applied.
  auto wrong = sink_->DiscardProgress(kLogC, kLogB);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition) << wrong.status();
  auto own = sink_->DiscardProgress(kLogA, kLogA);
  EXPECT_EQ(own.status().code(), absl::StatusCode::kFailedPrecondition) << own.status();
  auto garbage = sink_->DiscardProgress("'; DROP TABLE items; --", kLogB);
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument) << garbage.status();
  EXPECT_EQ(Origins(), Marker(kLogA));

  // The documented re-seed: the operator empties the target, then discards A's progress. A
  // table stopped in log A (its stop seq counts A's seqs) must not stop B's changes.
  ASSERT_TRUE(pg_->Exec("DROP TABLE items", db_).ok());
  ASSERT_TRUE(pg_->Exec(absl::StrCat("INSERT INTO ferry.table_state (source_region, table_schema, "
                                     "table_name, stopped_at_seq, reason) VALUES ('",
                                     region_, "', 'public', 'items', 3, 'stopped in log A')"),
                        db_)
                  .ok());
  auto discarded = sink_->DiscardProgress(kLogA, kLogB);
  ASSERT_TRUE(discarded.ok()) << discarded.status();
  EXPECT_EQ(*discarded, *last_a);
  auto again = sink_->DiscardProgress(kLogA, kLogB);  // idempotent (a crash part-way)
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, 0u);
  StartApply(b);
  ASSERT_TRUE(Applied(*last_b)) << apply_->status().last_error;
  EXPECT_FALSE(apply_->status().identity_mismatch);
  // The oracle: exactly log B, once.
  EXPECT_EQ(Rows(), Expected(101, 105, "b"));
  EXPECT_EQ(Origins(), Marker(kLogB));
  EXPECT_EQ(apply_->status().transactions_applied, 5u);
  EXPECT_TRUE(apply_->status().stopped_tables.empty());
}

// After a re-seed, the new log's progress is its own: discarding "the old log" again is refused,
// and a restart resumes B where it was (nothing applied twice).
TEST_F(LogIdentityTest, DiscardProgressNeverTouchesTheLogBeingApplied) {
  auto b = NewInbound(kLogB);
  auto first = AppendTxns(*b, Inserts(1, 10, "b"));
  ASSERT_TRUE(first.ok());
  StartApply(b);
  ASSERT_TRUE(Applied(*first)) << apply_->status().last_error;
  apply_.reset();
  auto refused = sink_->DiscardProgress(kLogA, kLogB);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find(absl::StrCat("counts log ", kLogB)), std::string::npos)
      << refused.status();
  auto more = AppendTxns(*b, Inserts(11, 20, "b"));
  ASSERT_TRUE(more.ok());
  StartApply(b);
  ASSERT_TRUE(Applied(*more)) << apply_->status().last_error;
  EXPECT_EQ(Rows(), Expected(1, 20, "b"));
  EXPECT_EQ(apply_->status().transactions_applied, 10u) << "the first ten were applied again";
}

// Progress written by a ferryd before log ids were recorded carries no marker: it is adopted for
// the inbound log only when that log holds the record right after it (an upgrade in place); a
// new log that does not reach it is a mismatch with an "unrecorded" target log.
TEST_F(LogIdentityTest, ProgressWithoutARecordedLogIsAdoptedOnlyWhenTheInboundLogHoldsWhatFollows) {
  auto legacy = [&](uint64_t seq) {
    const std::string w0 = absl::StrCat("ferry_", region_, "_0_w0");
    ASSERT_TRUE(pg_->Exec(absl::StrCat("SELECT pg_replication_origin_create('", w0,
                                       "'); SELECT pg_replication_origin_advance('", w0, "', '",
                                       pg::FormatLsn(seq), "')"),
                          db_)
                    .ok());
  };
  // A new log B of 5 records against progress 20 of an unrecorded log: refused.
  legacy(20);
  auto b = NewInbound(kLogB);
  auto last_b = AppendTxns(*b, Inserts(101, 105, "b"));
  ASSERT_TRUE(last_b.ok());
  StartApply(b);
  EXPECT_FALSE(Applied(*last_b));
  EXPECT_TRUE(apply_->status().identity_mismatch);
  EXPECT_EQ(apply_->status().target_log_id, "");
  EXPECT_NE(apply_->status().last_error.find("counts upstream log unrecorded"), std::string::npos)
      << apply_->status().last_error;
  EXPECT_NE(apply_->status().last_error.find("ferryctl reseed unrecorded"), std::string::npos);
  EXPECT_EQ(Origins(), "");
  apply_.reset();

  // The same log the old ferryd applied (it holds seq 21 on): adopted, applied from 21.
  auto a = NewInbound(kLogA);
  auto last_a = AppendTxns(*a, Inserts(1, 25, "a"));
  ASSERT_TRUE(last_a.ok());
  StartApply(a);
  ASSERT_TRUE(Applied(*last_a)) << apply_->status().last_error;
  EXPECT_EQ(Rows(), Expected(21, 25, "a"));
  EXPECT_EQ(Origins(), Marker(kLogA));
}

// The receiver takes a stream of another log into a running inbound log (a shipper whose log id
// changed at a higher epoch): the running round ends before any record of it is applied, and
// apply stops on the mismatch.
TEST_F(LogIdentityTest, InboundLogSwitchingToAnotherLogStopsApplyBeforeApplyingIt) {
  auto a = NewInbound(kLogA);
  auto last_a = AppendTxns(*a, Inserts(1, 10, "a"));
  ASSERT_TRUE(last_a.ok());
  StartApply(a);
  ASSERT_TRUE(Applied(*last_a)) << apply_->status().last_error;
  ASSERT_TRUE(RecordLogId(*a, kLogC).ok());
  auto last_c = AppendTxns(*a, Inserts(11, 15, "c"));
  ASSERT_TRUE(last_c.ok());
  EXPECT_FALSE(Applied(*last_c));
  EXPECT_TRUE(apply_->status().identity_mismatch);
  EXPECT_EQ(apply_->status().target_log_id, kLogA);
  EXPECT_EQ(apply_->status().log_id, kLogC);
  EXPECT_EQ(Rows(), Expected(1, 10, "a"));
}

// A new inbound log that recorded no log id yet holds nothing to apply: apply neither binds the
// target nor claims its progress while it waits; the first records of a log bind it.
TEST_F(LogIdentityTest, ANewInboundLogBindsTheTargetOnlyWhenItsLogArrives) {
  auto a = NewInbound("");
  StartApply(a);
  const ApplyStatus waiting = apply_->status();
  EXPECT_EQ(waiting.applied_seq, 0u);
  EXPECT_FALSE(waiting.failed);
  EXPECT_EQ(Origins(), "");
  ASSERT_TRUE(RecordLogId(*a, kLogA).ok());
  auto last = AppendTxns(*a, Inserts(1, 3, "a"));
  ASSERT_TRUE(last.ok());
  ASSERT_TRUE(Applied(*last)) << apply_->status().last_error;
  EXPECT_EQ(Rows(), Expected(1, 3, "a"));
  EXPECT_EQ(Origins(), Marker(kLogA));
}

// Heartbeat-only groups write nothing, yet their progress is committed: the target's progress
// reaches the end of what was applied, so that a new inbound log can start right after it when
// the shipper trimmed the heartbeats (item 10). Before, it stopped at the last data record.
TEST_F(LogIdentityTest, HeartbeatsMoveTheTargetsProgress) {
  auto a = NewInbound(kLogA);
  ASSERT_TRUE(AppendTxns(*a, Inserts(1, 3, "a")).ok());
  ASSERT_TRUE(AppendHeartbeat(*a, 100).ok());
  auto last = AppendHeartbeat(*a, 200);
  ASSERT_TRUE(last.ok());
  StartApply(a);
  ASSERT_TRUE(Applied(*last)) << apply_->status().last_error;
  auto progress = sink_->CommittedProgress();
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_EQ(progress->applied_seq, *last);
  EXPECT_EQ(progress->log_id, kLogA);
  EXPECT_EQ(Rows(), Expected(1, 3, "a"));
}

}  // namespace
}  // namespace ferry
