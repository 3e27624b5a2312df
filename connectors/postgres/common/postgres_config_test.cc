// The `postgres:` section read as ferryd reads it: the engine's loader with this connector's
// section declared. Messages are pinned byte for byte where they were before the section moved
// out of the engine (key path, line and column included).
#include "connectors/postgres/common/postgres_config.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/config/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace ferry::pg {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// A config assembled from parts, so each test changes only what it is about.
struct Parts {
  std::string top = "region: east\ndata_dir: /var/lib/ferry\nrole: primary\n";
  std::string postgres = "  dsn: \"host=127.0.0.1 port=5432 dbname=app user=ferry\"\n";
  std::string listen = "  replication: 127.0.0.1:7401\n";
  std::string peer = "  replication: 127.0.0.1:7411\n";
  std::string extra;  // further sections, at the top level

  std::string Text() const {
    return absl::StrCat(top, "postgres:\n", postgres, "listen:\n", listen, "peer:\n", peer, extra);
  }
};

// What ferryd gets from one load.
struct Loaded {
  config::Config engine;
  PostgresConfig postgres;
  bool present = false;  // PostgresConfigSection::present()
};

absl::StatusOr<Loaded> ParseText(const std::string& text) {
  PostgresConfigSection section;
  absl::StatusOr<config::Config> c =
      config::ParseConfig(text, "test.yaml", {.connectors = {&section}});
  if (!c.ok()) return c.status();
  return Loaded{*std::move(c), section.config(), section.present()};
}

absl::StatusOr<Loaded> Parse(const Parts& parts) { return ParseText(parts.Text()); }

// Expects kInvalidArgument whose message starts with "config test.yaml: " and holds `parts`.
template <typename... M>
void ExpectError(const absl::StatusOr<Loaded>& result, M... parts) {
  ASSERT_FALSE(result.ok()) << result->postgres.DebugString();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  EXPECT_THAT(std::string(result.status().message()),
              AllOf(::testing::StartsWith("config test.yaml: "), HasSubstr(parts)...));
}

class PostgresConfigTest : public ::testing::Test {
 protected:
  // Writes `content` to a file in the test directory with `mode`; returns its absolute path.
  std::string WriteFile(const std::string& name, std::string_view content, mode_t mode = 0600) {
    return dir_.Write(name, content, mode);
  }

  ::ferry::testing::TempDir dir_{"ferry-pg-config-test"};
};

TEST_F(PostgresConfigTest, MinimalSectionGetsDefaults) {
  absl::StatusOr<Loaded> c = Parse(Parts{});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->postgres.dsn, "host=127.0.0.1 port=5432 dbname=app user=ferry");
  EXPECT_FALSE(c->postgres.password.is_set());
  EXPECT_EQ(c->postgres.publication, "ferry");
  EXPECT_EQ(c->postgres.slot, "ferry_east");
  EXPECT_TRUE(c->postgres.tables.empty());
  EXPECT_TRUE(c->postgres.snapshot);
  EXPECT_EQ(c->postgres.keyless_tables, KeylessTablePolicy::kReplicaIdentityFull);
  EXPECT_EQ(c->postgres.commit_delay_us, 8000);
  EXPECT_EQ(c->postgres.commit_siblings, 4);
  EXPECT_EQ(c->postgres.ConnectionString(), c->postgres.dsn);
  // The engine's part is read as before, warnings included.
  EXPECT_EQ(c->engine.region, "east");
  EXPECT_THAT(c->engine.warnings,
              ElementsAre(HasSubstr("security.token_file"), HasSubstr("security.tls")));
}

TEST_F(PostgresConfigTest, DefaultSlotReplacesDashesOfTheRegion) {
  Parts p;
  p.top = "region: us-east-1\ndata_dir: /d\nrole: standby\n";
  absl::StatusOr<Loaded> c = Parse(p);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->postgres.slot, "ferry_us_east_1");
  EXPECT_EQ(DefaultSlotName("a-b-c"), "ferry_a_b_c");
}

