#include "engine/config/config.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/base/status_macros.h"
#include "engine/config/config_test_util.h"
#include "engine/config/engine_keys.h"
#include "engine/config/key_table.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace ferry::config {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

TEST_F(ConfigTest, MinimalConfigGetsDefaults) {
  absl::StatusOr<Config> c = Parse(Parts{});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->region, "east");
  EXPECT_EQ(c->data_dir, "/var/lib/ferry");
  EXPECT_EQ(c->role, Role::kPrimary);
  EXPECT_EQ(c->log_level, LogLevel::kInfo);
  EXPECT_EQ(c->log_format, LogFormat::kText);
  EXPECT_EQ(c->listen.replication, (HostPort{"127.0.0.1", 7401}));
  EXPECT_EQ(c->listen.admin, (HostPort{"127.0.0.1", 7400}));
  EXPECT_EQ(c->listen.metrics, (HostPort{"127.0.0.1", 9400}));
  EXPECT_EQ(c->peer.replication, (HostPort{"127.0.0.1", 7411}));
  EXPECT_EQ(c->peer.region, "");
  EXPECT_FALSE(c->security.token.is_set());
  EXPECT_FALSE(c->security.admin_token.is_set());
  EXPECT_FALSE(c->security.tls.enabled());
  EXPECT_EQ(c->stream.compression_level, 3);
  EXPECT_EQ(c->stream.window_bytes, 64u << 20);
  EXPECT_EQ(c->stream.max_batch_bytes, 4u << 20);
  EXPECT_EQ(c->stream.max_message_bytes, 16u << 20);
  EXPECT_EQ(c->stream.reconnect_min_ms, 100);
  EXPECT_EQ(c->stream.reconnect_max_ms, 30000);
  EXPECT_EQ(c->apply.workers, 4);
  EXPECT_EQ(c->apply.conflict_policy, ConflictPolicy::kStopTable);
  EXPECT_EQ(c->apply.group_max_transactions, 1000);
  EXPECT_EQ(c->apply.group_max_bytes, 16u << 20);
  EXPECT_EQ(c->apply.group_max_delay_ms, 20);
  EXPECT_EQ(c->apply.durable_poll_ms, 200);
  EXPECT_EQ(c->apply.max_value_bytes, 32u << 20);
  EXPECT_EQ(c->apply.stopped_table_retention_bytes, 1u << 30);
  EXPECT_EQ(c->log.retention_bytes, 1u << 30);
  EXPECT_EQ(c->log.retention_seconds, 3600);
  EXPECT_EQ(c->source, "test.yaml");
  // No token and no TLS are allowed, but said.
  EXPECT_THAT(c->warnings,
              ElementsAre(HasSubstr("security.token_file"), HasSubstr("security.tls")));
}

TEST_F(ConfigTest, FullConfig) {
  const std::string cert = WriteFile("cert.pem", "CERT");
  const std::string key = WriteFile("key.pem", "KEY");
  const std::string ca = WriteFile("ca.pem", "CA");
  ::setenv("FERRY_TEST_FULL_TOKEN", "tok-123", 1);
  ::setenv("FERRY_TEST_FULL_ADMIN", "adm-456", 1);
  const std::string yaml = absl::StrCat(R"(
region: east
data_dir: /var/lib/ferry
role: standby
log_level: debug
listen:
  replication: "[::1]:7401"
  admin: 0.0.0.0:7400
  metrics: localhost:0
peer:
  replication: west.example.com:7411
  region: west
security:
  token_env: FERRY_TEST_FULL_TOKEN
  admin_token_env: FERRY_TEST_FULL_ADMIN
  tls:
    cert_file: )",
                                        cert, R"(
    key_file: )",
                                        key, R"(
    ca_file: )",
                                        ca, R"(
stream:
  compression_level: 0
  window_bytes: 1GiB
  max_batch_bytes: 512KiB
  max_message_bytes: "8 MiB"
  reconnect_min_ms: 50
  reconnect_max_ms: 50
