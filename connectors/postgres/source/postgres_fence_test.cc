// PostgresFence against a real Postgres 15: what a raised fence refuses, and the one session the
// calls share (kept between calls, replaced when it was ended or the database restarted, dropped
// after a call that failed), each call run once.
#include "connectors/postgres/source/postgres_fence.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/pg_database_test.h"
#include "tests/support/wait_until.h"

namespace ferry::pg {
namespace {

using ::ferry::testing::PgCluster;
using ::ferry::testing::PgDatabaseTest;
using ::ferry::testing::WaitUntil;

const FenceNotice kNotice{"ferry: region test is fenced", "write to region other"};

class PostgresFenceTest : public PgDatabaseTest<PostgresFenceTest> {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(PgDatabaseTest::SetUp());
    ASSERT_TRUE(Exec("CREATE TABLE items (id int PRIMARY KEY); CREATE SEQUENCE counter").ok());
    fence_ = std::make_unique<PostgresFence>(dsn());
  }
  // The backends of the fence's sessions in this test's database.
  std::vector<std::string> FenceSessions() {
    auto rows =
        cluster_->Query(absl::StrCat("SELECT pid::text FROM pg_stat_activity WHERE datname = '",
                                     db_, "' AND application_name = 'ferry_fence' ORDER BY pid"),
                        db_);
    std::vector<std::string> pids;
    if (!rows.ok()) {
      ADD_FAILURE() << rows.status();
      return pids;
    }
    for (const auto& row : *rows) pids.push_back(row[0].value_or(""));
    return pids;
  }
  int64_t Counter() {
    auto v = cluster_->QueryValue("SELECT last_value FROM counter", db_);
    EXPECT_TRUE(v.ok() && v->has_value()) << v.status();
    return v.ok() && v->has_value() ? std::stoll(**v) : -1;
  }

  std::unique_ptr<PostgresFence> fence_;
};

TEST_F(PostgresFenceTest, ARaisedFenceRefusesApplicationWritesWithItsNoticeUntilLifted) {
  ASSERT_TRUE(fence_->Raise(kNotice, /*end_sessions=*/false).ok());
  const absl::Status refused = Exec("INSERT INTO items VALUES (1)");
  EXPECT_FALSE(refused.ok());
  EXPECT_TRUE(absl::StrContains(refused.message(), kNotice.message)) << refused;
  ASSERT_TRUE(fence_->Lift().ok());
  EXPECT_TRUE(Exec("INSERT INTO items VALUES (1)").ok());
}

TEST_F(PostgresFenceTest, EveryCallUsesOneSessionThatIsKeptBetweenCalls) {
  ASSERT_TRUE(fence_->Lift().ok());
  const std::vector<std::string> first = FenceSessions();
  ASSERT_EQ(first.size(), 1u) << "the session is kept after the call";
  ASSERT_TRUE(fence_->Raise(kNotice, /*end_sessions=*/true).ok());
  EXPECT_EQ(FenceSessions(), first);
  ASSERT_TRUE(fence_->Mark("reverse-1-0").ok());
  EXPECT_EQ(FenceSessions(), first);
  ASSERT_TRUE(fence_->AdvanceSequences(10).ok());
  EXPECT_EQ(FenceSessions(), first);
  ASSERT_TRUE(fence_->Lift().ok());
  EXPECT_EQ(FenceSessions(), first);
  fence_.reset();
  EXPECT_TRUE(WaitUntil([&] { return FenceSessions().empty(); })) << "closed with the fence";
}

TEST_F(PostgresFenceTest, AnEndedSessionIsReplacedBeforeTheCallWhichRunsOnce) {
  ASSERT_TRUE(Exec("SELECT nextval('counter')").ok());
  ASSERT_TRUE(fence_->Lift().ok());
  const std::vector<std::string> before = FenceSessions();
  ASSERT_EQ(before.size(), 1u);
  ASSERT_TRUE(Exec(absl::StrCat("SELECT pg_terminate_backend(", before[0], ")")).ok());
  ASSERT_TRUE(WaitUntil([&] { return FenceSessions().empty(); }));

  const int64_t value = Counter();
  ASSERT_TRUE(fence_->AdvanceSequences(1000).ok());
  EXPECT_EQ(Counter(), value + 1000) << "advanced once, on the new session";
  const std::vector<std::string> after = FenceSessions();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_NE(after, before);
}

TEST_F(PostgresFenceTest, AfterTheDatabaseRestartsTheNextCallWorks) {
  ASSERT_TRUE(fence_->Raise(kNotice, /*end_sessions=*/false).ok());
  ASSERT_TRUE(cluster_->Restart(PgCluster::StopMode::kImmediate).ok());
  ASSERT_TRUE(fence_->Lift().ok());
  EXPECT_TRUE(Exec("INSERT INTO items VALUES (2)").ok());
  ASSERT_TRUE(fence_->Raise(kNotice, /*end_sessions=*/true).ok());
  const absl::Status refused = Exec("INSERT INTO items VALUES (3)");
  EXPECT_TRUE(absl::StrContains(refused.message(), kNotice.message)) << refused;
}

TEST_F(PostgresFenceTest, ACallThatFailsDropsTheSessionAndTheNextCallOpensAnother) {
  ASSERT_TRUE(fence_->Lift().ok());
  const std::vector<std::string> before = FenceSessions();
  ASSERT_EQ(before.size(), 1u);
  // A cycling sequence cannot be moved past its values: advance_sequences raises.
  ASSERT_TRUE(Exec("CREATE SEQUENCE small MAXVALUE 10 CYCLE").ok());
  const absl::Status failed = fence_->AdvanceSequences(1000);
  EXPECT_FALSE(failed.ok());
  EXPECT_TRUE(absl::StrContains(failed.message(), "cycles")) << failed;
  EXPECT_TRUE(WaitUntil([&] { return FenceSessions().empty(); })) << "dropped after the failure";

  ASSERT_TRUE(Exec("DROP SEQUENCE small").ok());
  ASSERT_TRUE(fence_->AdvanceSequences(1000).ok());
  const std::vector<std::string> after = FenceSessions();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_NE(after, before);
}

TEST_F(PostgresFenceTest, CallsFromSeveralThreadsTakeTurnsOnTheSession) {
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        const absl::Status s =
            (i + t) % 2 == 0 ? fence_->Raise(kNotice, /*end_sessions=*/false) : fence_->Lift();
        if (!s.ok()) {
          ADD_FAILURE() << s;
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(FenceSessions().size(), 1u);
}

}  // namespace
}  // namespace ferry::pg
