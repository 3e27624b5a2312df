// The `objects:` section read as ferryd reads it (the engine's loader with the section
// declared): a full valid section, and each refusal naming its key (and position).
#include "connectors/s3/objects_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "absl/strings/str_cat.h"
#include "engine/config/config.h"
#include "tests/support/temp_dir.h"

namespace ferry::s3 {
namespace {

const char kTop[] =
    "region: east\ndata_dir: /var/lib/ferry\nrole: primary\n"
    "listen:\n  replication: 127.0.0.1:7401\npeer:\n  replication: 127.0.0.1:7411\n";

class ObjectsConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("FERRY_TEST_S3_ACCESS", "AKIA", 1);
    setenv("FERRY_TEST_S3_SECRET", "s3cr3t", 1);
    unsetenv("FERRY_TEST_S3_UNSET");
  }
  absl::StatusOr<ObjectsConfig> Parse(const std::string& objects, bool* present = nullptr) {
    ObjectsConfigSection section;
    auto c =
        config::ParseConfig(absl::StrCat(kTop, objects), "test.yaml", {.connectors = {&section}});
    if (!c.ok()) return c.status();
    if (present != nullptr) *present = section.present();
    return section.config();
  }
  std::string Valid(const std::string& replace_from = "", const std::string& with = "") {
    std::string text =
        "objects:\n"
        "  endpoint: http://127.0.0.1:7480\n"
        "  signing_region: us-east-1\n"
        "  bucket: app-assets\n"
        "  access_key_env: FERRY_TEST_S3_ACCESS\n"
        "  secret_key_env: FERRY_TEST_S3_SECRET\n"
        "  part_size: 16MiB\n"
        "  backfill_interval_seconds: 3600\n"
        "  events:\n"
        "    webhook: { listen: \"127.0.0.1:7403\" }\n"
        "  peer_bucket:\n"
        "    endpoint: http://127.0.0.1:7481\n"
        "    bucket: app-assets-west\n"
        "    access_key_env: FERRY_TEST_S3_ACCESS\n"
        "    secret_key_env: FERRY_TEST_S3_SECRET\n";
    if (!replace_from.empty()) {
      size_t at = text.find(replace_from);
      EXPECT_NE(at, std::string::npos) << replace_from;
      if (at != std::string::npos) text.replace(at, replace_from.size(), with);
    }
    return text;
  }
  void ExpectError(const std::string& text, const std::string& key, const std::string& words) {
    auto c = Parse(text);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find(absl::StrCat("key '", key, "'")), std::string::npos)
        << c.status();
    EXPECT_NE(c.status().message().find(words), std::string::npos) << c.status();
  }
};

TEST_F(ObjectsConfigTest, ReadsAFullSection) {
  bool present = false;
  auto c = Parse(Valid(), &present);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(present);
  EXPECT_EQ(c->endpoint, "http://127.0.0.1:7480");
  EXPECT_EQ(c->bucket, "app-assets");
  EXPECT_EQ(c->access_key.value, "AKIA");
  EXPECT_EQ(c->secret_key.value, "s3cr3t");
  EXPECT_EQ(c->part_size, uint64_t{16} << 20);
  EXPECT_EQ(c->backfill_interval_seconds, 3600);
  EXPECT_TRUE(c->webhook);
  EXPECT_EQ(c->webhook_listen.ToString(), "127.0.0.1:7403");
  EXPECT_FALSE(c->webhook_token.is_set());
  EXPECT_EQ(c->peer.endpoint, "http://127.0.0.1:7481");
  EXPECT_EQ(c->peer.bucket, "app-assets-west");
  EXPECT_EQ(c->peer.secret_key.value, "s3cr3t");
}

