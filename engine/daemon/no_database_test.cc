// The stand-ins of a bucket-only region (no_database.h): the sink resumes at the inbound log's
// first readable record in its log's identity, and refuses a database transaction naming the
// cause instead of passing over it; the source captures nothing and stops when told.
#include "engine/daemon/no_database.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

namespace ferry {
namespace {

using ::testing::HasSubstr;

class NoTarget final : public CaptureTarget {
 public:
  absl::Status Append(std::vector<v1::Transaction>, uint64_t) override {
    ++calls;
    return absl::OkStatus();
  }
  absl::Status AdvanceTo(uint64_t) override {
    ++calls;
    return absl::OkStatus();
  }
  uint64_t CapturedPosition() const override { return 0; }
  absl::Status PutSourceState(const std::string&, const std::string&) override {
    ++calls;
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> GetSourceState(const std::string&) const override {
    return std::string();
  }
  int calls = 0;
};

TEST(NoDatabaseTest, SinkResumesAtTheFirstReadableRecordOfTheLogItIsGiven) {
  NoDatabaseSink sink;
  const std::string id(32, 'a');
  auto state = sink.LoadState({.log_id = id, .first_seq = 41, .next_seq = 90});
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->applied_seq, 40u);
  EXPECT_EQ(state->log_id, id);
  EXPECT_TRUE(state->stopped.empty());
  state = sink.LoadState({.log_id = "", .first_seq = 1, .next_seq = 1});
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->applied_seq, 0u);
  state = sink.LoadState({.log_id = id, .first_seq = 0, .next_seq = 0});  // never below 0
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->applied_seq, 0u);
}

TEST(NoDatabaseTest, SinkRefusesADatabaseTransactionNamingTheCause) {
  NoDatabaseSink sink;
  auto session = sink.OpenSession(0);
  ASSERT_TRUE(session.ok()) << session.status();
  ASSERT_TRUE((*session)->Begin(GroupContext{}).ok());
  v1::Transaction txn;
  const absl::Status s = (*session)->Apply(17, txn);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("inbound record 17 is a database transaction"));
  EXPECT_THAT(s.message(), HasSubstr("no postgres: section"));
  EXPECT_FALSE((*session)->fault().has_value());  // not one table's fault: apply stops there
  (*session)->Abort();
}

TEST(NoDatabaseTest, SourceCapturesNothingAndStopsWhenTold) {
  NoDatabaseSource source;
  EXPECT_TRUE(source.Health().connected);
  EXPECT_EQ(source.Health().upstream_name, "no database");
  NoTarget target;
  StopSignal stop;
  absl::Status result = absl::UnknownError("not returned");
  std::thread run([&] { result = source.Run(target, stop); });
  stop.Stop();
  run.join();
  EXPECT_TRUE(result.ok()) << result;
  EXPECT_EQ(target.calls, 0);
}

}  // namespace
}  // namespace ferry
