// The status page: what an operator needs at a glance is on it (both regions, RPO, lag, every
// table, the DR events), every outside text is escaped, and two writable primaries are flagged.
#include "engine/daemon/status_page.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ferry {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

v1::StatusReply Primary() {
  v1::StatusReply s;
  s.set_region("east");
  s.set_role("primary");
  s.set_epoch(3);
  s.set_state("replicating");
  s.set_version("0.test");
  s.mutable_rpo()->set_records(4);
  s.mutable_rpo()->set_seconds(1.25);
  s.mutable_apply_lag()->set_records(9);
  s.mutable_apply_lag()->set_seconds(2.5);
  v1::TableState* t = s.add_tables();
  t->set_table("public.orders");
  t->set_state("snapshotting");
  t->set_rows_copied(250);
  t->set_rows_estimated(1000);
  t->set_eta_seconds(30);
  t->set_lag_seconds(2.5);
  v1::DrEvent* c = s.mutable_last_change();
  c->set_kind("promote");
  c->set_operation("promote-3-0000abcd");
  c->set_finished_at_us(absl::ToUnixMicros(kNow - absl::Minutes(1)));
  c->set_duration_seconds(1.5);
  c->set_epoch(3);
  c->set_new_primary("east");
  c->mutable_loss()->set_known(true);
  c->mutable_loss()->set_records(17);
  s.mutable_last_verify()->set_result("different");
  s.mutable_last_verify()->set_differences(2);
  s.mutable_last_verify()->set_remaining(2);
  s.set_quarantine_pending(5);
  return s;
}

v1::RegionInfo Peer(const std::string& role, const std::string& state) {
  v1::RegionInfo p;
  p.set_region("west");
  p.set_role(role);
  p.set_epoch(2);
  p.set_state(state);
  return p;
}

TEST(StatusPageTest, ShowsBothRegionsRpoLagTablesAndDrEvents) {
  const std::string html = RenderStatusPage(Primary(), Peer("standby", "replicating"), kNow);
  EXPECT_THAT(html, HasSubstr("<!DOCTYPE html>"));
  EXPECT_THAT(html, HasSubstr("<tr id=\"region-self\"><td>east (this one)</td><td>primary</td>"
                              "<td>3</td><td>replicating</td>"));
  EXPECT_THAT(html, HasSubstr("<tr id=\"region-peer\"><td>west</td><td>standby</td><td>2</td>"));
  EXPECT_THAT(html, HasSubstr("4 records, 0 bytes, 1.2 s"));  // RPO
  EXPECT_THAT(html, HasSubstr("9 records, 0 bytes, 2.5 s"));  // lag
  EXPECT_THAT(html, HasSubstr("<tr id=\"table-public.orders\"><td>public.orders</td>"
                              "<td>snapshotting</td><td>0</td><td>250 of ~1000</td>"
                              "<td>30.0 s</td>"));
  EXPECT_THAT(html, HasSubstr("promote promote-3-0000abcd at 2027-01-15 07:59:00 UTC, took "
                              "1.5 s, east primary under epoch 3, loss bound 17 records"));
  EXPECT_THAT(html, HasSubstr("different at "));
  EXPECT_THAT(html, HasSubstr("2 differences found, 2 remaining"));
  EXPECT_THAT(html, HasSubstr("<td>quarantine pending</td><td>5</td>"));
  EXPECT_THAT(html, Not(HasSubstr("two-primaries")));
  EXPECT_THAT(html, Not(HasSubstr("<script")));  // nothing to download or run
}

TEST(StatusPageTest, TwoWritablePrimariesAreFlagged) {
  EXPECT_THAT(RenderStatusPage(Primary(), Peer("primary", "replicating"), kNow),
              HasSubstr("id=\"two-primaries\">Both regions claim to be primary (epochs 3 and 2)"));
  // A primary that learned of a higher epoch is fenced: not a second writable primary.
  EXPECT_THAT(RenderStatusPage(Primary(), Peer("primary", "fenced"), kNow),
              Not(HasSubstr("two-primaries")));
  // Nor one that fenced itself (cut off from its peer) while still replicating; the peer's row
  // says it is fenced.
  v1::RegionInfo self_fenced = Peer("primary", "replicating");
  self_fenced.set_fenced(true);
  const std::string html = RenderStatusPage(Primary(), self_fenced, kNow);
  EXPECT_THAT(html, Not(HasSubstr("two-primaries")));
  EXPECT_THAT(html, HasSubstr("<td>replicating</td><td>yes</td>"));
}

TEST(StatusPageTest, ABucketShowsItsObjectsAndBytesPending) {
  v1::StatusReply s = Primary();
  s.set_role("standby");
  v1::ObjectsState* o = s.mutable_objects();
  o->set_mode("apply");
  o->set_target_bucket("assets-west");
  o->set_objects_pending(3);
  o->set_bytes_pending(6000);
  o->set_events_applied(41);
  EXPECT_THAT(RenderStatusPage(s, Peer("primary", "replicating"), kNow),
              HasSubstr("<tr id=\"objects\"><td>objects</td><td>applying to bucket assets-west: 3 "
                        "objects, 6000 bytes pending; 41 events applied</td></tr>"));
}

TEST(StatusPageTest, AnUnreachablePeerIsShownWithTheReason) {
  v1::StatusReply s = Primary();
  s.mutable_peer()->set_peer_region("west");
  const std::string html = RenderStatusPage(s, absl::UnavailableError("connection refused"), kNow);
  EXPECT_THAT(html, HasSubstr("<tr id=\"region-peer\"><td>west</td><td>unreachable</td><td></td>"
                              "<td>connection refused</td>"));
}

TEST(StatusPageTest, OutsideTextIsEscaped) {
  v1::StatusReply s = Primary();
  s.set_last_error("<script>alert('x')</script> & \"more\"");
  s.mutable_tables(0)->set_table("public.<b>");
  const std::string html = RenderStatusPage(s, absl::UnavailableError("<i>"), kNow);
  EXPECT_THAT(html, Not(HasSubstr("<script>")));
  EXPECT_THAT(html, Not(HasSubstr("<b>")));
  EXPECT_THAT(html, Not(HasSubstr("<i>")));
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; "
                              "&quot;more&quot;"));
  EXPECT_THAT(html, HasSubstr("public.&lt;b&gt;"));
}

}  // namespace
}  // namespace ferry