apply:
  workers: 64
  conflict_policy: apply_remote
  group_max_transactions: 1
  group_max_bytes: 1048576
  group_max_delay_ms: 0
  durable_poll_ms: 10
  max_value_bytes: 64MiB
  stopped_table_retention_bytes: 4MiB
failover:
  sequence_gap: 5000
  self_fence_after_seconds: 30
log:
  retention_bytes: 0
  retention_seconds: 86400
  format: json
)");
  absl::StatusOr<Config> c = ParseConfig(yaml, "test.yaml", LoadOptions{});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->role, Role::kStandby);
  EXPECT_EQ(c->log_level, LogLevel::kDebug);
  EXPECT_EQ(c->listen.replication, (HostPort{"::1", 7401}));
  EXPECT_EQ(c->listen.admin, (HostPort{"0.0.0.0", 7400}));
  EXPECT_EQ(c->listen.metrics, (HostPort{"localhost", 0}));
  EXPECT_EQ(c->peer.replication, (HostPort{"west.example.com", 7411}));
  EXPECT_EQ(c->peer.region, "west");
  EXPECT_EQ(c->security.token.value, "tok-123");
  EXPECT_EQ(c->security.token.source, "env FERRY_TEST_FULL_TOKEN");
  EXPECT_EQ(c->security.admin_token.value, "adm-456");
  EXPECT_EQ(c->security.tls.cert_file, cert);
  EXPECT_EQ(c->security.tls.key_file, key);
  EXPECT_EQ(c->security.tls.ca_file, ca);
  EXPECT_EQ(c->stream.compression_level, 0);
  EXPECT_EQ(c->stream.window_bytes, 1u << 30);
  EXPECT_EQ(c->stream.max_batch_bytes, 512u << 10);
  EXPECT_EQ(c->stream.max_message_bytes, 8u << 20);
  EXPECT_EQ(c->stream.reconnect_min_ms, 50);
  EXPECT_EQ(c->apply.workers, 64);
  EXPECT_EQ(c->apply.conflict_policy, ConflictPolicy::kApplyRemote);
  EXPECT_EQ(c->apply.group_max_transactions, 1);
  EXPECT_EQ(c->apply.group_max_bytes, 1u << 20);
  EXPECT_EQ(c->apply.group_max_delay_ms, 0);
  EXPECT_EQ(c->apply.durable_poll_ms, 10);
  EXPECT_EQ(c->apply.max_value_bytes, 64u << 20);
  EXPECT_EQ(c->apply.stopped_table_retention_bytes, 4u << 20);
  EXPECT_EQ(c->log.retention_bytes, 0u);
  EXPECT_EQ(c->log.retention_seconds, 86400);
  EXPECT_EQ(c->log_format, LogFormat::kJson);
  EXPECT_THAT(c->warnings, ::testing::IsEmpty());

  // Secrets are masked; everything else is shown, every key of the table once.
  EXPECT_EQ(c->DebugString(), absl::StrCat(R"(region: east
data_dir: "/var/lib/ferry"
role: standby
log_level: debug
listen:
  replication: [::1]:7401
  admin: 0.0.0.0:7400
  metrics: localhost:0
peer:
  replication: west.example.com:7411
  region: west
security:
  token: <secret from env FERRY_TEST_FULL_TOKEN>
  admin_token: <secret from env FERRY_TEST_FULL_ADMIN>
  tls:
    cert_file: ")",
                                           cert, R"("
    key_file: ")",
                                           key, R"("
    ca_file: ")",
                                           ca, R"("
stream:
  compression_level: 0
  window_bytes: 1GiB
  max_batch_bytes: 512KiB
  max_message_bytes: 8MiB
  reconnect_min_ms: 50
  reconnect_max_ms: 50
apply:
  workers: 64
  conflict_policy: apply_remote
  group_max_transactions: 1
  group_max_bytes: 1MiB
  group_max_delay_ms: 0
  synchronous_commit: false
  durable_poll_ms: 10
  max_value_bytes: 64MiB
  stopped_table_retention_bytes: 4MiB
failover:
  sequence_gap: 5000
  self_fence_after_seconds: 30
log:
  retention_bytes: 0
  retention_seconds: 86400
  format: json
)"));
  ::unsetenv("FERRY_TEST_FULL_TOKEN");
  ::unsetenv("FERRY_TEST_FULL_ADMIN");
}

