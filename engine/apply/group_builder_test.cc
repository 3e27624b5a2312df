// Cutting records into groups without a target: limits, careful ranges, shape barriers, plans
// and the groups of large transactions.
#include "engine/apply/group_builder.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/apply/inbound_reader.h"

namespace ferry {
namespace {

// Unique keys: none; every plan is counted.
class PlanningSink final : public Sink {
 public:
  absl::StatusOr<SinkState> LoadState(const UpstreamLog&) override { return SinkState{}; }
  absl::StatusOr<std::unique_ptr<SinkSession>> OpenSession(int) override {
    return absl::UnimplementedError("no sessions");
  }
  absl::StatusOr<UniqueKeys> UniqueKeysOf(const v1::Relation&) override { return UniqueKeys{}; }
  std::shared_ptr<const GroupPlan> Plan(const GroupTransactions&) override {
    ++plans;
    return std::make_shared<GroupPlan>();
  }
  int plans = 0;
};

// A transaction inserting row `key` into public.t (relation shape `shape`).
InboundRecord Insert(uint64_t seq, const std::string& key, uint64_t shape = 1) {
  InboundRecord record;
  record.seq = seq;
  record.bytes = 100;
  v1::Relation* r = record.txn.add_relations();
  r->set_relation_id(7);
  r->set_schema("public");
  r->set_name("t");
  r->set_schema_hash(shape);
  v1::Column* c = r->add_columns();
  c->set_name("id");
  c->set_part_of_key(true);
  v1::Change* change = record.txn.add_changes();
  change->set_op(v1::INSERT);
  change->set_relation_id(7);
  change->mutable_new_tuple()->add_values()->set_text(key);
  record.txn.set_last_fragment(true);
  record.txn.set_commit_time_us(static_cast<int64_t>(seq));
  return record;
}

class GroupBuilderTest : public ::testing::Test {
 protected:
  // Adds as the reader thread does: closes the open group first when it must.
  ApplyGroupPtr Add(InboundRecord record, uint64_t committed = 0) {
    const Footprint fp = builder_.FootprintOf(record.txn);
    ApplyGroupPtr closed;
    if (builder_.MustClose(record.seq, fp)) closed = builder_.Close();
    builder_.Add(std::move(record), fp, committed);
    return closed;
  }

