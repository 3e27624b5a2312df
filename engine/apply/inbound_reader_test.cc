// The inbound reader's contract: batch sizes by reader, `until`, and the errors every reader of
// the inbound log shares (trimmed, unknown kind, unparsable payload).
#include "engine/apply/inbound_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "engine/apply/relation_catalog.h"
#include "engine/rows/copy_rows.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

class InboundReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto log = DurableLog::Open({.path = dir_.File("inbound"), .sync = false});
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
  }

  void Append(int n) {
    AppendRequest req;
    v1::Transaction txn;
    txn.set_last_fragment(true);
    for (int i = 0; i < n; ++i) {
      req.records.push_back({RecordKind::kTransaction, txn.SerializeAsString()});
    }
    ASSERT_TRUE(log_->Append(std::move(req)).ok());
  }

  ferry::testing::TempDir dir_{"ferry-inbound-reader-test"};
  std::unique_ptr<DurableLog> log_;
};

TEST_F(InboundReaderTest, EachReaderReadsItsOwnBatchNeverPastUntil) {
  Append(300);
  InboundReader inbound(log_.get(), {.batch_records = 100});
  auto groups = inbound.Read(1, InboundReader::Batch::kGroups);
  ASSERT_TRUE(groups.ok()) << groups.status();
  EXPECT_EQ(groups->size(), 100u);
  auto stream = inbound.Read(1, InboundReader::Batch::kStream);
  ASSERT_TRUE(stream.ok()) << stream.status();
  EXPECT_EQ(stream->size(), 64u);
  auto replay = inbound.Read(1, InboundReader::Batch::kReplay);
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->size(), 256u);
  auto until = inbound.Read(10, InboundReader::Batch::kReplay, /*until=*/12);
  ASSERT_TRUE(until.ok()) << until.status();
  ASSERT_EQ(until->size(), 3u);
  EXPECT_EQ(until->back().seq, 12u);
  auto past = inbound.Read(13, InboundReader::Batch::kReplay, /*until=*/12);
  ASSERT_TRUE(past.ok()) << past.status();
  EXPECT_TRUE(past->empty());
  auto end = inbound.Read(301, InboundReader::Batch::kGroups);
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_TRUE(end->empty());
}

TEST_F(InboundReaderTest, ATrimmedRecordIsDataLoss) {
  Append(10);
  ASSERT_TRUE(log_->TrimBelow(5).ok());
  InboundReader inbound(log_.get(), {});
  EXPECT_EQ(inbound.Read(3, InboundReader::Batch::kStream).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_TRUE(inbound.Read(5, InboundReader::Batch::kStream).ok());
}

TEST_F(InboundReaderTest, DecodesHeartbeatsAndTransactionsAndRefusesTheRest) {
  v1::Transaction txn;
  txn.set_fragment(2);
  auto heartbeat = InboundReader::Decode({.seq = 7, .kind = RecordKind::kHeartbeat});
  ASSERT_TRUE(heartbeat.ok()) << heartbeat.status();
  EXPECT_TRUE(heartbeat->heartbeat);
  EXPECT_EQ(heartbeat->seq, 7u);
  // A source event (a bucket's object event) is the event pipeline's: the database apply
  // passes over it like a heartbeat, whatever its payload.
  auto event = InboundReader::Decode(
      {.seq = 9, .kind = RecordKind::kSourceEvent, .payload = "not a transaction"});
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_TRUE(event->heartbeat);
  for (RecordKind kind : {RecordKind::kTransaction, RecordKind::kSnapshotRows}) {
    auto decoded = InboundReader::Decode({8, kind, txn.SerializeAsString()});
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_FALSE(decoded->heartbeat);
    EXPECT_EQ(decoded->txn.fragment(), 2u);
    EXPECT_EQ(decoded->bytes, txn.SerializeAsString().size());
  }
  EXPECT_EQ(InboundReader::Decode({9, RecordKind::kUnspecified, ""}).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(
      InboundReader::Decode({10, RecordKind::kTransaction, "\xff\xff garbage"}).status().code(),
      absl::StatusCode::kDataLoss);
}

// Snapshot rows the capture compressed reach apply inflated, counted at their inflated size
// (groups are bounded by what they hold in memory); a damaged frame stops apply at its record.
TEST_F(InboundReaderTest, CompressedSnapshotRowsAreInflatedAndCountedAsSuch) {
  std::string rows;
  for (int i = 0; i < 2000; ++i) absl::StrAppend(&rows, i, "\t", std::string(80, ' '), "\n");
  v1::Transaction txn;
  txn.set_snapshot(true);
  txn.set_last_fragment(true);
  v1::Relation* relation = txn.add_relations();
  relation->set_relation_id(7);
  relation->set_name("t");
  relation->add_columns()->set_name("id");
  relation->add_columns()->set_name("v");
  v1::Change* copy = txn.add_changes();
  copy->set_op(v1::COPY);
  copy->set_relation_id(7);
  copy->set_copy_rows(rows);
  copy->set_copy_row_count(2000);
  ASSERT_TRUE(CompressCopyRows(copy, 1).ok());
  ASSERT_FALSE(copy->copy_rows_zstd().empty());
  const std::string payload = txn.SerializeAsString();
  ASSERT_LT(payload.size(), rows.size() / 8);
  RelationCatalog catalog;  // the scheduler's reader decodes through one
  for (RelationCatalog* c : {static_cast<RelationCatalog*>(nullptr), &catalog}) {
    auto decoded = InboundReader::Decode({11, RecordKind::kSnapshotRows, payload}, c);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->txn.changes(0).copy_rows(), rows);
    EXPECT_TRUE(decoded->txn.changes(0).copy_rows_zstd().empty());
    EXPECT_GE(decoded->bytes, rows.size());
    EXPECT_LT(decoded->bytes, rows.size() + payload.size());
    EXPECT_EQ(decoded->txn.relations(0).name(), "t");
  }
  EXPECT_EQ(catalog.entries(), 1u);  // the description was lent by the catalog
  // Only snapshot records are inflated: anywhere else the change keeps no rows, which apply
  // refuses as malformed (its row count).
  auto elsewhere = InboundReader::Decode({13, RecordKind::kTransaction, payload});
  ASSERT_TRUE(elsewhere.ok()) << elsewhere.status();
  EXPECT_TRUE(elsewhere->txn.changes(0).copy_rows().empty());
  EXPECT_THAT(CopyRowsProblem(txn.relations(0), elsewhere->txn.changes(0), 1 << 20).value_or(""),
              ::testing::HasSubstr("0 COPY rows, but the change says 2000"));

  copy->mutable_copy_rows_zstd()->resize(copy->copy_rows_zstd().size() / 2);
  auto damaged = InboundReader::Decode({12, RecordKind::kSnapshotRows, txn.SerializeAsString()});
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(damaged.status().message(), ::testing::HasSubstr("inbound record 12"));
  EXPECT_THAT(damaged.status().message(), ::testing::HasSubstr("do not inflate"));
}

// The wait is on the injected clock, and a clock nobody advances cannot hang the caller.
TEST_F(InboundReaderTest, WaitsOnTheInjectedClock) {
  ManualClock clock(absl::FromUnixSeconds(100));
  InboundReader inbound(log_.get(), {.clock = &clock});
  EXPECT_FALSE(inbound.WaitForRecord(1, absl::Hours(1)));
  Append(1);
  EXPECT_TRUE(inbound.WaitForRecord(1, absl::Hours(1)));
}

}  // namespace
}  // namespace ferry
