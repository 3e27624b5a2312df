// Integration tests of apply: hand-built transactions written into a real inbound DurableLog,
// applied by the ApplyScheduler through the PostgresSink into a throwaway Postgres 15. This file:
// what apply reproduces (every change kind, replays, one-round-trip groups, large transactions,
// parallel against serial, batching, ordering, triggers). sink_failures_test.cc: what it does
// when something goes wrong (conflicts, stopped tables, schema changes, hostile input, a
// target that crashes or restarts).
#include "connectors/postgres/sink/postgres_sink.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "connectors/postgres/common/lsn.h"
#include "connectors/postgres/sink/apply_test_fixture.h"
#include "connectors/postgres/testing/transaction_builders.h"
#include "engine/apply/apply_scheduler.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

using namespace sink_test;  // NOLINT: test builders
using ::ferry::testing::TempDir;

const v1::Relation kBag =
    Relation(2, "public", "bag", {{"v", "integer"}, {"j", "json"}, {"p", "point"}},
             v1::REPLICA_IDENTITY_FULL);

TEST_F(ApplyTest, EveryChangeKindIsReproduced) {
  StartApply();
  std::vector<v1::Transaction> txns;
  // A missing table is created; a run of inserts is batched.
  std::vector<v1::Change> inserts;
  for (int i = 1; i <= 250; ++i) {
    inserts.push_back(Insert(1, {absl::StrCat(i), absl::StrCat("n", i), "big"}));
  }
  txns.push_back(Txn({kItems}, inserts));
  // Update of a non-key column with an unchanged TOAST value left alone.
  txns.push_back(Txn({kItems}, {Update(1, {"1", "renamed", kToast})}));
  // Key change: old key sent.
  txns.push_back(
      Txn({kItems}, {Update(1, {"1000", "moved", "x"}, Values{"2", std::nullopt, std::nullopt},
                            /*old_key_only=*/true)}));
  txns.push_back(Txn({kItems}, {Delete(1, {"3", std::nullopt, std::nullopt})}));
  // REPLICA IDENTITY FULL with identical rows and types without "=" (json, point).
  txns.push_back(Txn(
      {kBag}, {Insert(2, {"1", R"({"a": 1})", "(1,2)"}), Insert(2, {"1", R"({"a": 1})", "(1,2)"}),
               Insert(2, {"2", std::nullopt, "(0,0)"})}));
  txns.push_back(Txn({kBag}, {Delete(2, {"1", R"({"a": 1})", "(1,2)"}, false)}));
  txns.push_back(
      Txn({kBag}, {Update(2, {"3", "[1]", "(5,5)"}, Values{"2", std::nullopt, "(0,0)"}, false)}));
  uint64_t last = Append(txns);
  WaitApplied(last);
  EXPECT_EQ(Value("SELECT count(*) FROM items"), "249");
  EXPECT_EQ(Table("SELECT id, name, doc FROM items WHERE id IN (1, 2, 3, 1000) ORDER BY id"),
            "1|renamed|big\n1000|moved|x\n");
  EXPECT_EQ(Table("SELECT v, j::text, p::text FROM bag ORDER BY v"),
            "1|{\"a\": 1}|(1,2)\n3|[1]|(5,5)\n");
  // Truncate.
  last = Append({Txn({kItems, kBag}, {Truncate({1, 2})})});
  WaitApplied(last);
  EXPECT_EQ(Value("SELECT count(*) FROM items"), "0");
  EXPECT_EQ(Value("SELECT count(*) FROM bag"), "0");
  ApplyStatus s = apply_->status();
  EXPECT_EQ(s.applied_seq, last);
  EXPECT_EQ(s.lag_records, 0u);
  EXPECT_TRUE(s.stopped_tables.empty());
  EXPECT_EQ(s.conflicts, 0u);
  // Progress is in the target, committed with the data.
  EXPECT_EQ(Value(absl::StrCat("SELECT max(pg_replication_origin_progress(roname, false)) FROM "
                               "pg_replication_origin WHERE roname LIKE 'ferry_",
                               region_, "_0_w%'")),
            pg::FormatLsn(last));
}

