#include "engine/apply/dependency_tracker.h"

#include <gtest/gtest.h>

#include "engine/apply/footprint.h"

namespace ferry {
namespace {

Footprint Row(uint64_t table, uint64_t row) {
  Footprint fp;
  fp.AddRow(table, row);
  return fp;
}

Footprint Table(uint64_t table) {
  Footprint fp;
  fp.AddTable(table);
  return fp;
}

TEST(DependencyTrackerTest, IndependentRowsDoNotWait) {
  DependencyTracker t;
  EXPECT_EQ(t.Add(1, Row(1, 10), 0), 0u);
  EXPECT_EQ(t.Add(2, Row(1, 11), 0), 0u);
  EXPECT_EQ(t.Add(3, Row(2, 10), 0), 0u);
}

TEST(DependencyTrackerTest, SameRowWaitsForLatestUncommittedWriter) {
  DependencyTracker t;
  t.Add(1, Row(1, 10), 0);
  t.Add(2, Row(1, 10), 0);
  EXPECT_EQ(t.Add(3, Row(1, 10), 0), 2u);
  // Once group 3 committed, nobody waits for it.
  EXPECT_EQ(t.Add(4, Row(1, 10), 3), 0u);
}

TEST(DependencyTrackerTest, SameGroupNeverWaitsForItself) {
  DependencyTracker t;
  EXPECT_EQ(t.Add(5, Row(1, 10), 0), 0u);
  EXPECT_EQ(t.Add(5, Row(1, 10), 0), 0u);
}

TEST(DependencyTrackerTest, WholeTableConflictsWithEveryRowOfIt) {
  DependencyTracker t;
  t.Add(1, Row(1, 10), 0);
  t.Add(2, Row(2, 10), 0);
  EXPECT_EQ(t.Add(3, Table(1), 0), 1u);
  EXPECT_EQ(t.Add(4, Row(1, 99), 0), 3u);
  EXPECT_EQ(t.Add(5, Row(2, 10), 0), 2u);
}

TEST(DependencyTrackerTest, BarrierWaitsForAllAndAllWaitForIt) {
  DependencyTracker t;
  t.Add(1, Row(1, 1), 0);
  t.Add(2, Row(2, 2), 0);
  Footprint b;
  b.barrier = true;
  EXPECT_EQ(t.Add(3, b, 0), 2u);
  EXPECT_EQ(t.Add(4, Row(9, 9), 0), 3u);
  EXPECT_EQ(t.Add(5, Row(8, 8), 3), 0u);  // barrier committed
}

TEST(DependencyTrackerTest, ForgetAndClearDropCommittedState) {
  DependencyTracker t;
  t.Add(1, Row(1, 1), 0);
  t.Add(2, Row(1, 2), 0);
  t.Forget(1);
  EXPECT_EQ(t.Add(3, Row(1, 2), 1), 2u);
  t.Clear();
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.Add(4, Row(1, 2), 0), 0u);
}

// --- Footprints of transactions.

v1::Relation Accounts(v1::ReplicaIdentity identity = v1::REPLICA_IDENTITY_DEFAULT) {
  v1::Relation r;
  r.set_relation_id(7);
  r.set_schema("public");
  r.set_name("accounts");
  r.set_replica_identity(identity);
  auto* id = r.add_columns();
  id->set_name("id");
  id->set_part_of_key(identity != v1::REPLICA_IDENTITY_FULL || true);
  auto* email = r.add_columns();
  email->set_name("email");
  email->set_part_of_key(identity == v1::REPLICA_IDENTITY_FULL);
  auto* balance = r.add_columns();
  balance->set_name("balance");
  balance->set_part_of_key(identity == v1::REPLICA_IDENTITY_FULL);
  return r;
}

void SetTuple(v1::Tuple* t, std::vector<std::string> values) {
  for (auto& v : values) t->add_values()->set_text(v);
}

v1::Transaction Insert(std::string id, std::string email, std::string balance,
                       v1::ReplicaIdentity identity = v1::REPLICA_IDENTITY_DEFAULT) {
  v1::Transaction txn;
  *txn.add_relations() = Accounts(identity);
  auto* c = txn.add_changes();
  c->set_op(v1::INSERT);
  c->set_relation_id(7);
  SetTuple(c->mutable_new_tuple(), {id, email, balance});
  return txn;
}

v1::Transaction Update(std::string id, std::string email, std::string balance) {
  v1::Transaction txn;
  *txn.add_relations() = Accounts();
  auto* c = txn.add_changes();
  c->set_op(v1::UPDATE);
  c->set_relation_id(7);
  SetTuple(c->mutable_new_tuple(), {id, email, balance});
  return txn;
}

const UniqueKeys kNoKeys;
const UniqueKeys kEmailUnique = {{"email"}};

TEST(FootprintTest, InsertsOfDifferentKeysAreIndependent) {
  DependencyTracker t;
  auto none = [](const v1::Relation&) -> const UniqueKeys& { return kNoKeys; };
  EXPECT_EQ(t.Add(1, ComputeFootprint(Insert("1", "a", "0"), none), 0), 0u);
  EXPECT_EQ(t.Add(2, ComputeFootprint(Insert("2", "a", "0"), none), 0), 0u);
  EXPECT_EQ(t.Add(3, ComputeFootprint(Update("1", "b", "5"), none), 0), 1u);
}

TEST(FootprintTest, UniqueConstraintsAreKeysToo) {
  DependencyTracker t;
  auto email = [](const v1::Relation&) -> const UniqueKeys& { return kEmailUnique; };
  EXPECT_EQ(t.Add(1, ComputeFootprint(Insert("1", "a", "0"), email), 0), 0u);
  // Same email, different id: must wait (unique index).
  EXPECT_EQ(t.Add(2, ComputeFootprint(Insert("2", "a", "0"), email), 0), 1u);
  // An update whose old email is unknown (key-only old image) takes the whole table.
  Footprint fp = ComputeFootprint(Update("3", "c", "0"), email);
  EXPECT_FALSE(fp.tables.empty());
  EXPECT_EQ(t.Add(3, fp, 0), 2u);
}

TEST(FootprintTest, TruncateAndUnknownRelationAreBarriers) {
  auto none = [](const v1::Relation&) -> const UniqueKeys& { return kNoKeys; };
  v1::Transaction txn;
  auto* c = txn.add_changes();
  c->set_op(v1::TRUNCATE);
  c->set_relation_id(7);
  EXPECT_TRUE(ComputeFootprint(txn, none).barrier);
  v1::Transaction bad = Insert("1", "a", "0");
  bad.mutable_changes(0)->set_relation_id(99);
  EXPECT_TRUE(ComputeFootprint(bad, none).barrier);
}

TEST(FootprintTest, FullIdentityKeysOnTheWholeRowImage) {
  DependencyTracker t;
  auto none = [](const v1::Relation&) -> const UniqueKeys& { return kNoKeys; };
  auto full = v1::REPLICA_IDENTITY_FULL;
  EXPECT_EQ(t.Add(1, ComputeFootprint(Insert("1", "a", "0", full), none), 0), 0u);
  EXPECT_EQ(t.Add(2, ComputeFootprint(Insert("1", "a", "1", full), none), 0), 0u);
  EXPECT_EQ(t.Add(3, ComputeFootprint(Insert("1", "a", "0", full), none), 0), 1u);
}

}  // namespace
}  // namespace ferry