TEST_F(PostgresConfigTest, FullSection) {
  const std::string pg_password = WriteFile("pg", "s3cret-pg\n");
  Parts p;
  p.postgres = absl::StrCat(
      "  dsn: \"postgresql://ferry@db.internal:5432/app?sslmode=require\"\n"
      "  password_file: ",
      pg_password,
      "\n  publication: ferry_pub\n  slot: ferry_slot_east\n"
      "  tables: [public.accounts, \"billing.invoices\"]\n  snapshot: false\n");
  absl::StatusOr<Loaded> c = Parse(p);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->postgres.password.value, "s3cret-pg");
  EXPECT_EQ(c->postgres.password.source, "file " + pg_password);
  EXPECT_EQ(c->postgres.publication, "ferry_pub");
  EXPECT_EQ(c->postgres.slot, "ferry_slot_east");
  EXPECT_THAT(c->postgres.tables, ElementsAre("public.accounts", "billing.invoices"));
  EXPECT_FALSE(c->postgres.snapshot);
  // The dump is the block the engine's DebugString showed, the password masked.
  EXPECT_EQ(c->postgres.DebugString(),
            absl::StrCat("postgres:\n"
                         "  dsn: \"postgresql://ferry@db.internal:5432/app?sslmode=require\"\n"
                         "  password: <secret from file ",
                         pg_password,
                         ">\n"
                         "  publication: ferry_pub\n"
                         "  slot: ferry_slot_east\n"
                         "  tables: [public.accounts, billing.invoices]\n"
                         "  snapshot: false\n"
                         "  keyless_tables: replica_identity_full\n"
                         "  commit_delay_us: 8000\n"
                         "  commit_siblings: 4\n"));
}

TEST_F(PostgresConfigTest, ConnectionStringQuotesThePassword) {
  PostgresConfig c;
  c.dsn = "host=db dbname=app";
  c.password = {.source = "env X", .value = R"(it's a \secret)"};
  EXPECT_EQ(c.ConnectionString(), R"(host=db dbname=app password='it\'s a \\secret')");
  EXPECT_THAT(c.DebugString(), AllOf(HasSubstr("<secret from env X>"), Not(HasSubstr("secret)"))));
}

// A URI (which the config accepts) turns into key=value, so that the keys ferryd's connections
// append (application_name, the password) are keys of their own, not part of the URI.
TEST_F(PostgresConfigTest, AUriDsnTakesTheKeysFerrydAppends) {
  PostgresConfig c;
  c.dsn = "postgresql://ferry@db.example:5433/my%20app%27s%5Cdb?sslmode=disable&connect_timeout=5";
  c.password = {.source = "env X", .value = "s3cret"};
  const std::string dsn = c.ConnectionString() + " application_name=ferry_capture";
  char* err = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &err);
  ASSERT_NE(options, nullptr) << (err != nullptr ? err : "");
  std::map<std::string, std::string> keys;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) keys[o->keyword] = o->val;
  }
  PQconninfoFree(options);
  EXPECT_EQ(keys, (std::map<std::string, std::string>{{"user", "ferry"},
                                                      {"host", "db.example"},
                                                      {"port", "5433"},
                                                      {"dbname", R"(my app's\db)"},
                                                      {"sslmode", "disable"},
                                                      {"connect_timeout", "5"},
                                                      {"password", "s3cret"},
                                                      {"application_name", "ferry_capture"}}));
  // One libpq refuses (the config does too) gets no password: libpq's error quotes it whole.
  c.dsn = "postgresql://ferry@db.example:5433/app?sslmode=nonsense=x";
  EXPECT_EQ(c.ConnectionString(), c.dsn);
}

TEST_F(PostgresConfigTest, DsnIsRequiredInASection) {
  Parts p;
  p.postgres = "  publication: ferry\n";
  ExpectError(Parse(p), "key 'postgres.dsn': is required");
  absl::StatusOr<Loaded> with = Parse(Parts());
  ASSERT_TRUE(with.ok()) << with.status();
  EXPECT_TRUE(with->present);
}

// No section, or "postgres:" with no value: no database (a bucket-only region). The section
// reads fine and says it is absent; whether the config replicates anything at all is ferryd's
// check (ferryd_check_config_test), since it spans every connector.
TEST_F(PostgresConfigTest, AnAbsentOrEmptySectionIsNoDatabase) {
  absl::StatusOr<Loaded> none = ParseText(
      "region: east\ndata_dir: /d\nrole: primary\nlisten:\n  replication: "
      "127.0.0.1:7401\npeer:\n  replication: 127.0.0.1:7411\n");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->present);
  EXPECT_EQ(none->postgres.dsn, "");
  Parts p;
  p.postgres = "";  // "postgres:" with no value counts as an empty section
  absl::StatusOr<Loaded> empty = Parse(p);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_FALSE(empty->present);
}