TEST_F(ApplyTest, ReplayingTheSameRecordsChangesNothing) {
  std::vector<v1::Transaction> txns;
  for (int i = 1; i <= 50; ++i) {
    txns.push_back(Txn({kItems}, {Insert(1, {absl::StrCat(i), "a", "b"})}));
    txns.push_back(Txn({kItems}, {Update(1, {absl::StrCat(i), absl::StrCat("u", i), "b"})}));
  }
  txns.push_back(Txn({kItems}, {Delete(1, {"7", std::nullopt, std::nullopt})}));
  const uint64_t last = Append(txns);
  StartApply();
  WaitApplied(last);
  const std::string before = Table("SELECT * FROM items ORDER BY id");
  apply_.reset();
  // A second inbound log with the very same records (same seqs): delivered again, e.g. after
  // the inbound log was rebuilt from the peer. Nothing changes, no conflicts.
  TempDir other("ferry-apply-replay");
  auto log2 = DurableLog::Open({.path = other.File("inbound"), .sync = false});
  ASSERT_TRUE(log2.ok());
  log_ = *std::move(log2);
  EXPECT_EQ(Append(txns), last);
  StartApply();
  WaitApplied(last);
  EXPECT_EQ(Table("SELECT * FROM items ORDER BY id"), before);
  EXPECT_EQ(Value("SELECT count(*) FROM ferry.conflicts"), "0");
  EXPECT_EQ(apply_->status().transactions_applied, 0u);
}

// A group whose turn has come goes to the target in one round trip: its set-based statements,
// the progress and the COMMIT, with each statement checking its own row count in the server.
// A count that is off fails that statement, so the COMMIT behind it never runs: nothing of the
// group is committed, not even its statements that did match, and the session goes on.
TEST_F(ApplyTest, OneRoundTripGroupsCommitWholeOrNotAtAll) {
  const v1::Relation other = Relation(5, "public", "other", {{"id", "integer", true}});
  auto sink = PostgresSink::Open({.dsn = pg_->dsn(db_), .source_region = region_});
  ASSERT_TRUE(sink.ok()) << sink.status();
  ASSERT_TRUE((*sink)->LoadState({}).ok());
  auto session = (*sink)->OpenSession(0);
  ASSERT_TRUE(session.ok()) << session.status();
  auto apply = [&](uint64_t seq, const v1::Transaction& txn) {
    return ApplyAlone(**sink, **session, seq, txn);
  };
  const std::string progress = absl::StrCat(
      "SELECT max(pg_replication_origin_progress(roname, false)) FROM "
      "pg_replication_origin WHERE roname LIKE 'ferry_",
      region_, "_0_w%'");
  // The first group creates the tables: a plan is of no use before they are verified.
  ASSERT_TRUE(apply(1, Txn({kItems, other}, {Insert(1, {"1", "a", "x"}), Insert(1, {"2", "b", "y"}),
                                             Insert(5, {"1"})}))
                  .ok());
  EXPECT_EQ((*sink)->one_trip_groups(), 0u);
  ASSERT_TRUE(apply(2, Txn({kItems}, {Update(1, {"1", "a2", "x"})})).ok());
  EXPECT_EQ((*sink)->one_trip_groups(), 1u);
  EXPECT_EQ(Value(progress), pg::FormatLsn(2));

  // Row 2 is gone on the target: the update of rows 1 and 2 affects one row of two.
  ASSERT_TRUE(pg_->Exec("DELETE FROM items WHERE id = 2", db_).ok());
  absl::Status s = apply(3, Txn({kItems, other}, {Insert(5, {"2"}), Update(1, {"1", "a3", "x"}),
                                                  Update(1, {"2", "b3", "y"})}));
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
  EXPECT_NE(s.message().find("affected 1 rows, expected 2"), std::string::npos) << s;
  EXPECT_EQ(Table("SELECT id, name FROM items ORDER BY id"), "1|a2\n");
  EXPECT_EQ(Value("SELECT string_agg(id::text, ',' ORDER BY id) FROM other"), "1");
  EXPECT_EQ(Value(progress), pg::FormatLsn(2));
  EXPECT_EQ((*sink)->one_trip_groups(), 2u);  // it did go in one round trip

  // The failed transaction was rolled back: the same session applies the next groups (the
  // first verifies the tables again, the abort having forgotten them; the second is one trip).
  ASSERT_TRUE(apply(4, Txn({kItems, other}, {Insert(5, {"3"}), Update(1, {"1", "a4", "x"})})).ok());
  ASSERT_TRUE(apply(5, Txn({kItems, other}, {Insert(5, {"4"}), Update(1, {"1", "a5", "x"})})).ok());
  EXPECT_EQ(Table("SELECT id, name FROM items ORDER BY id"), "1|a5\n");
  EXPECT_EQ(Value("SELECT string_agg(id::text, ',' ORDER BY id) FROM other"), "1,3,4");
  EXPECT_EQ(Value(progress), pg::FormatLsn(5));
  EXPECT_EQ((*sink)->one_trip_groups(), 3u);
}

