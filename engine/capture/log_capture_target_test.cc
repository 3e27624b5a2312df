#include "engine/capture/log_capture_target.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

class LogCaptureTargetTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  void TearDown() override { log_.reset(); }
  void Reopen() {
    target_.reset();
    log_.reset();
    auto log = DurableLog::Open({.path = dir_ + "/outbound"});
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = std::move(*log);
    target_ = std::make_unique<LogCaptureTarget>(
        log_.get(), "east", [] { return 7; }, &clock_);
    ASSERT_TRUE(target_->Load().ok());
  }
  static v1::Transaction Fragment(uint64_t position, uint32_t index, bool last) {
    v1::Transaction t;
    t.set_source_position(position);
    t.set_fragment(index);
    t.set_last_fragment(last);
    t.add_changes()->set_op(v1::INSERT);
    return t;
  }

  ManualClock clock_{absl::FromUnixSeconds(1000)};
  ::ferry::testing::TempDir tmp_{"ferry-capture-test"};
  const std::string dir_ = tmp_.path();
  std::unique_ptr<DurableLog> log_;
  std::unique_ptr<LogCaptureTarget> target_;
};

TEST_F(LogCaptureTargetTest, AppendStampsRegionEpochAndCaptureTime) {
  std::vector<v1::Transaction> fragments = {Fragment(100, 0, true)};
  ASSERT_TRUE(target_->Append(std::move(fragments), 100).ok());
  auto records = log_->Read(1, 10, 1 << 20);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  v1::Transaction stored;
  ASSERT_TRUE(stored.ParseFromString((*records)[0].payload));
  EXPECT_EQ(stored.origin_region(), "east");
  EXPECT_EQ(stored.epoch(), 7u);
  EXPECT_EQ(stored.capture_time_us(), 1000 * 1000000LL);
  EXPECT_EQ(target_->CapturedPosition(), 100u);
}

v1::Relation TestRelation(uint32_t id, const std::string& name, int columns) {
  v1::Relation r;
  r.set_relation_id(id);
  r.set_schema("public");
  r.set_name(name);
  for (int i = 0; i < columns; ++i) {
    v1::Column* c = r.add_columns();
    c->set_name(absl::StrCat("column_", i));
    c->set_type_oid(23);
    c->set_type_name("integer");
    c->set_type_modifier(-1);
    c->set_part_of_key(i == 0);
    c->set_not_null(i == 0);
  }
  r.set_replica_identity(v1::REPLICA_IDENTITY_DEFAULT);
  r.set_schema_hash(0x1234567890abcdefULL + id);
  r.add_primary_key("column_0");
  return r;
}