// postgres.keyless_tables: one of two names; anything else (another spelling, a number, a
// list, a map, an empty or huge value) is refused with the key named.
TEST_F(PostgresConfigTest, KeylessTablesTakesOneOfTwoNames) {
  Parts p;
  p.postgres += "  keyless_tables: refuse\n";
  absl::StatusOr<Loaded> c = Parse(p);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->postgres.keyless_tables, KeylessTablePolicy::kRefuse);
  EXPECT_THAT(c->postgres.DebugString(), HasSubstr("keyless_tables: refuse"));
  p = Parts{};
  p.postgres += "  keyless_tables: replica_identity_full\n";
  c = Parse(p);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->postgres.keyless_tables, KeylessTablePolicy::kReplicaIdentityFull);

  for (const std::string& hostile :
       std::vector<std::string>{"full", "REFUSE", "\"\"", "1", "[refuse]", "{a: b}",
                                "\"refuse; DROP TABLE x\"", std::string(5000, 'r')}) {
    p = Parts{};
    p.postgres += "  keyless_tables: " + hostile + "\n";
    ExpectError(Parse(p), "key 'postgres.keyless_tables'");
  }
  p = Parts{};
  p.postgres += "  keyless_tables: full\n";
  ExpectError(Parse(p), "expected one of replica_identity_full, refuse");
}

// postgres.commit_delay_us (microseconds, 0: never wait) and postgres.commit_siblings (a count,
// 0: whatever the rate) are bounded integers; anything else is refused with the key named.
TEST_F(PostgresConfigTest, CommitDelayAndSiblingsAreBoundedIntegers) {
  struct IntKey {
    std::string name;
    int PostgresConfig::*field;
    std::vector<std::pair<std::string, int>> valid;
    std::vector<std::string> refused;
  };
  const std::vector<std::string> never = {
      "\"\"", "[1]", "{a: b}", "1.5", "99999999999999999999999", std::string(5000, '9')};
  const std::vector<IntKey> keys = {
      {"commit_delay_us",
       &PostgresConfig::commit_delay_us,
       {{"0", 0}, {"250", 250}, {"100000", 100000}},
       {"-1", "100001", "1ms"}},
      {"commit_siblings",
       &PostgresConfig::commit_siblings,
       {{"0", 0}, {"16", 16}, {"10000", 10000}},
       {"-1", "10001", "4 transactions"}},
  };
  for (const IntKey& key : keys) {
    for (const auto& [text, want] : key.valid) {
      Parts p;
      p.postgres += "  " + key.name + ": " + text + "\n";
      absl::StatusOr<Loaded> c = Parse(p);
      ASSERT_TRUE(c.ok()) << key.name << ": " << c.status();
      EXPECT_EQ(c->postgres.*key.field, want) << key.name;
    }
    std::vector<std::string> hostile = key.refused;
    hostile.insert(hostile.end(), never.begin(), never.end());
    for (const std::string& text : hostile) {
      Parts p;
      p.postgres += "  " + key.name + ": " + text + "\n";
      ExpectError(Parse(p), "key 'postgres." + key.name + "'");
    }
  }
}

TEST_F(PostgresConfigTest, WrongTypes) {
  Parts p;
  p.postgres += "  snapshot: yes\n";
  ExpectError(Parse(p), "key 'postgres.snapshot': expected true or false, got \"yes\"");
  p = Parts{};
  p.postgres += "  tables: public.accounts\n";
  ExpectError(Parse(p), "key 'postgres.tables': expected a list");
  p = Parts{};
  p.postgres += "  tables: [public.a, {x: 1}]\n";
  ExpectError(Parse(p), "key 'postgres.tables[1]': expected \"schema.table\", got a map");
  p = Parts{};
  p.postgres = "  dsn: {a: 1}\n";
  ExpectError(Parse(p), "key 'postgres.dsn': expected a string, got a map (line 5, column 8)");
  absl::StatusOr<Loaded> c = ParseText("region: east\ndata_dir: /d\nrole: primary\npostgres: 4\n");
  ExpectError(c, "key 'postgres': expected a map of keys, got the scalar \"4\" at line 4");
}

TEST_F(PostgresConfigTest, ImpossibleValuesNameTheKeyLineAndColumn) {
  Parts p;
  p.postgres += "  slot: Bad-Slot\n";
  absl::StatusOr<Loaded> c = Parse(p);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(std::string(c.status().message()),
            "config test.yaml: key 'postgres.slot': expected a replication slot name of 1-63 "
            "characters [a-z0-9_], got \"Bad-Slot\" (line 6, column 9)");
  p = Parts{};
  p.postgres += "  publication: " + std::string(64, 'p') + "\n";
  ExpectError(Parse(p), "key 'postgres.publication': expected a lower-case Postgres identifier");
  p = Parts{};
  p.postgres += "  publication: \"drop table x; --\"\n";
  ExpectError(Parse(p), "key 'postgres.publication'");
  p = Parts{};
  p.postgres += "  tables: [accounts]\n";
  ExpectError(Parse(p), "key 'postgres.tables[0]': expected \"schema.table\"");
  p = Parts{};
  p.postgres += "  tables: [public.a, public.b, public.a]\n";
  ExpectError(Parse(p), "key 'postgres.tables[2]': table \"public.a\" is listed twice");
}

