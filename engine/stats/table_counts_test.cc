#include "engine/stats/table_counts.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

v1::Transaction Txn(int64_t commit_us, bool snapshot = false) {
  v1::Transaction t;
  t.set_commit_time_us(commit_us);
  t.set_snapshot(snapshot);
  for (auto [id, name] : {std::pair{1u, "a"}, std::pair{2u, "b"}}) {
    v1::Relation* r = t.add_relations();
    r->set_relation_id(id);
    r->set_schema("public");
    r->set_name(name);
  }
  return t;
}

void AddChange(v1::Transaction& t, uint32_t relation, v1::Operation op) {
  v1::Change* c = t.add_changes();
  c->set_relation_id(relation);
  c->set_op(op);
}

TEST(TableCountsTest, CountsRowChangesPerTableWithTheLatestCommitTime) {
  TableCountDelta delta;
  v1::Transaction t1 = Txn(100);
  AddChange(t1, 1, v1::INSERT);
  AddChange(t1, 1, v1::UPDATE);
  AddChange(t1, 2, v1::DELETE);
  CountTransaction(t1, delta);
  v1::Transaction t2 = Txn(50);  // an older commit must not move the time back
  AddChange(t2, 1, v1::TRUNCATE);
  CountTransaction(t2, delta);
  TableCounts counts;
  counts.Add(delta);
  counts.Add(delta);
  auto s = counts.Snapshot();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s["public.a"].changes, 6u);
  EXPECT_EQ(s["public.a"].last_commit_us, 100);
  EXPECT_EQ(s["public.b"].changes, 2u);
  EXPECT_EQ(s["public.a"].snapshot_rows, 0u);
}

TEST(TableCountsTest, SnapshotRowsAreCountedApartFromChanges) {
  TableCountDelta delta;
  v1::Transaction t = Txn(100, /*snapshot=*/true);
  AddChange(t, 1, v1::TRUNCATE);  // a snapshot's leading TRUNCATE is not a row
  AddChange(t, 1, v1::INSERT);
  AddChange(t, 1, v1::INSERT);
  CountTransaction(t, delta);
  EXPECT_EQ(delta["public.a"].snapshot_rows, 2u);
  EXPECT_EQ(delta["public.a"].changes, 0u);
  EXPECT_EQ(delta["public.a"].last_commit_us, 0);  // a copy is not an applied commit
}

TEST(TableCountsTest, MessagesAndUndescribedRelationsAreNotCounted) {
  TableCountDelta delta;
  v1::Transaction t = Txn(100);
  AddChange(t, 0, v1::MESSAGE);
  AddChange(t, 7, v1::INSERT);  // relation 7 is not in the transaction
  CountTransaction(t, delta);
  EXPECT_TRUE(delta.empty());
}

}  // namespace
}  // namespace ferry
