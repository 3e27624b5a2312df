// AssembleStatus on snapshots and a time the test chooses: role, state and fencing, RPO and lag
// seconds from the records' source times, stopped tables, and which error is shown.
#include "engine/daemon/status_report.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'000'000);

StatusSnapshot Base(Role role) {
  StatusSnapshot s;
  s.region = "east";
  s.version = "test";
  s.state = RegionRecord{.role = role, .epoch = 4};
  s.started = kNow - absl::Seconds(90);
  s.now = kNow;
  s.peer_region = "west";
  s.peer_address = "10.0.0.2:7401";
  return s;
}

TEST(StatusReportTest, PrimaryReportsRpoAndLagFromTheOldestPendingRecord) {
  StatusSnapshot s = Base(Role::kPrimary);
  s.outbound = {.first_seq = 1, .next_seq = 101, .appended_records = 100, .appended_bytes = 5000};
  PrimarySnapshot& p = s.primary.emplace();
  p.captured_position = 0x16B374D848;
  p.captured_position_text = "16/B374D848";
  p.source = {.connected = true, .retained_bytes = 4096, .upstream_name = "ferry_east"};
  p.shipper.connected = true;
  p.shipper.acked_next_seq = 91;    // 90 acknowledged
  p.shipper.shipped_next_seq = 96;  // 95 sent
  p.shipper.peer_applied_seq = 80;
  p.shipper.unacked_records = 10;
  p.shipper.unacked_bytes = 500;
  // Record 91 was committed 3 s ago, record 81 7 s ago.
  s.record_time_us = [](bool outbound, uint64_t seq) -> int64_t {
    EXPECT_TRUE(outbound);
    if (seq == 91) return absl::ToUnixMicros(kNow - absl::Seconds(3));
    if (seq == 81) return absl::ToUnixMicros(kNow - absl::Seconds(7));
    return 0;
  };
  const v1::StatusReply r = AssembleStatus(s);
  EXPECT_EQ(r.role(), "primary");
  EXPECT_EQ(r.state(), "replicating");
  EXPECT_FALSE(r.fenced());
  EXPECT_EQ(r.epoch(), 4u);
  EXPECT_EQ(r.uptime_seconds(), 90);
  EXPECT_EQ(r.positions().captured_source_lsn(), "16/B374D848");
  EXPECT_EQ(r.source().slot(), "ferry_east");
  EXPECT_EQ(r.source().slot_retained_wal_bytes(), 4096);
  EXPECT_EQ(r.positions().acked_seq(), 90u);
  EXPECT_EQ(r.positions().shipped_seq(), 95u);
  EXPECT_EQ(r.rpo().records(), 10u);
  EXPECT_DOUBLE_EQ(r.rpo().seconds(), 3.0);
  EXPECT_EQ(r.apply_lag().records(), 20u);  // 81..100 not applied at the peer
  EXPECT_DOUBLE_EQ(r.apply_lag().seconds(), 7.0);
  EXPECT_EQ(r.apply_lag().bytes(), 20u * 50);
  EXPECT_EQ(r.peer().address(), "10.0.0.2:7401");
  EXPECT_TRUE(r.peer().connected());
}

TEST(StatusReportTest, NothingPendingMeansZeroSecondsWhateverTheRecordsSay) {
  StatusSnapshot s = Base(Role::kPrimary);
  s.outbound = {.first_seq = 1, .next_seq = 11};
  PrimarySnapshot& p = s.primary.emplace();
  p.shipper.acked_next_seq = 11;
  p.shipper.peer_applied_seq = 10;
  s.record_time_us = [](bool, uint64_t) { return absl::ToUnixMicros(kNow - absl::Hours(1)); };
  const v1::StatusReply r = AssembleStatus(s);
  EXPECT_EQ(r.rpo().seconds(), 0);
  EXPECT_EQ(r.apply_lag().records(), 0u);
  EXPECT_EQ(r.apply_lag().seconds(), 0);
}