TEST_F(ConfigTest, LoadConfigFileReadsTheFile) {
  const std::string path = WriteFile("east.yaml", Parts{}.Text());
  absl::StatusOr<Config> c = LoadConfigFile(path, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->source, path);
  EXPECT_EQ(c->region, "east");
}

TEST_F(ConfigTest, MissingFileNamesTheFileAndTheOsError) {
  const std::string path = dir_.File("nope.yaml");
  absl::StatusOr<Config> c = LoadConfigFile(path, {});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(c.status().message()),
            "config " + path + ": cannot open: No such file or directory");
}

TEST_F(ConfigTest, DirectoryIsNotAConfigFile) {
  absl::StatusOr<Config> c = LoadConfigFile(dir_.path(), {});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("is a directory"));
}

TEST_F(ConfigTest, FileTooLarge) {
  std::string text = Parts{}.Text() + "# " + std::string(kMaxConfigBytes, 'x') + "\n";
  const std::string path = WriteFile("big.yaml", text);
  absl::StatusOr<Config> c = LoadConfigFile(path, {});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              AllOf(HasSubstr("config " + path), HasSubstr("over the 1MiB limit")));
  ExpectError(ParseConfig(text, "test.yaml", {}), "over the 1MiB limit");
}

TEST_F(ConfigTest, TenMegabyteValueIsRefusedBySize) {
  Parts p;
  p.extra = "peer_extra: \"" + std::string(10 << 20, 'a') + "\"\n";
  ExpectError(Parse(p), "over the 1MiB limit");
}

TEST_F(ConfigTest, RequiredKeys) {
  Parts p;
  p.top = "data_dir: /d\nrole: primary\n";
  ExpectError(Parse(p), "key 'region': is required");
  p.top = "region: east\nrole: primary\n";
  ExpectError(Parse(p), "key 'data_dir': is required");
  p.top = "region: east\ndata_dir: /d\n";
  ExpectError(Parse(p), "key 'role': is required");
  p = Parts{};
  p.listen = "  admin: 127.0.0.1:7400\n";
  ExpectError(Parse(p), "key 'listen.replication': is required");
  p = Parts{};
  p.peer = "";  // "peer:" with no value counts as an empty section
  ExpectError(Parse(p), "key 'peer.replication': is required");
}