// A group's set-based statement is planned once per session and replan_interval, not at every
// execution. With Postgres's default plan_cache_mode, a statement keeps a custom plan for as
// long as custom plans look cheaper than its generic plan, which for a group of one row in a
// large table (a light load: every transaction its own group) is for ever.
TEST_F(ApplyTest, SetBasedStatementsArePlannedOncePerSessionAndInterval) {
  ASSERT_TRUE(pg_->Exec("CREATE EXTENSION pg_stat_statements; "
                        "CREATE TABLE items (id integer PRIMARY KEY, name text, doc text); "
                        "INSERT INTO items SELECT g, 'n', 'd' FROM generate_series(1, 20000) g; "
                        "ANALYZE items",
                        db_)
                  .ok());
  ManualClock clock;
  auto sink = PostgresSink::Open({.dsn = pg_->dsn(db_),
                                  .source_region = region_,
                                  .replan_interval = absl::Seconds(10),
                                  .clock = &clock});
  ASSERT_TRUE(sink.ok()) << sink.status();
  ASSERT_TRUE((*sink)->LoadState({}).ok());
  auto session = (*sink)->OpenSession(0);
  ASSERT_TRUE(session.ok()) << session.status();
  // The first group verifies the table (no plan of its own); the next 40 are one-row plans,
  // each sent in one round trip as the same statement.
  constexpr int kGroups = 41;
  for (int seq = 1; seq <= kGroups; ++seq) {
    ASSERT_TRUE(ApplyAlone(**sink, **session, seq,
                           Txn({kItems}, {Update(1, {absl::StrCat(seq * 7), "u", "d"})}))
                    .ok());
  }
  EXPECT_EQ(Value("SELECT count(*) FROM items WHERE name = 'u'"), absl::StrCat(kGroups));
  EXPECT_EQ((*sink)->one_trip_groups(), static_cast<uint64_t>(kGroups - 1));
  const std::string statements =
      "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = "
      "current_database()) AND query LIKE 'WITH ferry_rows AS (UPDATE \"public\".\"items\"%'";
  EXPECT_EQ(Value("SELECT sum(calls) " + statements), absl::StrCat(kGroups - 1));
  EXPECT_EQ(Value("SELECT sum(plans) " + statements), "1");
  clock.Advance(absl::Seconds(9));
  ASSERT_TRUE(
      ApplyAlone(**sink, **session, kGroups + 1, Txn({kItems}, {Update(1, {"2", "u", "d"})})).ok());
  EXPECT_EQ(Value("SELECT sum(plans) " + statements), "1");
  // Once the interval has passed, the statement is prepared and planned again, with the table
  // as it is now.
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(
      ApplyAlone(**sink, **session, kGroups + 2, Txn({kItems}, {Update(1, {"3", "u", "d"})})).ok());
  EXPECT_EQ(Value("SELECT sum(calls) " + statements), absl::StrCat(kGroups + 1));
  EXPECT_EQ(Value("SELECT sum(plans) " + statements), "2");
}

