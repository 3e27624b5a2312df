// CollectKeptChanges on a real durable log: what a rejoin keeps of a former primary's log and a
// promote of a stopped table's changes. A table copy's rows are counted, not kept (they are not
// changes); a corrupt record fails the collection instead of being skipped.
#include "engine/daemon/kept_changes.h"

#include <gtest/gtest.h>

#include "gmock/gmock.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

v1::Relation Accounts() {
  v1::Relation r;
  r.set_relation_id(7);
  r.set_schema("public");
  r.set_name("accounts");
  v1::Column* id = r.add_columns();
  id->set_name("id");
  id->set_part_of_key(true);
  r.add_columns()->set_name("balance");
  return r;
}

v1::Transaction Txn(uint32_t xid, bool snapshot) {
  v1::Transaction t;
  t.set_source_xid(xid);
  t.set_source_position(100 + xid);
  t.set_snapshot(snapshot);
  t.set_last_fragment(true);
  *t.add_relations() = Accounts();
  return t;
}

v1::Transaction SnapshotChunk(std::string rows, uint32_t count) {
  v1::Transaction t = Txn(0, /*snapshot=*/true);
  v1::Change* c = t.add_changes();
  c->set_op(v1::COPY);
  c->set_relation_id(7);
  c->set_copy_rows(std::move(rows));
  c->set_copy_row_count(count);
  return t;
}

v1::Transaction Update(uint32_t xid, const std::string& id, const std::string& balance) {
  v1::Transaction t = Txn(xid, /*snapshot=*/false);
  v1::Change* c = t.add_changes();
  c->set_op(v1::UPDATE);
  c->set_relation_id(7);
  c->mutable_new_tuple()->add_values()->set_text(id);
  c->mutable_new_tuple()->add_values()->set_text(balance);
  return t;
}

class KeptChangesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto log = DurableLog::Open({.path = dir_.File("log")});
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
  }

  void Append(RecordKind kind, const v1::Transaction& txn) {
    AppendRequest request;
    request.records.push_back({kind, txn.SerializeAsString()});
    ASSERT_TRUE(log_->Append(std::move(request)).ok());
  }

  absl::StatusOr<KeptCount> Collect() {
    return CollectKeptChanges(*log_, 1, /*wanted=*/nullptr, [&](v1::QuarantineBatch& batch) {
      for (const v1::QuarantinedChange& q : batch.changes()) kept_.push_back(q);
      return absl::OkStatus();
    });
  }

  ::ferry::testing::TempDir dir_{"ferry-kept-changes-test"};
  std::unique_ptr<DurableLog> log_;
  std::vector<v1::QuarantinedChange> kept_;
};

TEST_F(KeptChangesTest, SnapshotRowsAreCountedNotKept) {
  // A copy's chunk as the snapshot writes it: xid 0, the copy's consistent point, a TRUNCATE
  // before its rows. Kept, every copied row would be one quarantine transaction with truncates.
  v1::Transaction chunk = SnapshotChunk("1\t10\n2\t\\N\n", 2);
  v1::Change truncate;
  truncate.set_op(v1::TRUNCATE);
  truncate.set_relation_id(7);
  truncate.add_truncate_relation_ids(7);
  chunk.mutable_changes()->Add(std::move(truncate));
  chunk.mutable_changes()->SwapElements(0, 1);
  Append(RecordKind::kSnapshotRows, chunk);
  Append(RecordKind::kHeartbeat, v1::Transaction());
  Append(RecordKind::kTransaction, Update(5, "1", "11"));
  absl::StatusOr<KeptCount> done = Collect();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->snapshot_records, 1u);
  EXPECT_EQ(done->other_records, 1u);  // the heartbeat
  EXPECT_EQ(done->changes, 1u);
  EXPECT_EQ(done->transactions, 1u);
  ASSERT_EQ(kept_.size(), 1u);
  EXPECT_EQ(kept_[0].op(), "update");
  EXPECT_EQ(kept_[0].log_seq(), 3u);
  EXPECT_EQ(kept_[0].source_xid(), 5u);
  EXPECT_EQ(kept_[0].key(), R"({"id": "1"})");
  EXPECT_EQ(kept_[0].after(), R"({"id": "1", "balance": "11"})");
}

TEST_F(KeptChangesTest, ATransactionRecordThatDoesNotParseIsDataLoss) {
  AppendRequest request;
  request.records.push_back({RecordKind::kTransaction, "\xff\xff\xff not a transaction"});
  ASSERT_TRUE(log_->Append(std::move(request)).ok());
  absl::StatusOr<KeptCount> done = Collect();
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(kept_.empty());
}

}  // namespace
}  // namespace ferry