TEST_F(ConfigTest, WrongTypes) {
  Parts p;
  p.top = "region: {name: east}\ndata_dir: /d\nrole: primary\n";
  ExpectError(Parse(p), "key 'region': expected a string, got a map (line 1, column 9)");
  p = Parts{};
  p.extra = "apply:\n  workers: abc\n";
  ExpectError(Parse(p), "key 'apply.workers': expected an integer, got \"abc\"");
  p.extra = "apply:\n  workers: [1]\n";
  ExpectError(Parse(p), "key 'apply.workers': expected an integer, got a list");
  p.extra = "apply:\n  workers: 4.0\n";
  ExpectError(Parse(p), "key 'apply.workers': expected an integer, got \"4.0\"");
  p.extra = "apply:\n  workers:\n";
  ExpectError(Parse(p), "key 'apply.workers': expected an integer, got no value");
  p.extra = "apply:\n  max_value_bytes: 2GiB\n";
  ExpectError(Parse(p), "key 'apply.max_value_bytes'");
  p.extra = "apply:\n  max_value_bytes: 12\n";
  ExpectError(Parse(p), "key 'apply.max_value_bytes'");
  // The bound of what a stopped table may keep: hostile values name the key.
  for (const char* value : {"-1", "0", "12", "2PiB", "99999999999999999999999", "abc", "1.5GiB",
                            "[1]", "{a: 1}", "4MiB4", ""}) {
    SCOPED_TRACE(value);
    p.extra = absl::StrCat("apply:\n  stopped_table_retention_bytes: ", value, "\n");
    ExpectError(Parse(p), "key 'apply.stopped_table_retention_bytes'");
  }
  for (const char* bad :
       {"failover:\n  sequence_gap: -1\n", "failover:\n  self_fence_after_seconds: 86401\n",
        "failover:\n  self_fence_after_seconds: soon\n", "failover:\n  sequence_gaps: 10\n"}) {
    p.extra = bad;
    ExpectError(Parse(p), "failover.");
  }
  p.extra = "apply:\n  stopped_table_retention_bytes: 64KiB\n";
  ASSERT_TRUE(Parse(p).ok());
  EXPECT_EQ(Parse(p)->apply.stopped_table_retention_bytes, 64u << 10);
  p.extra = "apply: 4\n";
  ExpectError(Parse(p), "key 'apply': expected a map of keys, got the scalar \"4\"");
  p.extra = "stream: [1, 2]\n";
  ExpectError(Parse(p), "key 'stream': expected a map of keys, got a list");
  p = Parts{};
  p.extra = "apply:\n  synchronous_commit: yes\n";
  ExpectError(Parse(p), "key 'apply.synchronous_commit': expected true or false, got \"yes\"");
  p = Parts{};
  p.top += "log_level: verbose\n";
  ExpectError(Parse(p),
              "key 'log_level': expected one of trace, debug, info, warn, error, got \"verbose\"");
  // log.format: only the two names, in lower case; not a list, a map or a number.
  for (const char* bad : {"xml", "JSON", "\"\"", "1", "[json]", "{a: b}", "json text"}) {
    p = Parts{};
    p.extra = absl::StrCat("log:\n  format: ", bad, "\n");
    auto parsed = Parse(p);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("key 'log.format'")) << bad;
  }
  p = Parts{};
  p.extra = "log:\n  format: xml\n";
  ExpectError(Parse(p), "key 'log.format': expected one of text, json, got \"xml\"");
  p = Parts{};
  p.top = "region: east\ndata_dir: /d\nrole: leader\n";
  ExpectError(Parse(p), "key 'role': expected one of primary, standby, got \"leader\"");
  p = Parts{};
  p.extra = "apply:\n  conflict_policy: ignore\n";
  ExpectError(Parse(p), "key 'apply.conflict_policy': expected one of stop, apply_remote");
}