TEST(StatusReportTest, StandbyListsStoppedTablesAndIsNotClaimedFenced) {
  StatusSnapshot s = Base(Role::kStandby);
  s.inbound = {.first_seq = 1, .next_seq = 51, .appended_records = 50, .appended_bytes = 500};
  StandbySnapshot& sb = s.standby.emplace();
  sb.receiver.connected = true;
  sb.receiver.peer_address = "10.0.0.1:55000";
  sb.apply.applied_seq = 40;
  sb.apply.lag_records = 10;
  sb.apply.conflicts = 2;
  sb.apply.stopped_tables[TableName{"public", "t"}] = {.seq = 33, .reason = "column x missing"};
  s.record_time_us = [](bool outbound, uint64_t seq) -> int64_t {
    EXPECT_FALSE(outbound);
    return seq == 41 ? absl::ToUnixMicros(kNow - absl::Milliseconds(1500)) : 0;
  };
  const v1::StatusReply r = AssembleStatus(s);
  EXPECT_EQ(r.role(), "standby");
  EXPECT_FALSE(r.fenced());  // nothing fences a standby's database yet: status must not say so
  EXPECT_EQ(r.positions().applied_seq(), 40u);
  EXPECT_EQ(r.positions().inbound_first_seq(), 1u);
  EXPECT_DOUBLE_EQ(r.apply_lag().seconds(), 1.5);
  EXPECT_EQ(r.apply_lag().bytes(), 100u);
  EXPECT_EQ(r.conflicts(), 2u);
  ASSERT_EQ(r.tables_size(), 1);
  EXPECT_EQ(r.tables(0).table(), "public.t");
  EXPECT_EQ(r.tables(0).state(), "stopped");
  EXPECT_EQ(r.tables(0).stopped_at_seq(), 33u);
  EXPECT_EQ(r.peer().address(), "10.0.0.1:55000");
  EXPECT_EQ(r.source().slot_retained_wal_bytes(), -1);  // no source on a standby
}

TEST(StatusReportTest, StoppedTablesShowTheLogTheyKeepAndWhetherTheyNeedAResnapshot) {
  StatusSnapshot s = Base(Role::kStandby);
  StandbySnapshot& sb = s.standby.emplace();
  const TableName kept{"public", "kept"}, lost{"public", "lost"};
  sb.apply.stopped_tables[kept] = {.seq = 10, .reason = "conflict"};
  sb.apply.stopped_tables[lost] = {.seq = 5, .reason = "type mismatch"};
  sb.apply.stopped_table_logs[kept] = {.retained_bytes = 4096};
  sb.apply.stopped_table_logs[lost] = {
      .needs_resnapshot = true, .cause = "retention_bytes", .reason = "it held 9000000 bytes"};
  const v1::StatusReply r = AssembleStatus(s);
  ASSERT_EQ(r.tables_size(), 2);
  EXPECT_EQ(r.tables(0).table(), "public.kept");
  EXPECT_EQ(r.tables(0).state(), "stopped");
  EXPECT_EQ(r.tables(0).retained_log_bytes(), 4096u);
  EXPECT_EQ(r.tables(0).resnapshot_cause(), "");
  EXPECT_EQ(r.tables(1).table(), "public.lost");
  EXPECT_EQ(r.tables(1).state(), "needs_resnapshot");
  EXPECT_EQ(r.tables(1).reason(), "type mismatch");  // why it stopped stays visible
  EXPECT_EQ(r.tables(1).stopped_at_seq(), 5u);
  EXPECT_EQ(r.tables(1).retained_log_bytes(), 0u);
  EXPECT_EQ(r.tables(1).resnapshot_cause(), "retention_bytes");
  EXPECT_EQ(r.tables(1).resnapshot_reason(), "it held 9000000 bytes");
}

TEST(StatusReportTest, ALogThatRefusesAppendsIsTheLastErrorWhenNothingElseIs) {
  StatusSnapshot s = Base(Role::kStandby);
  s.standby.emplace();
  s.inbound.write_error = "IO error: No space left on device";
  EXPECT_EQ(AssembleStatus(s).last_error(),
            "inbound log refuses appends until it recovers: IO error: No space left on device");
  s.standby->apply.last_error = "target down";
  EXPECT_EQ(AssembleStatus(s).last_error(), "target down");
}

TEST(StatusReportTest, FencedPrimaryAndTransitionsAreShown) {
  StatusSnapshot s = Base(Role::kPrimary);
  s.state.phase = RegionPhase::kFenced;
  v1::StatusReply r = AssembleStatus(s);
  EXPECT_EQ(r.state(), "fenced");
  EXPECT_TRUE(r.fenced());
  s.state.phase = RegionPhase::kSwitching;
  s.state.operation = "role-4-1";
  s.pipeline_error = "cannot listen on 127.0.0.1:7401";
  r = AssembleStatus(s);
  EXPECT_EQ(r.state(), "switching");
  EXPECT_EQ(r.operation(), "role-4-1");
  EXPECT_EQ(r.last_error(), "cannot listen on 127.0.0.1:7401");
}

}  // namespace
}  // namespace ferry
