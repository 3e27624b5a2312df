// AssembleStatus on snapshots and a time the test chooses: role, state and fencing, RPO and lag
// seconds from the records' source times, stopped tables, and which error is shown.
#include "engine/daemon/status_report.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "engine/daemon/standby_pipeline.h"

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
  // Record k of the outbound log holds k bytes: bytes are summed, never averaged.
  s.bytes_from = [](bool outbound, uint64_t seq) -> uint64_t {
    EXPECT_TRUE(outbound);
    uint64_t sum = 0;
    for (uint64_t k = seq; k <= 100; ++k) sum += k;
    return sum;
  };
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
  EXPECT_EQ(r.apply_lag().bytes(), (81u + 100u) * 20u / 2);  // records 81..100, exact
  EXPECT_EQ(r.rpo().bytes(), 500u);
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
    return seq == 33 ? absl::ToUnixMicros(kNow - absl::Milliseconds(1500)) : 0;
  };
  s.bytes_from = [](bool outbound, uint64_t seq) -> uint64_t {
    EXPECT_FALSE(outbound);
    return (51 - seq) * 7;  // 7 bytes a record
  };
  const v1::StatusReply r = AssembleStatus(s);
  EXPECT_EQ(r.role(), "standby");
  EXPECT_FALSE(r.fenced());  // nothing fences a standby's database yet: status must not say so
  EXPECT_EQ(r.positions().applied_seq(), 40u);
  // Issue #14: apply lag counts the stopped table: from its first change (33), not from 41.
  EXPECT_EQ(r.apply_lag().records(), 18u);
  EXPECT_EQ(r.apply_lag().stopped_tables(), 1u);
  EXPECT_EQ(r.positions().inbound_first_seq(), 1u);
  EXPECT_DOUBLE_EQ(r.apply_lag().seconds(), 1.5);
  EXPECT_EQ(r.apply_lag().bytes(), 18u * 7);
  EXPECT_EQ(r.conflicts(), 2u);
  ASSERT_EQ(r.tables_size(), 1);
  EXPECT_EQ(r.tables(0).table(), "public.t");
  EXPECT_EQ(r.tables(0).state(), "stopped");
  EXPECT_EQ(r.tables(0).stopped_at_seq(), 33u);
  EXPECT_EQ(r.peer().address(), "10.0.0.1:55000");
  EXPECT_EQ(r.source().slot_retained_wal_bytes(), -1);  // no source on a standby
}

// Issue #14: what the source committed and capture has not taken is shown beside the RPO,
// which keeps its meaning; the source's warnings (large objects, keyless tables) are shown.
TEST(StatusReportTest, PrimaryShowsUncapturedBesideTheRpoAndTheSourceWarnings) {
  StatusSnapshot s = Base(Role::kPrimary);
  s.outbound = {.first_seq = 1, .next_seq = 11};
  PrimarySnapshot& p = s.primary.emplace();
  p.shipper.acked_next_seq = 11;
  p.shipper.peer_applied_seq = 10;
  p.uncaptured = {.known = true,
                  .bytes = 150 << 20,
                  .behind = absl::Seconds(12),
                  .upstream_position = "0/9A000000",
                  .measured_at = kNow - absl::Milliseconds(500)};
  p.source.unreplicated_objects = 3;
  p.source.blocked_tables = {"public.nopk"};
  p.source.warnings = {"table public.nopk has no primary key", "3 large object(s) ..."};
  v1::StatusReply r = AssembleStatus(s);
  EXPECT_EQ(r.rpo().records(), 0u);  // the RPO is what the peer lacks of what was captured
  EXPECT_EQ(r.rpo().bytes(), 0u);
  EXPECT_TRUE(r.uncaptured().known());
  EXPECT_EQ(r.uncaptured().bytes(), uint64_t{150} << 20);
  EXPECT_DOUBLE_EQ(r.uncaptured().seconds(), 12.0);
  EXPECT_EQ(r.uncaptured().source_position(), "0/9A000000");
  EXPECT_DOUBLE_EQ(r.uncaptured().measured_seconds_ago(), 0.5);
  EXPECT_EQ(r.source().unreplicated_objects(), 3);
  ASSERT_EQ(r.source().blocked_tables_size(), 1);
  EXPECT_EQ(r.source().blocked_tables(0), "public.nopk");
  EXPECT_EQ(r.source().warnings_size(), 2);

  p.uncaptured = {};  // never measured: said so, not shown as 0
  r = AssembleStatus(s);
  EXPECT_FALSE(r.uncaptured().known());
  EXPECT_EQ(r.uncaptured().source_position(), "");
}