TEST_F(ConfigTest, ImpossibleValues) {
  Parts p;
  p.extra = "apply:\n  workers: 0\n";
  ExpectError(Parse(p), "key 'apply.workers': must be between 1 and 64, got 0");
  p.extra = "apply:\n  workers: -1\n";
  ExpectError(Parse(p), "key 'apply.workers': must be between 1 and 64, got -1");
  p.extra = "apply:\n  workers: 65\n";
  ExpectError(Parse(p), "key 'apply.workers': must be between 1 and 64, got 65");
  p.extra = "apply:\n  workers: 99999999999999999999999\n";
  ExpectError(Parse(p), "key 'apply.workers': expected an integer");
  p.extra = "stream:\n  compression_level: 20\n";
  ExpectError(Parse(p), "key 'stream.compression_level': must be between 0 and 19, got 20");
  p.extra = "stream:\n  window_bytes: -1\n";
  ExpectError(Parse(p), "key 'stream.window_bytes': must not be negative");
  p.extra = "stream:\n  window_bytes: 64MB\n";
  ExpectError(Parse(p), "key 'stream.window_bytes': ambiguous unit \"MB\"");
  p.extra = "stream:\n  window_bytes: 1KiB\n";
  ExpectError(Parse(p), "key 'stream.window_bytes': must be between 64KiB and 64GiB, got \"1KiB\"");
  p.extra = "stream:\n  max_batch_bytes: 32MiB\n";
  ExpectError(Parse(p),
              "key 'stream.max_batch_bytes': must be <= stream.max_message_bytes (16MiB)");
  p.extra = "stream:\n  window_bytes: 1MiB\n  max_batch_bytes: 2MiB\n";
  ExpectError(Parse(p), "key 'stream.max_batch_bytes': must be <= stream.window_bytes (1MiB)");
  p.extra = "stream:\n  reconnect_min_ms: 5000\n  reconnect_max_ms: 1000\n";
  ExpectError(Parse(p), "key 'stream.reconnect_min_ms': must be <= stream.reconnect_max_ms (1000)");
  p.extra = "apply:\n  group_max_delay_ms: -5\n";
  ExpectError(Parse(p), "key 'apply.group_max_delay_ms': must be between 0 and 60000");
  p.extra = "apply:\n  durable_poll_ms: 0\n";  // a query as fast as the reader loops
  ExpectError(Parse(p), "key 'apply.durable_poll_ms': must be between 10 and 60000, got 0");
  p.extra = "apply:\n  durable_poll_ms: 3600000\n";  // an idle crash unnoticed for an hour
  ExpectError(Parse(p), "key 'apply.durable_poll_ms': must be between 10 and 60000");
  p.extra = "apply:\n  durable_poll_ms: 1s\n";
  ExpectError(Parse(p), "key 'apply.durable_poll_ms': expected an integer");
  p.extra = "log:\n  retention_seconds: 99999999\n";
  ExpectError(Parse(p), "key 'log.retention_seconds': must be between 0 and 2592000");

  p = Parts{};
  p.top = "region: East\ndata_dir: /d\nrole: primary\n";
  ExpectError(Parse(p), "key 'region': expected 1-32 characters of [a-z0-9_-], got \"East\"");
  p.top = "region: " + std::string(33, 'a') + "\ndata_dir: /d\nrole: primary\n";
  ExpectError(Parse(p), "key 'region': expected 1-32 characters");
  p.top = "region: east\ndata_dir: var/lib/ferry\nrole: primary\n";
  ExpectError(Parse(p), "key 'data_dir': expected an absolute path, got \"var/lib/ferry\"");
}

TEST_F(ConfigTest, AddressesAreValidated) {
  Parts p;
  p.listen += "  admin: \"7400\"\n";
  absl::StatusOr<Config> c = Parse(p);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(std::string(c.status().message()),
            "config test.yaml: key 'listen.admin': expected HOST:PORT, got \"7400\" "
            "(line 6, column 10)");
  p = Parts{};
  p.listen = "  replication: 127.0.0.1:70000\n";
  ExpectError(Parse(p), "key 'listen.replication': port must be a number 0-65535, got \"70000\"");
  p.listen = "  replication: 0.0.0.0:0\n";
  EXPECT_TRUE(Parse(p).ok());  // port 0: a free port, for tests
  p = Parts{};
  p.peer = "  replication: 127.0.0.1:0\n";
  ExpectError(Parse(p), "key 'peer.replication': port 0 is allowed only for listen addresses");
  p = Parts{};
  p.listen += "  metrics: 127.0.0.1:7401\n";
  ExpectError(Parse(p),
              "key 'listen.metrics': same address 127.0.0.1:7401 as 'listen.replication'");
  p = Parts{};
  p.peer += "  region: east\n";
  ExpectError(Parse(p), "key 'peer.region': must differ from 'region' (east)");
}