  ManualClock clock_{absl::FromUnixSeconds(100)};
  PlanningSink sink_;
  GroupBuilder builder_{{.max_transactions = 3, .max_bytes = 1 << 20, .clock = &clock_}, &sink_};
};

TEST_F(GroupBuilderTest, GroupsCloseWhenFullAndArePlanned) {
  EXPECT_EQ(Add(Insert(1, "a")), nullptr);
  builder_.AddHeartbeat(2);
  EXPECT_EQ(Add(Insert(3, "b")), nullptr);
  EXPECT_EQ(Add(Insert(4, "c")), nullptr);
  EXPECT_FALSE(builder_.MayGrow());  // full
  ApplyGroupPtr first = Add(Insert(5, "d"));
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->id, 1u);
  EXPECT_EQ(first->first_seq, 1u);
  EXPECT_EQ(first->context.first_seq, 1u);
  EXPECT_EQ(first->last_seq, 4u);
  EXPECT_EQ(first->txns.size(), 3u);
  EXPECT_EQ(first->bytes, 300u);
  EXPECT_EQ(first->commit_time_us, 4);
  EXPECT_NE(first->context.plan, nullptr);
  ASSERT_NE(builder_.open(), nullptr);
  EXPECT_EQ(builder_.open()->id, 2u);
  EXPECT_TRUE(builder_.MayGrow());
  clock_.Advance(absl::Milliseconds(20));  // max_delay
  EXPECT_FALSE(builder_.MayGrow());
}

// The first transaction of a relation is a barrier (everything after it waits for it); a row
// depends on its last writer while that one is uncommitted; a changed shape is a barrier again.
// A transaction carrying a schema change (a message the source vouches for) is applied in a
// group of its own, after everything before it.
TEST_F(GroupBuilderTest, ASchemaChangeIsAGroupOfItsOwn) {
  EXPECT_EQ(Add(Insert(1, "a")), nullptr);
  InboundRecord ddl = Insert(2, "b");
  v1::Change* m = ddl.txn.add_changes();
  m->set_op(v1::MESSAGE);
  m->set_message_prefix("ferry.ddl");
  m->set_message_authenticated(true);
  ApplyGroupPtr before = Add(std::move(ddl));
  ASSERT_NE(before, nullptr);
  EXPECT_EQ(before->txns.size(), 1u);  // seq 1 alone
  ApplyGroupPtr schema = Add(Insert(3, "c"));
  ASSERT_NE(schema, nullptr);
  ASSERT_EQ(schema->txns.size(), 1u);
  EXPECT_EQ(schema->txns[0].first, 2u);
  EXPECT_EQ(schema->wait_for, before->id);  // a barrier
  // An unauthenticated message is carried like any change.
  InboundRecord plain = Insert(4, "d");
  plain.txn.add_changes()->set_op(v1::MESSAGE);
  EXPECT_EQ(Add(std::move(plain)), nullptr);
  EXPECT_EQ(builder_.Close()->txns.size(), 2u);
}

TEST_F(GroupBuilderTest, DependenciesFollowRowsAndShapes) {
  Add(Insert(1, "a"));
  EXPECT_EQ(builder_.Close()->wait_for, 0u);
  Add(Insert(2, "b"));
  EXPECT_EQ(builder_.Close()->wait_for, 1u);  // the new shape of group 1
  Add(Insert(3, "c"), /*committed=*/2);
  EXPECT_EQ(builder_.Close()->wait_for, 0u);
  Add(Insert(4, "c"), /*committed=*/2);
  EXPECT_EQ(builder_.Close()->wait_for, 3u);  // row "c" of group 3
  Add(Insert(5, "c"), /*committed=*/4);
  EXPECT_EQ(builder_.Close()->wait_for, 0u);  // its writer committed
  Add(Insert(6, "z", /*shape=*/2), /*committed=*/4);
  EXPECT_EQ(builder_.Close()->wait_for, 5u);  // changed shape: waits for everything before
  builder_.Reset();
  Add(Insert(7, "y", /*shape=*/2), /*committed=*/6);
  EXPECT_EQ(builder_.Close()->id, 7u);  // ids go on across rounds
}

TEST_F(GroupBuilderTest, CarefulRangesRunSeriallyUnplanned) {
  Add(Insert(1, "a"));
  builder_.Close();
  builder_.CarefulThrough(3);
  Add(Insert(2, "b"));
  EXPECT_FALSE(builder_.MayGrow());
  Add(Insert(3, "c"));
  ApplyGroupPtr careful = Add(Insert(4, "d"));  // leaves the careful range
  ASSERT_NE(careful, nullptr);
  EXPECT_TRUE(careful->context.careful);
  EXPECT_EQ(careful->wait_for, 1u);  // serial
  EXPECT_EQ(careful->txns.size(), 2u);
  EXPECT_EQ(careful->context.plan, nullptr);
  EXPECT_FALSE(builder_.open()->context.careful);
  EXPECT_EQ(sink_.plans, 1);
}

// A large transaction is a group of its own that waits for everything before it, and everything
// after it waits for it.
TEST_F(GroupBuilderTest, ALargeTransactionIsABarrierGroup) {
  Add(Insert(1, "a"));
  builder_.Close();
  ApplyGroupPtr stream = builder_.Stream(2, /*committed=*/0);
  EXPECT_TRUE(stream->stream);
  EXPECT_EQ(stream->id, 2u);
  EXPECT_EQ(stream->wait_for, 1u);
  EXPECT_EQ(stream->context.first_seq, 2u);
  EXPECT_EQ(builder_.open(), nullptr);
  Add(Insert(9, "b"), /*committed=*/1);
  EXPECT_EQ(builder_.Close()->wait_for, 2u);
}

// Records decoded as the scheduler's reader decodes them, their descriptions lent by its
// catalog: the group holds them with their transactions and returns them when it goes, after
// the catalog itself (a broken hand-over aborts).
TEST_F(GroupBuilderTest, LentDescriptionsTravelWithTheirTransactions) {
  auto catalog = std::make_unique<RelationCatalog>();
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    const InboundRecord made = Insert(seq, absl::StrCat("k", seq));
    LogRecord raw{.seq = seq, .kind = RecordKind::kTransaction};
    ASSERT_TRUE(made.txn.SerializeToString(&raw.payload));
    absl::StatusOr<InboundRecord> decoded = InboundReader::Decode(raw, catalog.get());
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_EQ(decoded->lent.size(), 1u);
    EXPECT_EQ(Add(*std::move(decoded)), nullptr);
  }
  ApplyGroupPtr group = builder_.Close();
  ASSERT_NE(group, nullptr);
  ASSERT_EQ(group->txns.size(), 3u);
  ASSERT_EQ(group->lent.size(), 3u);
  catalog.reset();
  EXPECT_EQ(&group->txns[0].second.relations(0), &group->txns[2].second.relations(0));
  EXPECT_EQ(group->txns[2].second.relations(0).name(), "t");
  EXPECT_EQ(group->txns[2].second.changes(0).new_tuple().values(0).text(), "k3");
  group.reset();
}

}  // namespace
}  // namespace ferry
