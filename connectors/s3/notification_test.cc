// Notification parsing: both dialects (Ceph RGW, MinIO) as they send them, and hostile input
// (malformed, oversized, deep, wrong types, bad keys). Mutants caught: decoding RGW's raw key
// (a key with '%41' or '+' changes), not decoding MinIO's, reading size only as a number or
// only as a string, dropping a whole notification for one bad record.
#include "connectors/s3/notification.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace ferry::s3 {
namespace {

// As radosgw 16 pushes it (captured from the fixture, trimmed of empty fields).
constexpr char kRgw[] = R"({"Records":[{"eventVersion":"2.2","eventSource":"ceph:s3",
 "awsRegion":"us-east-1","eventTime":"2026-12-05T04:22:16.084Z","eventName":"ObjectCreated:Put",
 "userIdentity":{"principalId":"ferry"},"s3":{"s3SchemaVersion":"1.0","configurationId":"ferry",
 "bucket":{"name":"east","ownerIdentity":{"principalId":"ferry"},"arn":"arn:aws:s3:::east"},
 "object":{"key":"a b+c%41","size":1024,"eTag":"37b51d194a7513e45b56f6524f2d51f2",
 "versionId":"YAFLWbGbXVm9PvmeW3C4Q4beKcaa01r","sequencer":"F7E6D75DC742D108",
 "metadata":[{"key":"x-amz-meta-foo","val":"bar"}],"tags":[]}},"eventId":"1","opaqueData":""},
 {"eventSource":"ceph:s3","eventName":"ObjectRemoved:DeleteMarkerCreated",
 "s3":{"bucket":{"name":"east"},"object":{"key":"gone","size":"0","versionId":"v2"}}}]})";

// As MinIO sends it: "s3:" prefixes, URL-encoded key, size as a number, a "Key" at the top.
constexpr char kMinio[] = R"({"EventName":"s3:ObjectCreated:Put","Key":"east/a+b%2Bc%25",
 "Records":[{"eventVersion":"2.0","eventSource":"minio:s3","awsRegion":"",
 "eventTime":"2026-12-05T04:22:16.084123456Z","eventName":"s3:ObjectCreated:Put",
 "s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name":"east"},
 "object":{"key":"a+b%2Bc%25","size":6,"eTag":"e","contentType":"text/plain",
 "userMetadata":{"content-type":"text/plain"},"versionId":"v1","sequencer":"17A8B3C0C1B1F1E4"}}},
 {"eventSource":"minio:s3","eventName":"s3:ObjectRemoved:Delete",
 "s3":{"bucket":{"name":"east"},"object":{"key":"%E6%97%A5%2F..%2Fx","sequencer":"1"}}}]})";

TEST(NotificationTest, ReadsRgwRecords) {
  auto parsed = ParseNotification(kRgw);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->notices.size(), 2u);
  EXPECT_TRUE(parsed->rejected.empty());
  const BucketNotice& put = parsed->notices[0];
  EXPECT_EQ(put.bucket, "east");
  EXPECT_EQ(put.key, "a b+c%41");  // raw: RGW does not encode keys
  EXPECT_EQ(put.kind, BucketNotice::Kind::kCreated);
  EXPECT_EQ(put.size, 1024u);
  EXPECT_EQ(put.version_id, "YAFLWbGbXVm9PvmeW3C4Q4beKcaa01r");
  EXPECT_EQ(put.etag, "37b51d194a7513e45b56f6524f2d51f2");
  EXPECT_EQ(put.sequencer, "F7E6D75DC742D108");
  EXPECT_GT(put.event_time_us, 0);
  const BucketNotice& del = parsed->notices[1];
  EXPECT_EQ(del.kind, BucketNotice::Kind::kRemoved);
  EXPECT_EQ(del.size, 0u);  // size as a string
  EXPECT_EQ(del.event_time_us, 0);
}

