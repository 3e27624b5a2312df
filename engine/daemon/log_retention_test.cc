// LogRetention on a real durable log and a clock the test advances: records are kept for
// keep_for after they became safe, trimmed at once when the log is over its byte bound, and
// never trimmed while unsafe.
#include "engine/daemon/log_retention.h"

#include <gtest/gtest.h>

#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

class LogRetentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto log = DurableLog::Open({.path = dir_.File("log")});
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
    AppendRequest request;
    for (int i = 0; i < 100; ++i) request.records.push_back({RecordKind::kHeartbeat, "x"});
    ASSERT_TRUE(log_->Append(std::move(request)).ok());
  }
  ::ferry::testing::TempDir dir_{"ferry-retention-test"};
  std::unique_ptr<DurableLog> log_;
  ManualClock clock_{absl::FromUnixSeconds(1000)};
};

TEST_F(LogRetentionTest, KeepsSafeRecordsForTheRetentionTime) {
  LogRetention retention(&clock_, absl::Seconds(60), uint64_t{1} << 40);
  ASSERT_TRUE(retention.Trim(*log_, 40).ok());
  EXPECT_EQ(log_->first_seq(), 1u);
  clock_.Advance(absl::Seconds(30));
  ASSERT_TRUE(retention.Trim(*log_, 70).ok());
  EXPECT_EQ(log_->first_seq(), 1u);
  clock_.Advance(absl::Seconds(30));  // 40 has been safe for 60 s, 70 for 30 s
  ASSERT_TRUE(retention.Trim(*log_, 70).ok());
  EXPECT_EQ(log_->first_seq(), 40u);
  clock_.Advance(absl::Seconds(30));
  ASSERT_TRUE(retention.Trim(*log_, 70).ok());
  EXPECT_EQ(log_->first_seq(), 70u);
  EXPECT_EQ(retention.trimmed_below(), 70u);
}

TEST_F(LogRetentionTest, OverTheByteBoundTrimsEverythingSafeAtOnce) {
  LogRetention retention(&clock_, absl::Hours(24), /*max_bytes=*/0);
  ASSERT_TRUE(retention.Trim(*log_, 55).ok());
  EXPECT_EQ(log_->first_seq(), 55u);
}

TEST_F(LogRetentionTest, NeverTrimsWhatIsNotSafe) {
  LogRetention retention(&clock_, absl::ZeroDuration(), /*max_bytes=*/0);
  ASSERT_TRUE(retention.Trim(*log_, 30).ok());
  EXPECT_EQ(log_->first_seq(), 30u);
  // The safe position went back (e.g. apply reset to a retained table): keep from there.
  clock_.Advance(absl::Hours(1));
  ASSERT_TRUE(retention.Trim(*log_, 20).ok());
  EXPECT_EQ(log_->first_seq(), 30u);
  ASSERT_TRUE(retention.Trim(*log_, 1).ok());
  EXPECT_EQ(log_->first_seq(), 30u);
}

}  // namespace
}  // namespace ferry