TEST_F(ApplyTest, LargeTransactionsStreamAndARestartedOneIsDiscarded) {
  StartApply();
  auto fragment = [](uint32_t n, bool last, int from, int to) {
    v1::Transaction t = Txn({kItems}, {});
    t.set_fragment(n);
    t.set_last_fragment(last);
    for (int i = from; i < to; ++i) {
      *t.add_changes() = Insert(1, {absl::StrCat(i), "first", "x"});
    }
    return t;
  };
  // First attempt: fragments 0 and 1, then the source restarts and sends it again (0, 1, 2).
  std::vector<v1::Transaction> txns = {fragment(0, false, 0, 100), fragment(1, false, 100, 200)};
  uint64_t seq = Append(txns);
  ASSERT_TRUE(AppendHeartbeat(*log_, 5).ok());
  std::vector<v1::Transaction> again = {fragment(0, false, 0, 100), fragment(1, false, 100, 150),
                                        fragment(2, true, 150, 170)};
  for (auto& t : again) {
    for (auto& c : *t.mutable_changes())
      c.mutable_new_tuple()->mutable_values(1)->set_text("again");
  }
  seq = Append(again);
  seq = Append({Txn({kItems}, {Update(1, {"0", "after", "x"})})});
  WaitApplied(seq);
  EXPECT_EQ(Value("SELECT count(*) FROM items"), "170");
  EXPECT_EQ(Value("SELECT count(*) FROM items WHERE name = 'again'"), "169");
  EXPECT_EQ(Value("SELECT name FROM items WHERE id = 0"), "after");
}

// Transfers between accounts with hot keys: the sum of balances is constant on the source, so
// a reader of the target must never see another sum; and parallel apply must end where serial
// apply ends.
TEST_F(ApplyTest, ParallelApplyEqualsSerialAndExposesOnlySourceStates) {
  const v1::Relation acc =
      Relation(3, "public", "accounts", {{"id", "integer", true}, {"balance", "bigint"}});
  const int kAccounts = 200;
  std::vector<int64_t> balance(kAccounts, 1000);
  std::vector<v1::Transaction> txns;
  {
    std::vector<v1::Change> rows;
    for (int i = 0; i < kAccounts; ++i) rows.push_back(Insert(3, {absl::StrCat(i), "1000"}));
    txns.push_back(Txn({acc}, rows));
  }
  std::mt19937 rng(42);
  for (int t = 0; t < 6000; ++t) {
    auto pick = [&] {
      return (rng() % 4 == 0) ? static_cast<int>(rng() % 3) : static_cast<int>(rng() % kAccounts);
    };
    int a = pick(), b = pick();
    if (a == b) b = (b + 1) % kAccounts;
    int64_t x = static_cast<int64_t>(rng() % 50);
    balance[a] -= x;
    balance[b] += x;
    txns.push_back(Txn({acc}, {Update(3, {absl::StrCat(a), absl::StrCat(balance[a])}),
                               Update(3, {absl::StrCat(b), absl::StrCat(balance[b])})}));
  }
  const uint64_t last = Append(txns);
  const int64_t total = 1000LL * kAccounts;

  std::atomic<bool> done{false};
  std::atomic<int> bad{0}, reads{0};
  std::thread reader([&] {
    while (!done.load()) {
      auto rows = pg_->Query("SELECT count(*), COALESCE(sum(balance), 0) FROM accounts", db_);
      if (!rows.ok()) continue;  // table not created yet
      ++reads;
      const auto& r = (*rows)[0];
      if (*r[0] != "0" && (*r[0] != absl::StrCat(kAccounts) || *r[1] != absl::StrCat(total))) {
        ++bad;
      }
    }
  });
  StartApply({.workers = 4, .max_group_transactions = 40});
  WaitApplied(last);
  done = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0) << "a reader saw a state the source never had";
  EXPECT_GT(reads.load(), 0);
  const std::string parallel = Table("SELECT id, balance FROM accounts ORDER BY id");
  std::string expected;
  for (int i = 0; i < kAccounts; ++i) absl::StrAppend(&expected, i, "|", balance[i], "\n");
  EXPECT_EQ(parallel, expected);

  // Serial apply of the same log into another database ends in the same state.
  apply_.reset();
  db_ += "_serial";
  region_ += "s";
  ASSERT_TRUE(pg_->Exec("CREATE DATABASE " + db_, "postgres").ok());
  StartApply({.workers = 1});
  WaitApplied(last);
  EXPECT_EQ(Table("SELECT id, balance FROM accounts ORDER BY id"), parallel);
}

