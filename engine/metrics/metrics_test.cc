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