TEST_F(ConfigTest, UnknownKeysAreErrorsWithSuggestions) {
  Parts p;
  p.listen += "  admn: 127.0.0.1:7400\n";
  ExpectError(Parse(p), "key 'listen.admn': unknown key; did you mean 'admin'?");
  p = Parts{};
  p.extra = "frobnicate: 1\n";
  absl::StatusOr<Config> c = Parse(p);
  ExpectError(c, "key 'frobnicate': unknown key");
  EXPECT_THAT(std::string(c.status().message()), Not(HasSubstr("did you mean")));
  p = Parts{};
  p.top += "workers: 4\n";
  ExpectError(Parse(p), "key 'workers': unknown key; 'workers' belongs under 'apply'");
  p = Parts{};
  p.extra = "queue:\n  url: x\n";  // no connector declared: an unknown section
  ExpectError(Parse(p), "key 'queue': unknown key");
  p = Parts{};
  p.extra = "security:\n  tls:\n    cert: /x\n";
  ExpectError(Parse(p), "key 'security.tls.cert': unknown key; did you mean 'cert_file'?");
  p.extra = "security:\n  tokn_file: /x\n";
  ExpectError(Parse(p), "key 'security.tokn_file': unknown key; did you mean 'token_file'?");
  p = Parts{};
  p.top += "region: west\n";
  ExpectError(Parse(p), "key 'region': is set twice (duplicate key)");
  p = Parts{};
  p.extra = "[a, b]: 1\n";
  ExpectError(Parse(p), "the top level: every key must be a plain string");
}

TEST_F(ConfigTest, YamlSyntaxErrorHasLineAndColumn) {
  Parts p;
  p.listen = "  replication: [unclosed\n";
  ExpectError(Parse(p), "YAML syntax error at line");
  absl::StatusOr<Config> c = ParseConfig("region: east\n  data_dir: /x\n", "test.yaml", {});
  ExpectError(c, "YAML syntax error at line 2, column");
  c = ParseConfig("a: *undefined\n", "test.yaml", {});
  ExpectError(c, "YAML syntax error");
}

TEST_F(ConfigTest, DocumentShape) {
  ExpectError(ParseConfig("", "test.yaml", {}), "is empty");
  ExpectError(ParseConfig("# only a comment\n", "test.yaml", {}), "is empty");
  ExpectError(ParseConfig("- a\n- b\n", "test.yaml", {}),
              "the top level: expected a map of keys, got a list");
  ExpectError(ParseConfig(Parts{}.Text() + "---\nregion: west\n", "test.yaml", {}),
              "more than one YAML document");
}

TEST_F(ConfigTest, SecretFromFileIsTrimmedAndPermissionsWarned) {
  const std::string path = WriteFile("pw", "hunter2\r\n\n", 0644);
  Parts p;
  p.extra = "security:\n  token_file: " + path + "\n";
  absl::StatusOr<Config> c = Parse(p);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->security.token.value, "hunter2");
  EXPECT_THAT(c->warnings,
              ::testing::Contains(AllOf(HasSubstr("key 'security.token_file'"),
                                        HasSubstr("readable by group or others (mode 0644)"))));
  for (const std::string& w : c->warnings) EXPECT_THAT(w, Not(HasSubstr("hunter2")));
  EXPECT_THAT(c->DebugString(), Not(HasSubstr("hunter2")));
}

TEST_F(ConfigTest, SecretErrors) {
  Parts p;
  p.extra = "security:\n  token_file: " + dir_.File("absent") + "\n";
  ExpectError(Parse(p), "key 'security.token_file': secret file ",
              "cannot open: No such file or directory");
  p.extra = "security:\n  token_file: secrets/token\n";
  ExpectError(Parse(p), "key 'security.token_file': expected an absolute path");
  p.extra = "security:\n  admin_token_file: " + WriteFile("empty", "\n") + "\n";
  ExpectError(Parse(p), "key 'security.admin_token_file': secret file ", "is empty");
  p.extra =
      "security:\n  token_file: " + WriteFile("big", std::string(kMaxSecretBytes + 1, 'x')) + "\n";
  ExpectError(Parse(p), "key 'security.token_file': secret file ", "over the 64KiB limit");
  p.extra = "security:\n  token_file: " + WriteFile("nul", std::string("a\0b", 3)) + "\n";
  ExpectError(Parse(p), "key 'security.token_file': secret file ", "contains a NUL byte");
  ::unsetenv("FERRY_TEST_UNSET_VAR");
  p.extra = "security:\n  token_env: FERRY_TEST_UNSET_VAR\n";
  ExpectError(Parse(p),
              "key 'security.token_env': environment variable FERRY_TEST_UNSET_VAR is not set");
  ::setenv("FERRY_TEST_EMPTY_VAR", "", 1);
  p.extra = "security:\n  admin_token_env: FERRY_TEST_EMPTY_VAR\n";
  ExpectError(Parse(p),
              "key 'security.admin_token_env': environment variable FERRY_TEST_EMPTY_VAR is empty");
  ::unsetenv("FERRY_TEST_EMPTY_VAR");
  p.extra = "security:\n  token_env: \"BAD NAME\"\n";
  ExpectError(Parse(p), "key 'security.token_env': expected an environment variable name");
  ::setenv("FERRY_TEST_SET_VAR", "x", 1);
  p.extra =
      "security:\n  token_file: " + WriteFile("tok2", "x") + "\n  token_env: FERRY_TEST_SET_VAR\n";
  ExpectError(Parse(p), "key 'security.token_env': set only one of 'token_file' and 'token_env'");
  ::unsetenv("FERRY_TEST_SET_VAR");
}

