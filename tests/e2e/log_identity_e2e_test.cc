// Log identity end to end (issue #14, items 1 and 10): two Postgres 15 clusters, two ferryd
// processes. The oracle is the primary's rows: after each recovery the standby's rows equal them
// exactly, duplicates included (the events table has no key, so a change applied twice shows).
//
//   - A standby that lost its data_dir after the primary trimmed its log resumes from its
//     target's progress (before: refused for good, "the shipper's log starts at N but this
//     inbound log needs 1").
//   - Re-seeding after both data_dirs were re-created: the standby's target still holds the old
//     log's progress; apply refuses it (identity mismatch in status and metrics) instead of
//     skipping the new log, and `ferryctl reseed OLD_LOG_ID` makes it apply the new log
//     (before: nothing applied while status said caught up).
#include <gtest/gtest.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "tests/e2e/two_regions.h"
#include "tests/support/http_get.h"
#include "tests/support/read_file.h"

namespace ferry::testing {
namespace {

constexpr char kSchema[] = R"sql(
  CREATE TABLE kv (k int PRIMARY KEY, v text);
  CREATE TABLE events (n int, note text);
  INSERT INTO kv SELECT g, 'v' || g FROM generate_series(1, 50) g;
)sql";

const std::vector<std::string> kTables = {"kv", "events"};

// Acknowledged records are trimmed from the outbound log at once.
constexpr char kTrimAtOnce[] = "log:\n  retention_seconds: 0\n  retention_bytes: 0\n";

class LogIdentityE2ETest : public ::testing::Test {
 protected:
  void StartRegions() {
    TwoRegionsOptions options;
    options.schema_sql = kSchema;
    options.extra_yaml = kTrimAtOnce;
    auto regions = TwoRegions::Start(options);
    ASSERT_TRUE(regions.ok()) << regions.status();
    regions_ = std::move(*regions);
  }
  PgCluster& east() { return regions_->pg(Region::kEast); }
  PgCluster& west() { return regions_->pg(Region::kWest); }

  // Changes on east, a few transactions of each kind; `round` keeps keys apart.
  void Write(int round) {
    for (int t = 0; t < 5; ++t) {
      const int base = round * 1000 + t * 100;
      ASSERT_TRUE(east()
                      .Exec(absl::StrCat("BEGIN; INSERT INTO kv SELECT g, 'r", round,
                                         "' FROM generate_series(", base + 100, ", ", base + 150,
                                         ") g; UPDATE kv SET v = v || '+' WHERE k <= ", 10 + t,
                                         "; INSERT INTO events SELECT g, 'round ", round,
                                         "' FROM generate_series(1, 20) g; COMMIT"))
                      .ok());
    }
  }
  void TearDown() override {
    if (HasFailure() && regions_) std::cerr << regions_->BothLogTails(8000);
  }
  std::unique_ptr<TwoRegions> regions_;
};

// Issue #14 item 10.
TEST_F(LogIdentityE2ETest, AStandbyThatLostItsDataDirResumesFromItsTargetsProgress) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  ASSERT_NO_FATAL_FAILURE(Write(1));
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(120)).ok());
  // East trims what west acknowledged: its log no longer starts at 1.
  ASSERT_TRUE(regions_
                  ->PollStatus(Region::kEast,
                               [](const v1::StatusReply& s) {
                                 return s.positions().outbound_first_seq() > 1 &&
                                        s.positions().outbound_first_seq() ==
                                            s.positions().acked_seq() + 1;
                               })
                  .ok());
  ASSERT_TRUE(regions_->StopDaemon(Region::kWest).ok());
  std::filesystem::remove_all(regions_->data_dir(Region::kWest));
  ASSERT_NO_FATAL_FAILURE(Write(2));  // not acknowledged by anyone: east keeps it
  auto east_status = regions_->PollStatus(Region::kEast, [](const v1::StatusReply& s) {
    return s.rpo().records() > 0 && s.positions().outbound_first_seq() > 1;
  });
  ASSERT_TRUE(east_status.ok()) << east_status.status();
  const uint64_t first_available = east_status->positions().outbound_first_seq();

  ASSERT_TRUE(regions_->StartDaemon(Region::kWest).ok());
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(120)).ok())
      << ReadFile(regions_->log_path(Region::kWest));
  const std::string west_log = ReadFile(regions_->log_path(Region::kWest));
  EXPECT_NE(west_log.find("the new inbound log starts at sequence"), std::string::npos);
  ASSERT_NO_FATAL_FAILURE(Write(3));
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(120)).ok());
  auto west_status = regions_->Status(Region::kWest);
  ASSERT_TRUE(west_status.ok());
  EXPECT_FALSE(west_status->log_identity().mismatch());
  EXPECT_EQ(west_status->log_identity().inbound_log_id(),
            west_status->log_identity().target_log_id());
  EXPECT_GE(west_status->positions().applied_seq(), first_available);
}

