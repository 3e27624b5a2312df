// The series Metrics derives from a status reply: stopped tables, the inbound log each keeps,
// and which need a re-snapshot and why (the operator contract in docs/operations.md).
#include "engine/metrics/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ferry {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsTest, StoppedTablesAndTablesThatNeedAResnapshot) {
  v1::StatusReply reply;
  reply.set_region("west");
  reply.set_role("standby");
  auto* kept = reply.add_tables();
  kept->set_table("public.kept");
  kept->set_state("stopped");
  kept->set_retained_log_bytes(4096);
  auto* lost = reply.add_tables();
  lost->set_table("public.lost");
  lost->set_state("needs_resnapshot");
  lost->set_resnapshot_cause("retention_bytes");
  auto metrics = Metrics::Create([&] { return reply; }, [] { return EngineCounters{}; });
  const std::string text = metrics->Scrape();
  EXPECT_THAT(text, HasSubstr("ferry_table_stopped{table=\"public.kept\"} 1"));
  EXPECT_THAT(text, HasSubstr("ferry_table_stopped{table=\"public.lost\"} 1"));
  EXPECT_THAT(text, HasSubstr("ferry_tables_stopped 2"));
  EXPECT_THAT(text, HasSubstr("ferry_table_retained_log_bytes{table=\"public.kept\"} 4096"));
  EXPECT_THAT(text, HasSubstr("ferry_table_retained_log_bytes{table=\"public.lost\"} 0"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "ferry_table_needs_resnapshot{table=\"public.lost\",reason=\"retention_bytes\"} 1"));
  EXPECT_THAT(text, Not(HasSubstr("ferry_table_needs_resnapshot{table=\"public.kept\"")));
  EXPECT_THAT(text, HasSubstr("ferry_tables_needing_resnapshot 1"));
}

TEST(MetricsTest, FamiliesAreDeclaredWithoutStoppedTables) {
  v1::StatusReply reply;
  reply.set_role("standby");
  auto metrics = Metrics::Create([&] { return reply; }, [] { return EngineCounters{}; });
  const std::string text = metrics->Scrape();
  EXPECT_THAT(text, HasSubstr("# TYPE ferry_table_needs_resnapshot gauge"));
  EXPECT_THAT(text, HasSubstr("# TYPE ferry_table_retained_log_bytes gauge"));
  EXPECT_THAT(text, HasSubstr("ferry_tables_needing_resnapshot 0"));
}