TEST(NotificationTest, ReadsMinioRecords) {
  auto parsed = ParseNotification(kMinio);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->notices.size(), 2u);
  EXPECT_EQ(parsed->notices[0].key, "a b+c%");
  EXPECT_EQ(parsed->notices[0].kind, BucketNotice::Kind::kCreated);
  EXPECT_EQ(parsed->notices[0].size, 6u);
  EXPECT_EQ(parsed->notices[0].event_name, "s3:ObjectCreated:Put");
  EXPECT_EQ(parsed->notices[1].key, "\xe6\x97\xa5/../x");  // "../" is a key like any other
  EXPECT_EQ(parsed->notices[1].kind, BucketNotice::Kind::kRemoved);
  EXPECT_FALSE(parsed->notices[1].size.has_value());
}

TEST(NotificationTest, WholeTextRefusals) {
  for (const std::string& bad :
       {std::string(""), std::string("not json"), std::string("[]"), std::string("{}"),
        std::string("{\"Records\":{}}"), std::string("{\"Records\":\"x\"}"),
        std::string("{\"Records\":[") + std::string(100, '['), std::string("{\"Records\":[]"),
        std::string("\xff\xfe{}"), std::string(kMaxNotificationBytes + 1, ' ')}) {
    auto parsed = ParseNotification(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad.substr(0, 40);
  }
  std::string many = "{\"Records\":[";
  for (size_t i = 0; i <= kMaxRecords; ++i) absl::StrAppend(&many, i ? "," : "", "{}");
  many += "]}";
  EXPECT_EQ(ParseNotification(many).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NotificationTest, DeeplyNestedJsonIsRefusedNotACrash) {
  std::string deep = "{\"Records\":[{\"s3\":";
  for (int i = 0; i < 100000; ++i) deep += "{\"a\":";
  deep += "1";
  for (int i = 0; i < 100000; ++i) deep += "}";
  deep += "}]}";
  EXPECT_FALSE(ParseNotification(deep).ok());
}

TEST(NotificationTest, BadRecordsAreRejectedAloneWithAReason) {
  const std::string key1024(1024, 'k');
  const std::string key1025(1025, 'k');
  const std::string json = absl::StrCat(
      R"({"Records":[1,"x",{},{"s3":{}},{"s3":{"bucket":{"name":"east"},"object":{}}},)",
      R"({"s3":{"bucket":{},"object":{"key":"k"}}},)",
      R"({"s3":{"bucket":{"name":"east"},"object":{"key":"bad%4"}}},)",
      R"({"s3":{"bucket":{"name":"east"},"object":{"key":"%FF%FE"}}},)",
      R"({"s3":{"bucket":{"name":"east"},"object":{"key":")", key1025, R"("}}},)",
      R"({"eventSource":"ceph:s3","s3":{"bucket":{"name":"east"},"object":{"key":")", key1024,
      R"(","size":-5}}},)",
      R"({"s3":{"bucket":{"name":"east"},"object":{"key":"ok","size":1.5,"eTag":7}}}]})");
  auto parsed = ParseNotification(json);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->notices.size(), 2u);
  EXPECT_EQ(parsed->notices[0].key, key1024);
  EXPECT_FALSE(parsed->notices[0].size.has_value());  // -5 is no size
  EXPECT_EQ(parsed->notices[1].key, "ok");
  EXPECT_FALSE(parsed->notices[1].size.has_value());  // 1.5 is no size
  EXPECT_EQ(parsed->notices[1].etag, "");             // a number is no ETag
  EXPECT_EQ(parsed->notices[1].kind, BucketNotice::Kind::kOther);
  ASSERT_EQ(parsed->rejected.size(), 9u);
  for (const RejectedRecord& r : parsed->rejected) EXPECT_FALSE(r.reason.empty());
  EXPECT_EQ(parsed->rejected[0].index, 0);
  EXPECT_EQ(parsed->rejected[8].index, 8);
}

TEST(NotificationTest, DecodeAndUtf8) {
  EXPECT_EQ(DecodeEventKey("a+b%20c%2B"), "a b c+");
  EXPECT_EQ(DecodeEventKey("%"), std::nullopt);
  EXPECT_EQ(DecodeEventKey("%4"), std::nullopt);
  EXPECT_EQ(DecodeEventKey("%zz"), std::nullopt);
  EXPECT_TRUE(IsValidUtf8("plain \xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // over U+10FFFF
}

}  // namespace
}  // namespace ferry::s3
