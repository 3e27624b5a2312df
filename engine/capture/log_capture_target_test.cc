#include "engine/capture/log_capture_target.h"

#include <gtest/gtest.h>

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