// Issue #14 item 1, the documented re-seed (docs/operations.md).
TEST_F(LogIdentityE2ETest, ReseedAfterBothDataDirsWereRecreatedAppliesTheNewLog) {
  ASSERT_NO_FATAL_FAILURE(StartRegions());
  ASSERT_NO_FATAL_FAILURE(Write(1));
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(120)).ok());
  auto before = regions_->Status(Region::kWest);
  ASSERT_TRUE(before.ok());
  const std::string old_log = before->log_identity().inbound_log_id();
  ASSERT_EQ(old_log.size(), 32u);

  // Both regions' data_dirs are re-created (the recovery from a dropped slot); east starts a new
  // log with a new snapshot; west's target keeps the old log's progress (origins are
  // cluster-wide).
  ASSERT_TRUE(regions_->StopDaemon(Region::kEast).ok());
  ASSERT_TRUE(regions_->StopDaemon(Region::kWest).ok());
  std::filesystem::remove_all(regions_->data_dir(Region::kEast));
  std::filesystem::remove_all(regions_->data_dir(Region::kWest));
  ASSERT_TRUE(east().Exec("SELECT pg_drop_replication_slot('ferry_east')").ok());
  ASSERT_NO_FATAL_FAILURE(Write(2));
  ASSERT_TRUE(regions_->StartDaemon(Region::kWest).ok());
  ASSERT_TRUE(regions_->StartDaemon(Region::kEast).ok());

  auto refused = regions_->PollStatus(
      Region::kWest, [](const v1::StatusReply& s) { return s.log_identity().mismatch(); });
  ASSERT_TRUE(refused.ok()) << refused.status();
  const std::string new_log = refused->log_identity().inbound_log_id();
  EXPECT_NE(new_log, old_log);
  EXPECT_EQ(refused->log_identity().target_log_id(), old_log);
  EXPECT_GT(refused->log_identity().target_applied_seq(), 0u);
  EXPECT_EQ(refused->positions().applied_seq(), 0u) << "status claims the old log's progress";
  EXPECT_NE(refused->last_error().find("identity mismatch"), std::string::npos);
  EXPECT_NE(refused->last_error().find("ferryctl reseed " + old_log), std::string::npos);
  auto metrics =
      HttpGet(absl::StrCat("http://", regions_->metrics_address(Region::kWest), "/metrics"));
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_NE(metrics->body.find("ferry_apply_identity_mismatch 1"), std::string::npos);
  auto human = regions_->Ctl(Region::kWest, {"status"});
  ASSERT_TRUE(human.ok());
  EXPECT_NE(human->output.find("IDENTITY MISMATCH"), std::string::npos) << human->output;
  // Nothing of the new log reached west: round 2 is missing there.
  auto west_events = west().QueryValue("SELECT count(*) FROM events WHERE note = 'round 2'");
  ASSERT_TRUE(west_events.ok());
  EXPECT_EQ(west_events->value_or(""), "0");

  // Wrong or malformed ids, and the new log's own id, are refused; nothing changes.
  for (const std::string& bad :
       {std::string("nonsense"), new_log, std::string("0123456789abcdef0123456789abcdef")}) {
    auto ctl = regions_->Ctl(Region::kWest, {"reseed", bad});
    ASSERT_TRUE(ctl.ok());
    EXPECT_EQ(ctl->exit_code, 1) << bad << ": " << ctl->output;
  }
  // The documented step: empty the target, then re-seed naming the old log. The first try is
  // SIGKILLed part-way (one origin dropped, the others not: kill point reseed.origin_dropped);
  // after the restart the region is either still refusing the old progress (then the re-seed is
  // simply run again) or counts nothing any more; either way it converges, nothing skipped.
  ASSERT_TRUE(west().Exec("DROP TABLE kv, events").ok());
  ASSERT_TRUE(regions_->StopDaemon(Region::kWest).ok());
  ASSERT_TRUE(
      regions_->StartDaemon(Region::kWest, {"FERRY_KILL_POINT=reseed.origin_dropped"}).ok());
  ASSERT_TRUE(regions_
                  ->PollStatus(Region::kWest,
                               [](const v1::StatusReply& s) { return s.log_identity().mismatch(); })
                  .ok());
  auto killed = regions_->Ctl(Region::kWest, {"reseed", old_log});
  ASSERT_TRUE(killed.ok());
  EXPECT_EQ(killed->exit_code, 1) << killed->output;
  ASSERT_TRUE(regions_->WaitForExit(Region::kWest));
  EXPECT_NE(ReadFile(regions_->log_path(Region::kWest)).find("kill point reseed.origin_dropped"),
            std::string::npos);
  ASSERT_TRUE(regions_->StartDaemon(Region::kWest).ok());
  auto settled = regions_->PollStatus(Region::kWest, [](const v1::StatusReply& s) {
    return s.log_identity().mismatch() || s.positions().applied_seq() > 0;
  });
  ASSERT_TRUE(settled.ok()) << settled.status();
  if (settled->log_identity().mismatch()) {
    auto reseed = regions_->Ctl(Region::kWest, {"reseed", old_log, "--json"});
    ASSERT_TRUE(reseed.ok());
    EXPECT_EQ(reseed->exit_code, 0) << reseed->output;
    EXPECT_NE(reseed->output.find("\"inbound_log_id\": \"" + new_log + "\""), std::string::npos)
        << reseed->output;
  }
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(120)).ok());
  ASSERT_NO_FATAL_FAILURE(Write(3));
  ASSERT_TRUE(regions_->WaitForTablesEqual(kTables, absl::Seconds(120)).ok());
  auto after = regions_->Status(Region::kWest);
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->log_identity().mismatch());
  EXPECT_EQ(after->log_identity().target_log_id(), new_log);
  // Running it again is refused: the progress now counts the log being applied.
  auto again = regions_->Ctl(Region::kWest, {"reseed", old_log});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->exit_code, 1) << again->output;
}

}  // namespace
}  // namespace ferry::testing