// Issue #20: every listed table has its series from the start, so a panel or an alert on
// ferry_table_stopped sees 0 before anything stops.
TEST(MetricsTest, EveryTableHasItsSeriesBeforeAnythingStops) {
  v1::StatusReply reply;
  reply.set_role("standby");
  auto* t = reply.add_tables();
  t->set_table("public.orders");
  t->set_state("replicating");
  t->set_changes_applied(42);
  t->set_changes_captured(99);  // a primary's figure: not the standby's series
  t->set_lag_seconds(1.5);
  t->set_rows_copied(10);
  t->set_last_commit_time_us(1'700'000'000'250'000);
  auto metrics = Metrics::Create([&] { return reply; }, [] { return EngineCounters{}; });
  std::string text = metrics->Scrape();
  EXPECT_THAT(text, HasSubstr("ferry_table_stopped{table=\"public.orders\"} 0"));
  EXPECT_THAT(text, HasSubstr("ferry_table_snapshotting{table=\"public.orders\"} 0"));
  EXPECT_THAT(text, HasSubstr("ferry_table_changes_total{table=\"public.orders\"} 42"));
  EXPECT_THAT(text, HasSubstr("ferry_table_lag_seconds{table=\"public.orders\"} 1.5"));
  EXPECT_THAT(text, HasSubstr("ferry_table_rows_copied{table=\"public.orders\"} 10"));
  EXPECT_THAT(text, HasSubstr("ferry_table_last_commit_timestamp_seconds{table=\"public.orders\"} "
                              "1700000000.25"));
  EXPECT_THAT(text, HasSubstr("ferry_tables_stopped 0"));
  reply.set_role("primary");
  t->set_state("snapshotting");
  text = metrics->Scrape();
  EXPECT_THAT(text, HasSubstr("ferry_table_changes_total{table=\"public.orders\"} 99"));
  EXPECT_THAT(text, HasSubstr("ferry_table_snapshotting{table=\"public.orders\"} 1"));
}

TEST(MetricsTest, PerTableFamiliesAreDeclaredWithoutTables) {
  v1::StatusReply reply;
  auto metrics = Metrics::Create([&] { return reply; }, [] { return EngineCounters{}; });
  const std::string text = metrics->Scrape();
  for (const char* family : {"ferry_table_snapshotting gauge", "ferry_table_changes_total counter",
                             "ferry_table_lag_seconds gauge", "ferry_table_rows_copied gauge",
                             "ferry_table_last_commit_timestamp_seconds gauge"}) {
    EXPECT_THAT(text, HasSubstr(std::string("# TYPE ") + family));
  }
}

// DR at a glance: role, fence, divergence, the last change and verify, the quarantine.
TEST(MetricsTest, DrAtAGlance) {
  v1::StatusReply reply;
  reply.set_role("primary");
  reply.set_state("replicating");
  reply.set_epoch(5);
  auto metrics = Metrics::Create([&] { return reply; }, [] { return EngineCounters{}; });
  std::string text = metrics->Scrape();
  EXPECT_THAT(text, HasSubstr("ferry_writable_primary 1"));
  EXPECT_THAT(text, HasSubstr("ferry_fenced 0"));
  EXPECT_THAT(text, HasSubstr("ferry_diverged 0"));
  EXPECT_THAT(text, HasSubstr("ferry_quarantine_pending 0"));
  EXPECT_THAT(text, HasSubstr("ferry_last_change_timestamp_seconds 0"));
  EXPECT_THAT(text, HasSubstr("ferry_verify_last_timestamp_seconds 0"));
  EXPECT_THAT(text, HasSubstr("ferry_verify_last_equal 0"));
  // A primary that heard of a higher epoch: still "primary", fenced, not writable.
  reply.set_fenced(true);
  reply.set_state("diverged");
  reply.set_quarantine_pending(3);
  reply.mutable_last_change()->set_kind("promote");
  reply.mutable_last_change()->set_finished_at_us(1'700'000'000'000'000);
  reply.mutable_last_change()->set_duration_seconds(2.5);
  reply.mutable_last_change()->mutable_loss()->set_records(12);
  reply.mutable_last_verify()->set_result("repaired");
  reply.mutable_last_verify()->set_differences(6);
  reply.mutable_last_verify()->set_remaining(0);
  reply.mutable_last_verify()->set_finished_at_us(1'700'000'100'000'000);
  text = metrics->Scrape();
  EXPECT_THAT(text, HasSubstr("ferry_writable_primary 0"));
  EXPECT_THAT(text, HasSubstr("ferry_fenced 1"));
  EXPECT_THAT(text, HasSubstr("ferry_diverged 1"));
  EXPECT_THAT(text, HasSubstr("ferry_quarantine_pending 3"));
  EXPECT_THAT(text, HasSubstr("ferry_last_change_timestamp_seconds 1700000000"));
  EXPECT_THAT(text, HasSubstr("ferry_last_change_duration_seconds 2.5"));
  EXPECT_THAT(text, HasSubstr("ferry_last_change_loss_records 12"));
  EXPECT_THAT(text, HasSubstr("ferry_verify_last_timestamp_seconds 1700000100"));
  EXPECT_THAT(text, HasSubstr("ferry_verify_last_equal 1"));        // repaired: equal now
  EXPECT_THAT(text, HasSubstr("ferry_verify_last_differences 0"));  // what is left
}

// The object path's series: present only when the region has one, fed by status and by the
// event pipeline's observations.
TEST(MetricsTest, ObjectPathSeries) {
  v1::StatusReply reply;
  reply.set_region("west");
  auto metrics = Metrics::Create([&] { return reply; }, [] { return EngineCounters{}; });
  EXPECT_THAT(metrics->Scrape(), Not(HasSubstr("ferry_objects_records_pending")));
  reply.mutable_objects()->set_mode("apply");
  reply.mutable_objects()->set_events_applied(7);
  reply.mutable_objects()->set_records_pending(3);
  metrics->ObserveObjectLatency(0.2);
  metrics->CountObjectError("unavailable");
  const std::string text = metrics->Scrape();
  EXPECT_THAT(text, HasSubstr("ferry_objects_events_applied_total 7"));
  EXPECT_THAT(text, HasSubstr("ferry_objects_records_pending 3"));
  EXPECT_THAT(text, HasSubstr("ferry_objects_apply_latency_seconds_count 1"));
  EXPECT_THAT(text, HasSubstr("ferry_objects_errors_total{kind=\"unavailable\"} 1"));
}

}  // namespace
}  // namespace ferry