TEST_F(PostgresConfigTest, UnknownKeysAreErrorsWithSuggestions) {
  Parts p;
  p.postgres += "  publicaton: ferry\n";
  ExpectError(Parse(p), "key 'postgres.publicaton': unknown key; did you mean 'publication'?");
  p = Parts{};
  p.postgres = "  dns: \"host=x\"\n";  // reported as a typo, not as "dsn is required"
  ExpectError(Parse(p), "key 'postgres.dns': unknown key; did you mean 'dsn'?");
  p = Parts{};
  p.top += "slot: ferry_east\n";
  ExpectError(Parse(p), "key 'slot': unknown key; 'slot' belongs under 'postgres'");
  p = Parts{};
  p.postgres += "  admin: 127.0.0.1:7400\n";
  ExpectError(Parse(p), "key 'postgres.admin': unknown key; 'admin' belongs under 'listen'");
  p = Parts{};
  p.listen += "  dsn: x\n";
  ExpectError(Parse(p), "key 'listen.dsn': unknown key; 'dsn' belongs under 'postgres'");
  absl::StatusOr<Loaded> c = ParseText(absl::StrCat(
      "region: east\ndata_dir: /d\nrole: primary\npostgre:\n", Parts{}.postgres, "listen:\n"));
  ExpectError(c, "key 'postgre': unknown key; did you mean 'postgres'? (line 4, column 1)");
  p = Parts{};
  p.postgres += "  slot: a\n  slot: b\n";
  ExpectError(Parse(p), "key 'postgres.slot': is set twice (duplicate key) (line 7, column 3)");
}

TEST_F(PostgresConfigTest, ErrorsComeInDocumentSchemaOrder) {
  // The top level first, then the postgres section, then the engine's sections: as before the
  // section moved out of the engine.
  Parts p;
  p.top = "region: East\ndata_dir: /d\nrole: primary\n";
  p.postgres += "  slot: Bad-Slot\n";
  ExpectError(Parse(p), "key 'region'");
  p = Parts{};
  p.postgres += "  slot: Bad-Slot\n";
  p.listen += "  admin: \"7400\"\n";
  ExpectError(Parse(p), "key 'postgres.slot'");
}

TEST_F(PostgresConfigTest, PasswordFromFileIsTrimmedAndPermissionsWarned) {
  const std::string path = WriteFile("pw", "hunter2\r\n\n", 0644);
  Parts p;
  p.postgres += "  password_file: " + path + "\n";
  p.extra = "security:\n  admin_token_file: " + path + "\n";
  absl::StatusOr<Loaded> c = Parse(p);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->postgres.password.value, "hunter2");
  // The section's warnings join the engine's, in document-schema order.
  EXPECT_THAT(c->engine.warnings,
              ElementsAre(AllOf(HasSubstr("key 'postgres.password_file'"),
                                HasSubstr("readable by group or others (mode 0644)")),
                          HasSubstr("key 'security.admin_token_file'"),
                          HasSubstr("key 'security.token_file'"), HasSubstr("key 'security.tls'")));
  for (const std::string& w : c->engine.warnings) EXPECT_THAT(w, Not(HasSubstr("hunter2")));
  EXPECT_THAT(c->postgres.DebugString(), Not(HasSubstr("hunter2")));
}

