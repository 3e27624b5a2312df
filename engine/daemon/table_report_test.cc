// AssembleTables (through AssembleStatus): every table a region knows is listed with its state,
// counts and lag (issue #20); a primary's snapshot progress and ETA; a standby's stops.
#include <gtest/gtest.h>

#include "engine/daemon/status_report.h"

namespace ferry {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(2'000'000);

StatusSnapshot Base(Role role) {
  StatusSnapshot s;
  s.region = "east";
  s.state = RegionRecord{.role = role, .epoch = 2};
  s.started = kNow - absl::Minutes(5);
  s.now = kNow;
  return s;
}

const v1::TableState* Find(const v1::StatusReply& r, const std::string& name) {
  for (const auto& t : r.tables()) {
    if (t.table() == name) return &t;
  }
  return nullptr;
}

TEST(TableReportTest, StandbyListsEveryAppliedTableAndItsStopsWithTheirOwnLag) {
  StatusSnapshot s = Base(Role::kStandby);
  s.inbound = {.first_seq = 1, .next_seq = 51};
  StandbySnapshot& sb = s.standby.emplace();
  sb.apply.applied_seq = 40;
  sb.apply.lag_records = 10;
  sb.apply.stopped_tables[TableName{"public", "t"}] = {.seq = 33, .reason = "column x missing"};
  const int64_t committed = absl::ToUnixMicros(kNow - absl::Seconds(4));
  s.table_counts["public.a"] = {.changes = 7, .last_commit_us = committed};
  s.table_counts["public.b"] = {.changes = 0, .snapshot_rows = 12};
  // Seq 33 (the stop) committed 9 s ago; seq 41 (the oldest not applied) 2 s ago.
  s.record_time_us = [](bool outbound, uint64_t seq) -> int64_t {
    EXPECT_FALSE(outbound);
    if (seq == 33) return absl::ToUnixMicros(kNow - absl::Seconds(9));
    if (seq == 41) return absl::ToUnixMicros(kNow - absl::Seconds(2));
    return 0;
  };
  const v1::StatusReply r = AssembleStatus(s);
  ASSERT_EQ(r.tables_size(), 3);  // by name: a, b, t
  EXPECT_EQ(r.tables(0).table(), "public.a");
  EXPECT_EQ(r.tables(2).table(), "public.t");
  const v1::TableState* a = Find(r, "public.a");
  EXPECT_EQ(a->state(), "replicating");
  EXPECT_EQ(a->changes_applied(), 7u);
  EXPECT_EQ(a->changes_captured(), 0u);
  EXPECT_EQ(a->last_commit_time_us(), committed);
  EXPECT_DOUBLE_EQ(a->lag_seconds(), 2.0);  // not the stopped table's 9 s
  EXPECT_EQ(a->rows_estimated(), -1);
  EXPECT_EQ(Find(r, "public.b")->rows_copied(), 12u);
  const v1::TableState* t = Find(r, "public.t");
  EXPECT_EQ(t->state(), "stopped");
  EXPECT_EQ(t->reason(), "column x missing");
  EXPECT_DOUBLE_EQ(t->lag_seconds(), 9.0);
  EXPECT_DOUBLE_EQ(r.apply_lag().seconds(), 9.0);  // the region's lag counts the stop
}

TEST(TableReportTest, CaughtUpStandbyTablesHaveNoLag) {
  StatusSnapshot s = Base(Role::kStandby);
  s.inbound = {.first_seq = 1, .next_seq = 11};
  s.standby.emplace().apply.applied_seq = 10;
  s.table_counts["public.a"] = {.changes = 1};
  s.record_time_us = [](bool, uint64_t) { return absl::ToUnixMicros(kNow - absl::Hours(1)); };
  const v1::StatusReply r = AssembleStatus(s);
  ASSERT_EQ(r.tables_size(), 1);
  EXPECT_EQ(r.tables(0).lag_seconds(), 0);
}

TEST(TableReportTest, PrimaryListsTheSourceTablesFromTheStartWithSnapshotProgress) {
  StatusSnapshot s = Base(Role::kPrimary);
  s.outbound = {.first_seq = 1, .next_seq = 1};
  PrimarySnapshot& p = s.primary.emplace();
  p.source.tables = {"public.big", "public.idle", "public.small"};
  p.source.snapshot_in_progress = true;
  p.source.snapshot_tables = {
      {.table = "public.big",
       .rows_copied = 250,
       .rows_estimated = 1000,
       .started = kNow - absl::Seconds(10)},
      {.table = "public.small", .rows_copied = 5, .rows_estimated = 5, .done = true},
      {.table = "public.idle", .rows_estimated = -1}};
  s.table_counts["public.small"] = {.changes = 3, .snapshot_rows = 5};
  // The standby stopped public.small: that is its stop, shown in peer.stopped_tables.
  p.shipper.peer_apply.known = true;
  p.shipper.peer_apply.stopped_tables.push_back({.table = "public.small", .seq = 1});
  const v1::StatusReply r = AssembleStatus(s);
  ASSERT_EQ(r.tables_size(), 3);
  const v1::TableState* big = Find(r, "public.big");
  EXPECT_EQ(big->state(), "snapshotting");
  EXPECT_EQ(big->rows_copied(), 250u);
  EXPECT_EQ(big->rows_estimated(), 1000);
  EXPECT_DOUBLE_EQ(big->eta_seconds(), 30.0);  // 750 rows left at 25 rows/s
  const v1::TableState* idle = Find(r, "public.idle");
  EXPECT_EQ(idle->state(), "snapshotting");
  EXPECT_EQ(idle->eta_seconds(), -1);  // not started, no estimate
  const v1::TableState* small = Find(r, "public.small");
  EXPECT_EQ(small->state(), "replicating");  // copied; the standby's stop is the standby's
  EXPECT_EQ(small->changes_captured(), 3u);
  EXPECT_EQ(small->rows_copied(), 5u);
  ASSERT_EQ(r.peer().stopped_tables_size(), 1);
}

TEST(TableReportTest, SnapshotTablesAreNotSnapshottingOnceTheSnapshotEnded) {
  StatusSnapshot s = Base(Role::kPrimary);
  PrimarySnapshot& p = s.primary.emplace();
  p.source.snapshot_in_progress = false;  // the copy stopped (failed) with a table unfinished
  p.source.snapshot_tables = {{.table = "public.big", .rows_copied = 10, .rows_estimated = 100}};
  const v1::StatusReply r = AssembleStatus(s);
  ASSERT_EQ(r.tables_size(), 1);
  EXPECT_EQ(r.tables(0).state(), "replicating");
  EXPECT_EQ(r.tables(0).eta_seconds(), -1);
}

TEST(TableReportTest, EtaIsZeroWhenTheEstimateIsReached) {
  StatusSnapshot s = Base(Role::kPrimary);
  PrimarySnapshot& p = s.primary.emplace();
  p.source.snapshot_in_progress = true;
  // reltuples is an estimate: a copy may pass it.
  p.source.snapshot_tables = {{.table = "public.t",
                               .rows_copied = 120,
                               .rows_estimated = 100,
                               .started = kNow - absl::Seconds(1)}};
  const v1::StatusReply r = AssembleStatus(s);
  ASSERT_EQ(r.tables_size(), 1);
  EXPECT_EQ(r.tables(0).eta_seconds(), 0);
}

}  // namespace
}  // namespace ferry
