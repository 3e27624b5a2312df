// ApplyTest: the fixture of apply's integration tests (postgres_sink_test.cc and the tests
// beside it): a throwaway Postgres 15 per suite, a database and an inbound DurableLog per test,
// and the ApplyScheduler over a PostgresSink. Test-only.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "connectors/postgres/sink/postgres_sink.h"
#include "connectors/postgres/testing/transaction_builders.h"
#include "engine/apply/apply_scheduler.h"
#include "engine/log/durable_log.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/temp_dir.h"

namespace ferry {

using ::ferry::testing::PgCluster;
using ::ferry::testing::TempDir;

// The table most apply tests write (each test creates it): relation 1, items (id integer key,
// name text, doc text).
inline const v1::Relation kItems = sink_test::Relation(
    1, "public", "items", {{"id", "integer", true}, {"name", "text"}, {"doc", "text"}});

inline std::string Dump(const std::vector<::ferry::testing::Row>& rows) {
  std::string out;
  for (const auto& row : rows) {
    std::vector<std::string> cells;
    for (const auto& c : row) cells.push_back(c ? *c : "NULL");
    absl::StrAppend(&out, absl::StrJoin(cells, "|"), "\n");
  }
  return out;
}

class ApplyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // pg_stat_statements: what apply's statements cost the target (planning included).
    auto pg = PgCluster::Start({.extra_config = {"shared_preload_libraries = 'pg_stat_statements'",
                                                 "pg_stat_statements.track_planning = on"}});
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
    db_ = absl::StrCat("apply_", n);
    region_ = absl::StrCat("r", n);
    ASSERT_TRUE(pg_->Exec("CREATE DATABASE " + db_, "postgres").ok());
    auto log = DurableLog::Open({.path = dir_.File("inbound"), .sync = false});
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
  }
  void TearDown() override {
    apply_.reset();
    sink_.reset();
    // Every origin that ever held progress takes one of the cluster's replication state slots
    // (max_replication_slots), also after its session is gone: free them for the next tests.
    (void)pg_->Exec(
        "DO $$ DECLARE o text; BEGIN FOR o IN SELECT roname FROM pg_replication_origin LOOP "
        "BEGIN PERFORM pg_replication_origin_drop(o); EXCEPTION WHEN OTHERS THEN NULL; END; "
        "END LOOP; END $$",
        "postgres");
  }

  void StartApply(ApplyOptions options = {}, PostgresSinkOptions sink_options = {}) {
    apply_.reset();
    sink_options.dsn = pg_->dsn(db_);
    sink_options.source_region = region_;
    auto sink = PostgresSink::Open(sink_options);
    ASSERT_TRUE(sink.ok()) << sink.status();
    sink_ = *std::move(sink);
    auto apply = ApplyScheduler::Start(options, log_.get(), sink_.get());
    ASSERT_TRUE(apply.ok()) << apply.status();
    apply_ = *std::move(apply);
  }

  void WaitApplied(uint64_t seq) {
    ASSERT_TRUE(apply_->WaitForApplied(seq, absl::Seconds(120)))
        << "applied " << apply_->status().applied_seq << " of " << seq
        << ", last error: " << apply_->status().last_error;
  }

  // Applies `txn` as a group of its own through `session`, as a worker does (Begin, Apply,
  // PrepareAndCommit, Abort on an error), with the plan `sink` makes for it (expected).
  static absl::Status ApplyAlone(PostgresSink& sink, SinkSession& session, uint64_t seq,
                                 const v1::Transaction& txn) {
    GroupTransactions txns = {{seq, txn}};
    GroupContext context;
    context.first_seq = seq;
    context.plan = sink.Plan(txns);
    EXPECT_NE(context.plan, nullptr);
    absl::Status s = session.Begin(context);
    if (s.ok()) s = session.Apply(seq, txns[0].second);
    if (s.ok()) s = session.PrepareAndCommit(seq, 1700000000000000 + seq);
    if (!s.ok()) session.Abort();
    return s;
  }

  uint64_t Append(const std::vector<v1::Transaction>& txns) {
    auto seq = sink_test::AppendTxns(*log_, txns);
    EXPECT_TRUE(seq.ok()) << seq.status();
    return seq.value_or(0);
  }

  std::string Table(const std::string& sql) {
    auto rows = pg_->Query(sql, db_);
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? Dump(*rows) : "<error>";
  }
  std::string Value(const std::string& sql) {
    auto v = pg_->QueryValue(sql, db_);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() && v->has_value() ? **v : "NULL";
  }

  inline static PgCluster* pg_ = nullptr;
  TempDir dir_{"ferry-apply-test"};
  std::string db_;
  std::string region_;
  std::unique_ptr<DurableLog> log_;
  std::unique_ptr<PostgresSink> sink_;
  std::unique_ptr<ApplyScheduler> apply_;
};

}  // namespace ferry