// The fast path turns each group's changes into a few set-based statements (change_batch.h).
// A random workload of inserts, updates (some leaving a column as unchanged TOAST) and deletes
// on hot keys, with values that need quoting in array literals, ends equal to an oracle, and
// never needs the careful fallback (a batched statement that failed or missed a row would).
TEST_F(ApplyTest, BatchedNetChangesMatchAnOracleWithoutFallingBack) {
  const std::vector<std::optional<std::string>> kNames = {"plain",
                                                          "a\"b",
                                                          "back\\slash",
                                                          "{brace}",
                                                          "comma,sep",
                                                          "NULL",
                                                          "",
                                                          "\xc3\xbcnic\xc3\xb8"
                                                          "de",
                                                          "multi\nline",
                                                          std::nullopt};
  std::mt19937 rng(7);
  std::map<int, std::pair<std::optional<std::string>, std::optional<std::string>>> oracle;
  // Rows that are only ever inserted (so what COPY wrote is what the target keeps).
  const v1::Relation notes =
      Relation(7, "public", "notes", {{"id", "integer", true}, {"name", "text"}});
  std::string expected_notes;
  std::vector<v1::Transaction> txns;
  for (int t = 0; t < 3000; ++t) {
    std::vector<v1::Change> changes;
    const int n = 1 + static_cast<int>(rng() % 5);
    for (int k = 0; k < n; ++k) {
      const int id = static_cast<int>(rng() % 200);  // early groups insert enough rows for COPY
      const std::string key = absl::StrCat(id);
      const auto name = kNames[rng() % kNames.size()];
      const std::optional<std::string> doc = absl::StrCat("doc ", t, "/", k);
      auto it = oracle.find(id);
      if (it == oracle.end()) {
        changes.push_back(Insert(1, {key, name, doc}));
        oracle[id] = {name, doc};
      } else if (rng() % 4 == 0) {
        changes.push_back(Delete(1, {key, std::nullopt, std::nullopt}));
        oracle.erase(it);
      } else if (rng() % 3 == 0) {
        changes.push_back(Update(1, {key, name, kToast}));  // doc unchanged
        it->second.first = name;
      } else {
        changes.push_back(Update(1, {key, name, doc}));
        it->second = {name, doc};
      }
    }
    txns.push_back(Txn({kItems}, changes));
  }
  // Then transactions of one insert each: whole groups of inserts, which go by COPY.
  for (int t = 0; t < 1000; ++t) {
    const auto note = kNames[rng() % kNames.size()];
    txns.push_back(Txn({notes}, {Insert(7, {absl::StrCat(t), note})}));
    absl::StrAppend(&expected_notes, t, "|", note.value_or("NULL"), "\n");
  }
  const uint64_t last = Append(txns);
  std::string expected;
  for (const auto& [id, row] : oracle) {
    absl::StrAppend(&expected, id, "|", row.first.value_or("NULL"), "|",
                    row.second.value_or("NULL"), "\n");
  }
  for (int workers : {1, 3}) {
    SCOPED_TRACE(absl::StrCat("workers ", workers));
    StartApply({.workers = workers, .max_group_transactions = 250});
    WaitApplied(last);
    EXPECT_EQ(Table("SELECT id, name, doc FROM items ORDER BY id"), expected);
    EXPECT_EQ(Table("SELECT id, name FROM notes ORDER BY id"), expected_notes);
    EXPECT_EQ(apply_->status().resets, 0u) << apply_->status().last_error;
    apply_.reset();
    db_ += "_w";
    region_ += "w";
    ASSERT_TRUE(pg_->Exec("CREATE DATABASE " + db_, "postgres").ok());
  }
}