TEST_F(PostgresConfigTest, PasswordErrors) {
  Parts p;
  p.postgres += "  password_file: " + dir_.File("absent") + "\n";
  ExpectError(Parse(p), "key 'postgres.password_file': secret file ",
              "cannot open: No such file or directory");
  p = Parts{};
  p.postgres += "  password_file: secrets/pg\n";
  ExpectError(Parse(p), "key 'postgres.password_file': expected an absolute path");
  p = Parts{};
  p.postgres += "  password_file: " + WriteFile("empty", "\n") + "\n";
  ExpectError(Parse(p), "key 'postgres.password_file': secret file ", "is empty");
  p = Parts{};
  p.postgres +=
      "  password_file: " + WriteFile("big", std::string(config::kMaxSecretBytes + 1, 'x')) + "\n";
  ExpectError(Parse(p), "key 'postgres.password_file': secret file ", "over the 64KiB limit");
  ::setenv("FERRY_TEST_SET_VAR", "x", 1);
  p = Parts{};
  p.postgres +=
      "  password_file: " + WriteFile("pw2", "x") + "\n  password_env: FERRY_TEST_SET_VAR\n";
  ExpectError(Parse(p),
              "key 'postgres.password_env': set only one of 'password_file' and 'password_env'");
  p = Parts{};
  p.postgres += "  password_env: FERRY_TEST_SET_VAR\n";
  absl::StatusOr<Loaded> c = Parse(p);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->postgres.password.source, "env FERRY_TEST_SET_VAR");
  ::unsetenv("FERRY_TEST_SET_VAR");
  ::unsetenv("FERRY_TEST_UNSET_VAR");
  p = Parts{};
  p.postgres += "  password_env: FERRY_TEST_UNSET_VAR\n";
  ExpectError(Parse(p),
              "key 'postgres.password_env': environment variable FERRY_TEST_UNSET_VAR is not set");
}

TEST_F(PostgresConfigTest, PasswordInDsnIsRefusedWithoutEchoingIt) {
  for (const std::string dsn :
       {"host=db password=topsecret dbname=app", "host=db PASSWORD = 'top secret'",
        "postgresql://ferry:topsecret@db:5432/app",
        "postgres://db/app?user=ferry&password=topsecret",
        "postgres://db/app?user=ferry&%70assword=topsecret"}) {
    Parts p;
    p.postgres = "  dsn: \"" + dsn + "\"\n";
    absl::StatusOr<Loaded> c = Parse(p);
    ExpectError(c,
                "key 'postgres.dsn': must not contain a password; name a file in "
                "'postgres.password_file' or a variable in 'postgres.password_env' instead "
                "(line 5, column 8)");
    EXPECT_THAT(std::string(c.status().message()), Not(HasSubstr("topsecret")));
  }
  Parts p;
  p.postgres = "  dsn: \"host='unterminated password=topsecret\"\n";
  absl::StatusOr<Loaded> c = Parse(p);
  ExpectError(c, "key 'postgres.dsn': malformed libpq connection string");
  EXPECT_THAT(std::string(c.status().message()), Not(HasSubstr("topsecret")));
  for (const std::string uri :
       {"postgresql://[::1/app?user=topsecret", "postgresql://ferry@db/app?sslmode=topsecret=x"}) {
    p.postgres = "  dsn: \"" + uri + "\"\n";
    c = Parse(p);
    ExpectError(c, "key 'postgres.dsn': malformed libpq connection URI");
    EXPECT_THAT(std::string(c.status().message()), Not(HasSubstr("topsecret")));
  }
  p.postgres = "  dsn: \"   \"\n";
  ExpectError(Parse(p), "key 'postgres.dsn': expected a libpq connection string");
}

// Hostile input inside the section is bounded as anywhere else in the file.
TEST_F(PostgresConfigTest, BillionLaughsWhereAListOfNamesBelongs) {
  Parts p;
  p.postgres +=
      "  tables: [&a [x,x,x,x,x,x,x,x,x], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], "
      "&c [*b,*b,*b,*b,*b,*b,*b,*b,*b], &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], "
      "&e [*d,*d,*d,*d,*d,*d,*d,*d,*d], &f [*e,*e,*e,*e,*e,*e,*e,*e,*e], "
      "&g [*f,*f,*f,*f,*f,*f,*f,*f,*f], &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]]\n";
  ExpectError(Parse(p), "key 'postgres.tables[0]': expected \"schema.table\", got a list");
  p = Parts{};
  p.postgres += "  slot: \"" + std::string(5000, 's') + "\"\n";
  ExpectError(Parse(p), "key 'postgres.slot': value is 5000 bytes, over the 4096-byte limit");
}

// docs/config.md documents every key of the section in its "postgres" table.
TEST(PostgresConfigDocsTest, EveryKeyIsDocumented) {
  std::ifstream in(std::string(FERRY_SOURCE_DIR) + "/docs/config.md");
  ASSERT_TRUE(in) << "docs/config.md not found";
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string docs = buffer.str();
  const size_t start = docs.find("### `postgres`");
  ASSERT_NE(start, std::string::npos);
  const std::string table = docs.substr(start, docs.find("\n### ", start + 1) - start);
  for (const std::string& key : PostgresConfigSection().keys()) {
    EXPECT_THAT(table, HasSubstr("| `" + key + "`")) << key;
  }
}

}  // namespace
}  // namespace ferry::pg
