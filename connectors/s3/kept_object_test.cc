// ObjectEventAsKept: an object event of the outbound log as a quarantine entry, and hostile or
// corrupt records refused (kDataLoss), never kept as something else.
#include "connectors/s3/kept_object.h"

#include <gtest/gtest.h>

#include "connectors/s3/bucket_source.h"
#include "connectors/s3/object_event.pb.h"

namespace ferry::s3 {
namespace {

v1::SourceEvent EventOf(const objects::v1::ObjectEvent& e) {
  v1::SourceEvent event;
  event.set_type(kObjectEventType);
  event.set_body(e.SerializeAsString());
  event.set_capture_time_us(42);
  return event;
}

objects::v1::ObjectEvent Put() {
  objects::v1::ObjectEvent e;
  e.set_format(1);
  e.set_bucket("east-assets");
  e.set_key("a \"quoted\" key/\n+%=ü");
  e.set_kind(objects::v1::ObjectEvent::PUT);
  e.set_version_id("v-1");
  e.set_etag("0123abcd");
  e.set_size(1234);
  e.set_content_type("text/plain");
  return e;
}

TEST(KeptObjectTest, APutIsKeptWithItsVersionSizeAndEtag) {
  auto kept = ObjectEventAsKept(EventOf(Put()));
  ASSERT_TRUE(kept.ok()) << kept.status();
  ASSERT_TRUE(kept->has_value());
  const v1::QuarantinedChange& c = **kept;
  EXPECT_EQ(c.table_schema(), "s3");
  EXPECT_EQ(c.table_name(), "east-assets");
  EXPECT_EQ(c.op(), "object_put");
  EXPECT_TRUE(IsObjectOp(c.op()));
  EXPECT_EQ(c.key(), "{\"key\": \"a \\\"quoted\\\" key/\\u000a+%=ü\"}");
  EXPECT_EQ(
      c.after(),
      R"({"version_id": "v-1", "size": "1234", "etag": "0123abcd", "content_type": "text/plain"})");
  EXPECT_EQ(c.commit_time_us(), 42);  // no event time: the capture's
}

TEST(KeptObjectTest, ADeleteCarriesItsVersionOnly) {
  objects::v1::ObjectEvent e = Put();
  e.set_kind(objects::v1::ObjectEvent::DELETE);
  v1::SourceEvent event = EventOf(e);
  event.set_event_time_us(7);
  auto kept = ObjectEventAsKept(event);
  ASSERT_TRUE(kept.ok() && kept->has_value());
  EXPECT_EQ((*kept)->op(), "object_delete");
  EXPECT_EQ((*kept)->after(), R"({"version_id": "v-1"})");
  EXPECT_EQ((*kept)->commit_time_us(), 7);
}

TEST(KeptObjectTest, OtherEventsAreNotKept) {
  v1::SourceEvent reconcile;
  reconcile.set_type(kReconcileType);
  reconcile.set_body("east-assets");
  auto kept = ObjectEventAsKept(reconcile);
  ASSERT_TRUE(kept.ok());
  EXPECT_FALSE(kept->has_value());
  v1::SourceEvent other;
  other.set_type("kafka.message");
  other.set_body("\xff\xfe garbage");
  ASSERT_TRUE(ObjectEventAsKept(other).ok());
}

TEST(KeptObjectTest, CorruptObjectEventsAreDataLoss) {
  v1::SourceEvent garbage;
  garbage.set_type(kObjectEventType);
  garbage.set_body("\xff\xff\xff\xff\xff");
  EXPECT_EQ(ObjectEventAsKept(garbage).status().code(), absl::StatusCode::kDataLoss);
  objects::v1::ObjectEvent newer = Put();
  newer.set_format(2);
  EXPECT_EQ(ObjectEventAsKept(EventOf(newer)).status().code(), absl::StatusCode::kDataLoss);
  objects::v1::ObjectEvent no_key = Put();
  no_key.set_key("");
  EXPECT_EQ(ObjectEventAsKept(EventOf(no_key)).status().code(), absl::StatusCode::kDataLoss);
  objects::v1::ObjectEvent no_bucket = Put();
  no_bucket.set_bucket("");
  EXPECT_EQ(ObjectEventAsKept(EventOf(no_bucket)).status().code(), absl::StatusCode::kDataLoss);
  objects::v1::ObjectEvent no_kind = Put();
  no_kind.set_kind(objects::v1::ObjectEvent::KIND_UNSPECIFIED);
  EXPECT_EQ(ObjectEventAsKept(EventOf(no_kind)).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace ferry::s3