TEST_F(ConfigTest, TlsIsAllOrNothing) {
  const std::string cert = WriteFile("c.pem", "C");
  const std::string key = WriteFile("k.pem", "K", 0644);
  const std::string ca = WriteFile("a.pem", "A");
  Parts p;
  p.extra = "security:\n  tls:\n    cert_file: " + cert + "\n    key_file: " + key + "\n";
  ExpectError(Parse(p), "key 'security.tls.ca_file': is required when any of");
  p.extra += "    ca_file: " + dir_.File("missing.pem") + "\n";
  ExpectError(Parse(p), "key 'security.tls.ca_file': ", "cannot open");
  p.extra = "security:\n  tls:\n    cert_file: " + cert + "\n    key_file: " + key +
            "\n    ca_file: " + ca + "\n";
  absl::StatusOr<Config> c = Parse(p);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->security.tls.enabled());
  EXPECT_THAT(c->warnings,
              ::testing::Contains(HasSubstr("key 'security.tls.key_file': private key")));
}

TEST_F(ConfigTest, AdminTokenWarningOnlyOffLoopback) {
  Parts p;
  p.listen += "  admin: 10.0.0.5:7400\n";
  absl::StatusOr<Config> c = Parse(p);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->warnings, ::testing::Contains(HasSubstr("no admin token")));
}

// Hostile input: each case must end quickly with an error, never hang, crash or exhaust memory.
TEST_F(ConfigTest, BillionLaughsDoesNotExpand) {
  std::string bomb =
      "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n";
  std::string prev = "a";
  for (char name = 'b'; name <= 'j'; ++name) {
    const std::string n(1, name);
    bomb += n + ": &" + n + " [";
    for (int i = 0; i < 9; ++i) bomb += (i ? ",*" : "*") + prev;
    bomb += "]\n";
    prev = n;
  }
  ExpectError(ParseConfig(bomb, "test.yaml", {}), "key 'a': unknown key");
  // The same bomb where a string belongs: refused at once, without walking it.
  Parts p;
  p.top =
      "region: [&a [x,x,x,x,x,x,x,x,x], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], "
      "&c [*b,*b,*b,*b,*b,*b,*b,*b,*b], &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], "
      "&e [*d,*d,*d,*d,*d,*d,*d,*d,*d], &f [*e,*e,*e,*e,*e,*e,*e,*e,*e], "
      "&g [*f,*f,*f,*f,*f,*f,*f,*f,*f], &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]]\n";
  ExpectError(Parse(p), "key 'region': expected a string, got a list");
}

TEST_F(ConfigTest, TooManyNodes) {
  std::string text = Parts{}.Text() + "junk: [";
  for (size_t i = 0; i <= kMaxConfigNodes; ++i) text += "1,";
  text += "1]\n";
  ASSERT_LT(text.size(), kMaxConfigBytes);
  ExpectError(ParseConfig(text, "test.yaml", {}), "has more than 50000 YAML nodes");
}