TEST_F(ObjectsConfigTest, KafkaEvents) {
  auto c = Parse(Valid("    webhook: { listen: \"127.0.0.1:7403\" }\n",
                       "    kafka: { brokers: \"127.0.0.1:9092,k2:9093\", topic: app-events }\n"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->kafka);
  EXPECT_FALSE(c->webhook);
  EXPECT_EQ(c->kafka_brokers, "127.0.0.1:9092,k2:9093");
  EXPECT_EQ(c->kafka_topic, "app-events");
  EXPECT_EQ(c->kafka_group, "ferry-east");
  EXPECT_EQ(c->kafka_session_timeout_ms, 10000);  // the default
  auto timed = Parse(
      Valid("    webhook: { listen: \"127.0.0.1:7403\" }\n",
            "    kafka: { brokers: \"127.0.0.1:9092\", topic: t, session_timeout_ms: 45000 }\n"));
  ASSERT_TRUE(timed.ok()) << timed.status();
  EXPECT_EQ(timed->kafka_session_timeout_ms, 45000);
}

// The session timeout is input from outside: out of librdkafka's range, not an integer, or
// hostile text, each refused naming the key.
TEST_F(ObjectsConfigTest, HostileKafkaSessionTimeoutsAreRefused) {
  for (const std::string& bad :
       {std::string("0"), std::string("-1"), std::string("999"), std::string("3600001"),
        std::string("99999999999999999999999"), std::string("10s"), std::string("1e4"),
        std::string("\"10000; rm -rf /\""), std::string("[10000]"), std::string("0x2710"),
        std::string("10000.5")}) {
    ExpectError(Valid("    webhook: { listen: \"127.0.0.1:7403\" }\n",
                      absl::StrCat("    kafka: { brokers: \"127.0.0.1:9092\", topic: t, "
                                   "session_timeout_ms: ",
                                   bad, " }\n")),
                "objects.events.kafka.session_timeout_ms", "");
  }
}

TEST_F(ObjectsConfigTest, NoSectionMeansNoObjectPath) {
  bool present = true;
  auto c = Parse("", &present);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(present);
}

TEST_F(ObjectsConfigTest, SecretsFromFiles) {
  testing::TempDir dir("ferry-objects-config");
  std::string access = dir.Write("access", "AK-from-file\n");
  std::string secret = dir.Write("secret", "SK-from-file\n");
  std::string token = dir.Write("token", "tok\n");
  auto c = Parse(absl::StrCat(
      "objects:\n  endpoint: http://127.0.0.1:7480\n  bucket: app\n  access_key_file: ", access,
      "\n  secret_key_file: ", secret, "\n  events:\n    webhook:\n      listen: 127.0.0.1:0\n",
      "      token_file: ", token, "\n",
      "  peer_bucket:\n    endpoint: http://h:1\n    bucket: app2\n",
      "    access_key_file: ", access, "\n    secret_key_file: ", secret, "\n"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key.value, "AK-from-file");
  EXPECT_EQ(c->secret_key.value, "SK-from-file");
  EXPECT_EQ(c->webhook_token.value, "tok");
}

TEST_F(ObjectsConfigTest, RefusalsNameTheKey) {
  ExpectError(Valid("  endpoint: http://127.0.0.1:7480\n", ""), "objects.endpoint", "required");
  ExpectError(Valid("http://127.0.0.1:7480", "http://127.0.0.1:7480/bucket"), "objects.endpoint",
              "without a path");
  ExpectError(Valid("http://127.0.0.1:7480", "ftp://x"), "objects.endpoint", "http://");
  ExpectError(Valid("app-assets", "App_Assets"), "objects.bucket", "bucket name");
  ExpectError(Valid("app-assets", "ab"), "objects.bucket", "bucket name");
  ExpectError(Valid("app-assets", "a..b"), "objects.bucket", "bucket name");
  ExpectError(Valid("  access_key_env: FERRY_TEST_S3_ACCESS\n", ""), "objects.access_key_file",
              "access_key_env");
  ExpectError(Valid("FERRY_TEST_S3_SECRET", "FERRY_TEST_S3_UNSET"), "objects.secret_key_env",
              "not set");
  ExpectError(Valid("16MiB", "1MiB"), "objects.part_size", "");
  ExpectError(Valid("3600", "-1"), "objects.backfill_interval_seconds", "");
  ExpectError(Valid("us-east-1", "us east 1"), "objects.signing_region", "signing region");
  ExpectError(Valid("127.0.0.1:7403", "7403"), "objects.events.webhook.listen", "");
  ExpectError(Valid("    webhook: { listen: \"127.0.0.1:7403\" }\n",
                    "    kafka: { brokers: \"127.0.0.1:9092\", group: g }\n"),
              "objects.events.kafka.topic", "required");
  ExpectError(Valid("    webhook: { listen: \"127.0.0.1:7403\" }\n",
                    "    kafka: { brokers: \"127.0.0.1\", topic: t }\n"),
              "objects.events.kafka.brokers", "HOST:PORT");
  ExpectError(Valid("    webhook: { listen: \"127.0.0.1:7403\" }\n",
                    "    kafka: { brokers: \"127.0.0.1:9092\", topic: \"a/b\" }\n"),
              "objects.events.kafka.topic", "Kafka name");
  ExpectError(Valid("  backfill_interval_seconds: 3600\n  events:\n"
                    "    webhook: { listen: \"127.0.0.1:7403\" }\n",
                    ""),
              "objects.events", "no change");
  ExpectError(Valid("  bucket:", "  buckett: x\n  bucket:"), "objects.buckett", "bucket");
  ExpectError(Valid("webhook: {", "webhok: {"), "objects.events.webhok", "unknown key");
  ExpectError(Valid("  part_size: 16MiB\n", "  ca_file: /etc/ca.pem\n"), "objects.ca_file",
              "https");
  ExpectError(Valid("app-assets", std::string(100, 'a')), "objects.bucket", "bucket name");
  ExpectError(Valid("  peer_bucket:\n", "  pier:\n"), "objects.pier", "unknown key");
  ExpectError(Valid("app-assets-west", "West"), "objects.peer_bucket.bucket", "bucket name");
  ExpectError(Valid("    secret_key_env: FERRY_TEST_S3_SECRET\n", ""),
              "objects.peer_bucket.access_key_file", "secret_key_env");
}

}  // namespace
}  // namespace ferry::s3