TEST_F(LogCaptureTargetTest, AppendSharedWritesWhatAppendWritesWithTheRelationsCopiedIn) {
  TableCounts counted_by_append;
  target_->CountTablesInto(&counted_by_append);
  const auto accounts = std::make_shared<const SharedRelation>(TestRelation(16400, "accounts", 4));
  const auto history = std::make_shared<const SharedRelation>(TestRelation(16410, "history", 300));
  auto fragments = [&] {
    std::vector<SharedRelationsFragment> out(4);
    // A transaction in two fragments, both naming `accounts`, the second also `history`.
    for (int i = 0; i < 2; ++i) {
      v1::Transaction& t = out[i].txn;
      t.set_source_position(0x16B3D48);
      t.set_commit_time_us(1765000000123456);
      t.set_source_xid(7781);
      t.set_fragment(i);
      t.set_last_fragment(i == 1);
      if (i == 1) t.set_end_position(0x16B3E00);
      v1::Change* update = t.add_changes();
      update->set_op(v1::UPDATE);
      update->set_relation_id(16400);
      update->mutable_new_tuple()->add_values()->set_text("42");
      out[i].relations.push_back(accounts);
    }
    v1::Change* insert = out[1].txn.add_changes();
    insert->set_op(v1::INSERT);
    insert->set_relation_id(16410);
    insert->mutable_new_tuple()->add_values()->set_null(true);
    out[1].relations.push_back(history);
    // Snapshot rows, kept as their own record kind.
    out[2].txn.set_snapshot(true);
    out[2].txn.set_last_fragment(true);
    v1::Change* copy = out[2].txn.add_changes();
    copy->set_op(v1::COPY);
    copy->set_relation_id(16410);
    copy->set_copy_rows("1\t2\n");
    copy->set_copy_row_count(1);
    out[2].relations.push_back(history);
    // No relations at all, and stamps the source set itself (the target's win).
    out[3].txn.set_last_fragment(true);
    out[3].txn.set_epoch(99);
    out[3].txn.set_capture_time_us(5);
    v1::Change* message = out[3].txn.add_changes();
    message->set_op(v1::MESSAGE);
    message->set_message_prefix("app");
    message->set_message_content("hello");
    return out;
  };
  std::vector<v1::Transaction> copied;
  for (SharedRelationsFragment& f : fragments()) copied.push_back(std::move(f).Materialize());
  ASSERT_EQ(copied[1].relations_size(), 2);
  // What protobuf itself writes for each, stamped as the target stamps it.
  std::vector<std::string> expected;
  for (v1::Transaction t : copied) {
    t.set_origin_region("east");
    t.set_epoch(7);
    t.set_capture_time_us(1000 * 1000000LL);
    expected.push_back(t.SerializeAsString());
  }
  ASSERT_TRUE(target_->Append(std::move(copied), 0x16B3E00).ok());

  TableCounts counted_by_shared;
  target_->CountTablesInto(&counted_by_shared);
  ASSERT_TRUE(target_->AppendShared(fragments(), 0x16B3F00).ok());
  EXPECT_EQ(target_->CapturedPosition(), 0x16B3F00u);

  auto records = log_->Read(1, 10, 1 << 20);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 8u);
  for (size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ((*records)[i].payload, expected[i]);
    EXPECT_EQ((*records)[i + 4].kind, (*records)[i].kind);
    EXPECT_EQ((*records)[i + 4].payload, expected[i]);
  }
  EXPECT_EQ((*records)[2].kind, RecordKind::kSnapshotRows);
  EXPECT_EQ((*records)[3].kind, RecordKind::kTransaction);
  v1::Transaction second;
  ASSERT_TRUE(second.ParseFromString((*records)[5].payload));
  ASSERT_EQ(second.relations_size(), 2);
  EXPECT_EQ(second.relations(1).columns_size(), 300);  // a description of more than 127 bytes
  EXPECT_EQ(second.changes_size(), 2);
  EXPECT_EQ(second.origin_region(), "east");
  EXPECT_EQ(second.epoch(), 7u);
  // The shared descriptions are what they were.
  EXPECT_EQ(accounts->relation().SerializeAsString(),
            TestRelation(16400, "accounts", 4).SerializeAsString());

  auto by_append = counted_by_append.Snapshot();
  auto by_shared = counted_by_shared.Snapshot();
  ASSERT_EQ(by_shared.size(), 2u);
  EXPECT_EQ(by_shared["public.accounts"].changes, 2u);
  EXPECT_EQ(by_shared["public.history"].changes, 1u);
  EXPECT_EQ(by_shared["public.history"].snapshot_rows, 1u);
  for (const auto& [table, c] : by_append) {
    EXPECT_EQ(by_shared[table].changes, c.changes) << table;
    EXPECT_EQ(by_shared[table].snapshot_rows, c.snapshot_rows) << table;
  }
}

TEST(LogCaptureTargetFormat, TheFieldsAfterRelationsAreTheOnesAppendSharedMoves) {
  // AppendShared writes a Transaction's fields numbered up to `relations` first, then the
  // shared encodings, then the fields it moves after them by name. A field added after
  // `relations` must be moved there too, or the payload stops being protobuf's bytes.
  const google::protobuf::Descriptor* d = v1::Transaction::descriptor();
  std::vector<int> after;
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->number() > v1::Transaction::kRelationsFieldNumber) {
      after.push_back(d->field(i)->number());
    }
  }
  std::sort(after.begin(), after.end());
  EXPECT_EQ(after, (std::vector<int>{v1::Transaction::kChangesFieldNumber,
                                     v1::Transaction::kEpochFieldNumber,
                                     v1::Transaction::kCaptureTimeUsFieldNumber,
                                     v1::Transaction::kSnapshotFieldNumber}));
}

TEST_F(LogCaptureTargetTest, CapturedPositionSurvivesReopenAndIgnoresMidTransactionFragments) {
  std::vector<v1::Transaction> first = {Fragment(200, 0, false)};
  ASSERT_TRUE(target_->Append(std::move(first), 0).ok());
  EXPECT_EQ(target_->CapturedPosition(), 0u);
  std::vector<v1::Transaction> rest = {Fragment(200, 1, true)};
  ASSERT_TRUE(target_->Append(std::move(rest), 200).ok());
  Reopen();
  EXPECT_EQ(target_->CapturedPosition(), 200u);
  EXPECT_EQ(log_->next_seq(), 3u);
}

TEST_F(LogCaptureTargetTest, AdvanceToWritesAHeartbeatAndNeverMovesBackwards) {
  ASSERT_TRUE(target_->AdvanceTo(500).ok());
  ASSERT_TRUE(target_->AdvanceTo(400).ok());
  EXPECT_EQ(target_->CapturedPosition(), 500u);
  auto records = log_->Read(1, 10, 1 << 20);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].kind, RecordKind::kHeartbeat);
  Reopen();
  EXPECT_EQ(target_->CapturedPosition(), 500u);
}

TEST_F(LogCaptureTargetTest, SourceStateRoundTrips) {
  auto missing = target_->GetSourceState("slot_identity");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(*missing, "");
  ASSERT_TRUE(target_->PutSourceState("slot_identity", "abc").ok());
  Reopen();
  EXPECT_EQ(*target_->GetSourceState("slot_identity"), "abc");
}

}  // namespace
}  // namespace ferry