TEST_F(ConfigTest, DeepNesting) {
  ExpectError(ParseConfig("a: " + std::string(100, '[') + std::string(100, ']'), "test.yaml", {}),
              "nests maps or lists deeper than 32 levels");
  // A megabyte of "[[[[" would make yaml-cpp queue a quarter of a gigabyte of tokens: refused
  // on the raw text first.
  ExpectError(ParseConfig(std::string(kMaxConfigBytes - 1, '['), "test.yaml", {}),
              "has 1048575 '[' or '{' characters, over the limit of 256");
  std::string block;
  for (int i = 0; i < 200; ++i) block += std::string(i, ' ') + "k:\n";
  ExpectError(ParseConfig(block, "test.yaml", {}), "deeper than 32");
  std::string dashes;
  for (int i = 0; i < 100000; ++i) dashes += "- ";
  ExpectError(ParseConfig(dashes, "test.yaml", {}), "deeper than 32");
}

TEST_F(ConfigTest, BinaryGarbage) {
  std::mt19937 rng(42);
  for (int round = 0; round < 50; ++round) {
    std::string garbage(4096, '\0');
    for (char& ch : garbage) ch = static_cast<char>(rng() % 255 + 1);  // no NUL
    absl::StatusOr<Config> c = ParseConfig(garbage, "test.yaml", {});
    ASSERT_FALSE(c.ok());
    EXPECT_THAT(std::string(c.status().message()), ::testing::StartsWith("config test.yaml: "));
    EXPECT_LT(c.status().message().size(), 1000u);
  }
  ExpectError(ParseConfig(std::string("region: east\0\xff\xfe", 16), "test.yaml", {}),
              "contains a NUL byte at offset 12");
}

TEST_F(ConfigTest, AbsurdLengthsAreCutInMessages) {
  Parts p;
  p.extra = std::string(1000, 'k') + ": 1\n";  // YAML caps implicit keys at 1024 chars
  absl::StatusOr<Config> c = Parse(p);
  ExpectError(c, "unknown key");
  EXPECT_LT(c.status().message().size(), 300u);
  p = Parts{};
  p.top = "region: east\ndata_dir: /" + std::string(500000, 'd') + "\nrole: primary\n";
  c = Parse(p);
  ExpectError(c, "key 'data_dir': value is 500001 bytes, over the 4096-byte limit");
  EXPECT_LT(c.status().message().size(), 300u);
  p = Parts{};
  p.top = "region: \"" + std::string(3000, 'e') + "\"\ndata_dir: /d\nrole: primary\n";
  c = Parse(p);
  ExpectError(c, "key 'region': expected 1-32 characters", "(3000 bytes)");
  EXPECT_LT(c.status().message().size(), 300u);
}

// Every key of the engine's table is documented in docs/config.md, in its section's table.
TEST(ConfigDocsTest, EveryEngineKeyIsDocumented) {
  std::ifstream in(std::string(FERRY_SOURCE_DIR) + "/docs/config.md");
  ASSERT_TRUE(in) << "docs/config.md not found";
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string docs = buffer.str();
  for (absl::string_view path : SectionPaths(EngineKeys())) {
    // "security.tls" is documented in the `security` table as `tls.cert_file`.
    const size_t dot = path.find('.');
    const std::string heading =
        path.empty() ? "### Top level" : absl::StrCat("### `", path.substr(0, dot), "`");
    const std::string prefix =
        dot == absl::string_view::npos ? "" : absl::StrCat(path.substr(dot + 1), ".");
    const size_t start = docs.find(heading);
    ASSERT_NE(start, std::string::npos) << heading;
    const std::string table = docs.substr(start, docs.find("\n### ", start + 1) - start);
    for (const std::string& key : OwnKeys(EngineKeys(), path)) {
      EXPECT_THAT(table, HasSubstr(absl::StrCat("`", prefix, key, "`"))) << path << " " << key;
    }
  }
}

}  // namespace
}  // namespace ferry::config
