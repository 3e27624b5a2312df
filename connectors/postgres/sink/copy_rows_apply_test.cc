// Apply of snapshot rows that travel as COPY changes (change.proto op COPY, issue #19): handed
// to COPY FROM as they are on the fast path, row by row on the careful path (where a conflict is
// found and resolved exactly as for INSERTs), and refused whole, stopping only their table, when
// the peer sends them malformed.
#include <string>
#include <vector>

#include "connectors/postgres/sink/apply_test_fixture.h"
#include "connectors/postgres/sink/fast_path.h"

namespace ferry {
namespace {

using namespace sink_test;  // NOLINT: test builders

const v1::Relation kAccounts = Relation(
    1, "public", "accounts", {{"id", "integer", true}, {"owner", "text"}, {"n", "integer"}});

v1::Change CopyRows(uint32_t rel, std::string rows, uint32_t count) {
  v1::Change c;
  c.set_op(v1::COPY);
  c.set_relation_id(rel);
  c.set_copy_rows(std::move(rows));
  c.set_copy_row_count(count);
  return c;
}

// A snapshot chunk as the initial copy sends it.
v1::Transaction Chunk(const std::vector<v1::Relation>& rels, std::vector<v1::Change> changes) {
  v1::Transaction t = Txn(rels, changes);
  t.set_snapshot(true);
  t.set_source_xid(0);
  return t;
}

std::string Rows(int from, int to) {
  std::string out;
  for (int i = from; i <= to; ++i) absl::StrAppend(&out, i, "\towner\\t", i, "\t", i * 10, "\n");
  return out;
}

// The fast path's plan hands a chunk's rows to COPY FROM as they are (the statement points at
// the change's own bytes), and takes the long way when a chunk mixes them with other changes or
// holds a row it would refuse.
TEST(CopyRowsPlanTest, AChunksRowsBecomeOneCopyOfTheirOwnBytes) {
  GroupTransactions txns;
  txns.emplace_back(1, Chunk({kAccounts}, {CopyRows(1, Rows(1, 3), 3)}));
  auto plan = std::dynamic_pointer_cast<const pg_sink::PlannedGroup>(
      pg_sink::PlanGroup(txns, /*max_value_bytes=*/1 << 20));
  ASSERT_NE(plan, nullptr);
  ASSERT_EQ(plan->statements.size(), 1u);
  const auto& copy = plan->statements[0];
  EXPECT_TRUE(copy.copy);
  EXPECT_EQ(copy.copy_rows, &txns[0].second.changes(0).copy_rows());
  EXPECT_EQ(copy.expect_rows, 3);

  GroupTransactions mixed;
  mixed.emplace_back(1,
                     Chunk({kAccounts}, {CopyRows(1, Rows(1, 3), 3), Insert(1, {"9", "x", "90"})}));
  EXPECT_EQ(pg_sink::PlanGroup(mixed, 1 << 20), nullptr);
  GroupTransactions malformed;
  malformed.emplace_back(1, Chunk({kAccounts}, {CopyRows(1, "1\towner\n", 1)}));
  EXPECT_EQ(pg_sink::PlanGroup(malformed, 1 << 20), nullptr);
}

TEST_F(ApplyTest, SnapshotRowsInCopyFormatLoadAsTheyAre) {
  // The first chunk: TRUNCATE and rows (the long way, which creates the table); then chunks
  // of rows only (the plan: one COPY each); NULLs and escapes come through.
  std::vector<v1::Transaction> chunks;
  chunks.push_back(Chunk({kAccounts}, {Truncate({1}), CopyRows(1, Rows(1, 1000), 1000)}));
  chunks.push_back(Chunk({kAccounts}, {CopyRows(1, Rows(1001, 2000), 1000)}));
  chunks.push_back(Chunk({kAccounts}, {CopyRows(1, "2001\t\\N\t\\N\n2002\ta\\\\b\t7\n", 2)}));
  chunks.push_back(Chunk({kAccounts}, {CopyRows(1, "", 0)}));  // an empty table's last chunk
  const uint64_t last = Append(chunks);
  StartApply();
  WaitApplied(last);
  EXPECT_EQ(Value("SELECT count(*) FROM accounts"), "2002");
  EXPECT_EQ(Table("SELECT owner, n FROM accounts WHERE id IN (7, 2001, 2002) ORDER BY id"),
            "owner\t7|70\nNULL|NULL\na\\b|7\n");
  EXPECT_EQ(Value("SELECT count(*) FROM ferry.conflicts"), "0");
  EXPECT_TRUE(apply_->status().stopped_tables.empty()) << apply_->status().last_error;
}

// A row the target already holds fails the COPY; the range is applied again change by change,
// where the rows are expanded into INSERTs: the conflict is found and recorded for that row,
// exactly as for a streamed INSERT, and the table stops there under the stop policy.
TEST_F(ApplyTest, ACopyThatConflictsIsAppliedRowByRowAndTheConflictIsExact) {
  uint64_t last = Append({Chunk({kAccounts}, {Truncate({1}), CopyRows(1, Rows(1, 10), 10)})});
  StartApply();
  WaitApplied(last);
  ASSERT_TRUE(pg_->Exec("INSERT INTO accounts VALUES (15, 'local', 0)", db_).ok());
  last = Append({Chunk({kAccounts}, {CopyRows(1, Rows(11, 20), 10)})});
  WaitApplied(last);
  ApplyStatus s = apply_->status();
  ASSERT_EQ(s.stopped_tables.size(), 1u) << s.last_error;
  EXPECT_NE(s.stopped_tables.begin()->second.reason.find("insert_exists"), std::string::npos)
      << s.stopped_tables.begin()->second.reason;
  EXPECT_EQ(Table("SELECT kind, remote_row->>'id', local_row->>'owner' FROM ferry.conflicts"),
            "insert_exists|15|local\n");
  // Nothing of the conflicting chunk stayed: it is one source transaction.
  EXPECT_EQ(Value("SELECT count(*) FROM accounts"), "11");
}

// Rows from the peer are input from outside. Each malformed or hostile form stops its table
// with the reason, the other tables of the same transactions go on, and nothing of the bad
// change is applied (no COPY FROM of it ever runs: the end-of-data marker would cut it short).
TEST_F(ApplyTest, MalformedCopyRowsStopTheirTableAndNothingIsHalfApplied) {
  const v1::Relation good = Relation(7, "public", "good", {{"id", "integer", true}});
  uint64_t last = Append(
      {Chunk({kAccounts, good}, {Truncate({1}), Truncate({7}), CopyRows(1, Rows(1, 2), 2)})});
  StartApply();
  WaitApplied(last);
  struct Hostile {
    std::string rows;
    uint32_t count;
    std::string reason;
  };
  const std::vector<Hostile> hostile = {
      {Rows(3, 4), 3, "2 COPY rows, but the change says 3"},
      {"5\ta\t1\n\\.\n6\tb\t2\n", 3, "end-of-data marker"},
      {"7\ta\n", 1, "has 2 values"},
      {"8\ta\t1\t9\n", 1, "has 4 values"},
      {std::string("9\ta\0b\t1\n", 8), 1, "NUL byte"},
      {"10\ta\t1\\\n", 1, "ends inside an escape"},
      {"11\ta\t1", 1, "do not end with a newline"},
  };
  int id = 100;
  for (const auto& [rows, count, reason] : hostile) {
    last = Append({Chunk({kAccounts, good},
                         {CopyRows(1, rows, count), CopyRows(7, absl::StrCat(id++, "\n"), 1)})});
    WaitApplied(last);
    ApplyStatus s = apply_->status();
    ASSERT_EQ(s.stopped_tables.size(), 1u) << rows;
    EXPECT_NE(s.stopped_tables.begin()->second.reason.find(reason), std::string::npos)
        << s.stopped_tables.begin()->second.reason;
    EXPECT_EQ(Value("SELECT count(*) FROM accounts"), "2") << rows;
    // Resume to try the next one: the stopped change is skipped by a fresh stop each time.
    ASSERT_TRUE(pg_->Exec("DELETE FROM ferry.table_state", db_).ok());
    apply_.reset();
    StartApply();
  }
  EXPECT_EQ(Value("SELECT count(*) FROM good"), absl::StrCat(hostile.size()));
}

}  // namespace
}  // namespace ferry