// Issue #14: the primary's status shows the standby's trouble, carried back in its acks: the
// stopped tables (and the apply lag counts them), conflicts, apply's error, and a standby that
// applied beyond the end of this log.
TEST(StatusReportTest, PrimaryShowsTheStandbysStoppedTablesConflictsAndErrors) {
  StatusSnapshot s = Base(Role::kPrimary);
  s.outbound = {.first_seq = 10, .next_seq = 101};
  PrimarySnapshot& p = s.primary.emplace();
  p.shipper.acked_next_seq = 101;
  p.shipper.peer_applied_seq = 100;  // everything applied, but for the stopped table
  p.shipper.peer_apply.known = true;
  p.shipper.peer_apply.stopped_tables = {{"public.t", "column x missing", 60},
                                         {"public.u", "conflict", 3}};  // 3: below the log
  p.shipper.peer_apply.stopped_tables_total = 2;
  p.shipper.peer_apply.conflicts = 7;
  p.shipper.peer_apply.last_error = "target down";
  s.bytes_from = [](bool, uint64_t seq) -> uint64_t { return (101 - seq) * 10; };
  v1::StatusReply r = AssembleStatus(s);
  EXPECT_TRUE(r.peer().apply_state_known());
  ASSERT_EQ(r.peer().stopped_tables_size(), 2);
  EXPECT_EQ(r.peer().stopped_tables(0).table(), "public.t");
  EXPECT_EQ(r.peer().stopped_tables(0).reason(), "column x missing");
  EXPECT_EQ(r.peer().stopped_tables(0).stopped_at_seq(), 60u);
  EXPECT_EQ(r.peer().conflicts(), 7u);
  EXPECT_EQ(r.peer().apply_error(), "target down");
  EXPECT_EQ(r.tables_size(), 0);  // this region's own tables: none stopped
  EXPECT_EQ(r.conflicts(), 0u);
  // The lag counts from the earliest stopped change, clamped to this log's first record.
  EXPECT_EQ(r.apply_lag().records(), 91u);
  EXPECT_EQ(r.apply_lag().bytes(), 910u);
  EXPECT_EQ(r.apply_lag().stopped_tables(), 2u);
  EXPECT_FALSE(r.peer().applied_beyond_log_end());

  p.shipper.peer_apply = {};
  p.shipper.peer_applied_seq = 150;  // beyond next_seq 101
  r = AssembleStatus(s);
  EXPECT_TRUE(r.peer().applied_beyond_log_end());
  EXPECT_FALSE(r.peer().apply_state_known());
  EXPECT_EQ(r.apply_lag().records(), 0u);
}

// What a standby sends of its apply state stays small and valid UTF-8 whatever apply holds:
// 100 tables at most (the total counted), every text cut at a character boundary.
TEST(StatusReportTest, StandbySendsABoundedApplyState) {
  ApplyStatus a;
  std::string reason;
  for (int i = 0; i < 1700; ++i) reason.append("\xe2\x82\xac", 3);  // €, 3 bytes
  for (int i = 0; i < 250; ++i) {
    a.stopped_tables[TableName{"public", absl::StrCat("t", i)}] = {.seq = 10u + i,
                                                                   .reason = reason};
  }
  a.conflicts = 9;
  a.last_error = reason;
  const v1::PeerApplyState state = PeerApplyStateOf(a);
  EXPECT_EQ(state.stopped_tables_size(), 100);
  EXPECT_EQ(state.stopped_tables_total(), 250u);
  EXPECT_EQ(state.conflicts(), 9u);
  EXPECT_LE(state.last_error().size(), replication::PeerApplyReport::kMaxText + 3);
  // 1024 is not a multiple of 3: a byte cut would have split a character.
  EXPECT_EQ((state.last_error().size() - 3) % 3, 0u);
  v1::PeerApplyState parsed;
  EXPECT_TRUE(parsed.ParseFromString(state.SerializeAsString()));  // valid UTF-8 parses
}

// Issue #14: a standby whose target counts another upstream log says so, with both ids, and
// does not claim the other log's progress as its own.
TEST(StatusReportTest, StandbyShowsItsLogIdentityAndAMismatch) {
  StatusSnapshot s = Base(Role::kStandby);
  s.inbound = {.first_seq = 1, .next_seq = 501};
  StandbySnapshot& sb = s.standby.emplace();
  sb.apply.log_id = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
  sb.apply.applied_seq = 120;
  v1::StatusReply r = AssembleStatus(s);
  EXPECT_FALSE(r.log_identity().mismatch());
  EXPECT_EQ(r.log_identity().inbound_log_id(), sb.apply.log_id);
  EXPECT_EQ(r.log_identity().target_log_id(), sb.apply.log_id);
  EXPECT_EQ(r.log_identity().target_applied_seq(), 120u);
  sb.apply = ApplyStatus{};
  sb.apply.failed = true;
  sb.apply.log_id = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
  sb.apply.identity_mismatch = true;
  sb.apply.target_log_id = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  sb.apply.target_applied_seq = 28276;
  sb.apply.last_error = "apply: identity mismatch: ...";
  r = AssembleStatus(s);
  EXPECT_TRUE(r.log_identity().mismatch());
  EXPECT_EQ(r.log_identity().target_log_id(), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  EXPECT_EQ(r.log_identity().target_applied_seq(), 28276u);
  EXPECT_EQ(r.positions().applied_seq(), 0u);
  EXPECT_EQ(r.last_error(), "apply: identity mismatch: ...");
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