// A table whose rows depend on each other (here a second unique key) keeps its changes in
// order: swapping two rows' unique values through a temporary one inside one group would fail
// as one set-based UPDATE, so the sink must not batch it (and must not need the fallback).
TEST_F(ApplyTest, TablesWithAnotherUniqueKeyKeepTheirOrder) {
  ASSERT_TRUE(
      pg_->Exec("CREATE TABLE people (id integer PRIMARY KEY, email text UNIQUE)", db_).ok());
  const v1::Relation people =
      Relation(4, "public", "people", {{"id", "integer", true}, {"email", "text"}});
  StartApply({.workers = 1, .max_group_transactions = 1000});
  WaitApplied(Append({Txn({people}, {Insert(4, {"1", "a"}), Insert(4, {"2", "b"})})}));
  std::vector<v1::Transaction> txns;
  for (int round = 0; round < 51; ++round) {
    const std::string x = round % 2 == 0 ? "a" : "b", y = round % 2 == 0 ? "b" : "a";
    txns.push_back(Txn({people}, {Update(4, {"1", "tmp"})}));
    txns.push_back(Txn({people}, {Update(4, {"2", x})}));
    txns.push_back(Txn({people}, {Update(4, {"1", y})}));
  }
  WaitApplied(Append(txns));
  EXPECT_EQ(Table("SELECT id, email FROM people ORDER BY id"), "1|b\n2|a\n");
  EXPECT_EQ(apply_->status().resets, 0u) << apply_->status().last_error;
}

// A row-level trigger that fires on apply (ENABLE ALWAYS) sees every change of its table, in
// source order: such a table is not batched. A statement-level one sees no single row: its
// table is batched, and it fires once per set-based statement.
TEST_F(ApplyTest, RowTriggersSeeEveryChangeStatementTriggersFireOncePerStatement) {
  ASSERT_TRUE(pg_->Exec(R"sql(
      CREATE TABLE logged (id integer PRIMARY KEY, v integer);
      CREATE TABLE audit (n serial PRIMARY KEY, id integer, v integer);
      CREATE FUNCTION log_row() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN INSERT INTO audit (id, v) VALUES (NEW.id, NEW.v); RETURN NEW; END $$;
      CREATE TRIGGER log_row AFTER INSERT OR UPDATE ON logged FOR EACH ROW EXECUTE FUNCTION log_row();
      ALTER TABLE logged ENABLE ALWAYS TRIGGER log_row;
      CREATE TABLE counted (id integer PRIMARY KEY, v integer);
      CREATE TABLE statements (n integer);
      INSERT INTO statements VALUES (0);
      CREATE FUNCTION count_statement() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN UPDATE statements SET n = n + 1; RETURN NULL; END $$;
      CREATE TRIGGER count_statement AFTER INSERT OR UPDATE ON counted FOR EACH STATEMENT
        EXECUTE FUNCTION count_statement();
      ALTER TABLE counted ENABLE ALWAYS TRIGGER count_statement;
  )sql",
                        db_)
                  .ok());
  const v1::Relation logged =
      Relation(5, "public", "logged", {{"id", "integer", true}, {"v", "integer"}});
  const v1::Relation counted =
      Relation(6, "public", "counted", {{"id", "integer", true}, {"v", "integer"}});
  StartApply({.workers = 1, .max_group_transactions = 1000});
  WaitApplied(Append({Txn({logged, counted}, {Insert(5, {"1", "0"}), Insert(6, {"1", "0"})})}));
  // One table per run of transactions: a change that is not batched flushes what is batched
  // before it (the order across tables is kept too, a trigger may read other tables).
  for (uint32_t rel : {5, 6}) {
    std::vector<v1::Transaction> txns;
    for (int i = 1; i <= 300; ++i) {
      txns.push_back(Txn({logged, counted}, {Update(rel, {"1", absl::StrCat(i)})}));
    }
    WaitApplied(Append(txns));
  }
  EXPECT_EQ(Value("SELECT count(*) FROM audit"), "301");
  EXPECT_EQ(Value("SELECT bool_and(v = n - 1) FROM audit"), "t") << "changes seen out of order";
  EXPECT_EQ(Value("SELECT v FROM counted"), "300");
  const std::string fired = Value("SELECT n FROM statements");
  EXPECT_LT(std::stoi(fired), 300) << "the statement trigger fired once per change: not batched";
  EXPECT_GE(std::stoi(fired), 2);
  EXPECT_EQ(apply_->status().resets, 0u) << apply_->status().last_error;
}

}  // namespace
}  // namespace ferry
