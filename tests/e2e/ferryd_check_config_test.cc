// `ferryd --config FILE --check-config` on configs an operator gets wrong: ferryd must exit 1 at
// start with one line naming the file, the key, the reason, the line and the column, whether the
// key is the engine's or the Postgres connector's (the `postgres:` section, which ferryd declares
// to the engine's loader). Pins the composition in cmd/ferryd.cc: a ferryd that forgot to
// declare the section would call `postgres` an unknown key; one that read it after the load
// would accept a bad slot (both mutants fail PostgresKeysAreChecked... and UnknownSections...).
// Needs no database.
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/child_process.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Outcome {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

class FerrydCheckConfigTest : public ::testing::Test {
 protected:
  // Writes `yaml` to NAME.yaml and runs ferryd --check-config on it, with `env` ("NAME=value")
  // added to its environment.
  Outcome Check(const std::string& name, const std::string& yaml,
                const std::vector<std::string>& env = {}) {
    path_ = dir_.File(name + ".yaml");
    std::ofstream(path_) << yaml;
    const std::string log = dir_.File(name + ".out");
    auto child = testing::ChildProcess::Spawn(
        {testing::BuiltBinary("ferryd"), "--config", path_, "--check-config"}, log, env);
    EXPECT_TRUE(child.ok()) << child.status();
    if (!child.ok()) return {};
    const int status = (*child)->Wait();
    std::stringstream output;
    output << std::ifstream(log).rdbuf();
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output.str()};
  }

  // The one line ferryd prints for an invalid config.
  std::string Refusal(const std::string& message) const {
    return absl::StrCat("ferryd: config ", path_, ": ", message, "\n");
  }

  testing::TempDir dir_{"ferry-check-config"};
  std::string path_;
};

constexpr char kTop[] = "region: east\ndata_dir: /var/lib/ferry\nrole: primary\n";
constexpr char kPostgres[] =
    "postgres:\n  dsn: \"host=127.0.0.1 port=5432 dbname=app user=ferry\"\n";
constexpr char kRest[] =
    "listen:\n  replication: 127.0.0.1:7401\npeer:\n  replication: 127.0.0.1:7411\n";

TEST_F(FerrydCheckConfigTest, ValidConfigExitsZeroWithItsWarnings) {
  const Outcome o = Check("valid", absl::StrCat(kTop, kPostgres, kRest));
  EXPECT_EQ(o.exit_code, 0) << o.output;
  EXPECT_THAT(o.output, HasSubstr("config " + path_ + " is valid\n"));
  EXPECT_THAT(o.output, HasSubstr("key 'security.token_file': no replication token"));
}

TEST_F(FerrydCheckConfigTest, PostgresKeysAreCheckedAtStartWithLineAndColumn) {
  Outcome o = Check("slot", absl::StrCat(kTop, kPostgres, "  slot: Bad-Slot\n", kRest));
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.output, Refusal("key 'postgres.slot': expected a replication slot name of 1-63 "
                              "characters [a-z0-9_], got \"Bad-Slot\" (line 6, column 9)"));
  o = Check("typo", absl::StrCat(kTop, kPostgres, "  publicaton: ferry\n", kRest));
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.output, Refusal("key 'postgres.publicaton': unknown key; did you mean "
                              "'publication'? (line 6, column 3)"));
  o = Check("nodsn", absl::StrCat(kTop, "postgres:\n  slot: ferry_east\n", kRest));
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.output, Refusal("key 'postgres.dsn': is required"));
  o = Check("password",
            absl::StrCat(kTop, "postgres:\n  dsn: \"host=db password=topsecret\"\n", kRest));
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.output, Refusal("key 'postgres.dsn': must not contain a password; name a file in "
                              "'postgres.password_file' or a variable in 'postgres.password_env' "
                              "instead (line 5, column 8)"));
  EXPECT_THAT(o.output, Not(HasSubstr("topsecret")));
}

// ferryd declares the objects: section too (connectors/s3/objects_config.h): its keys are
// checked at start, and its secrets are read then (a missing variable is named).
TEST_F(FerrydCheckConfigTest, ObjectsKeysAreCheckedAtStart) {
  const std::string objects =
      "objects:\n  endpoint: http://127.0.0.1:7480\n  bucket: Assets\n"
      "  access_key_env: FERRY_CHECK_CONFIG_UNSET_VAR\n";
  Outcome o = Check("bucket", absl::StrCat(kTop, kPostgres, kRest, objects));
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_THAT(o.output, HasSubstr("key 'objects.bucket': expected an S3 bucket name"));
  o = Check("objects_typo", absl::StrCat(kTop, kPostgres, kRest, "objects:\n  endpont: x\n"));
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_THAT(o.output, HasSubstr("key 'objects.endpont': unknown key"));
}

// DESIGN.md: objects: is valid with or without postgres: (a bucket-only region); a config with
// neither (or with only empty sections) replicates nothing and is refused, naming both.
TEST_F(FerrydCheckConfigTest, ObjectsWithoutPostgresIsValidAndNeitherIsRefused) {
  const std::string access = dir_.File("access"), secret = dir_.File("secret");
  std::ofstream(access) << "AKIDEXAMPLE\n";
  std::ofstream(secret) << "wJalrXUtnFEMI/K7MDENG\n";
  chmod(access.c_str(), 0600);
  chmod(secret.c_str(), 0600);
  const std::string objects = absl::StrCat(
      "objects:\n  endpoint: http://127.0.0.1:7480\n  bucket: assets\n  access_key_file: ", access,
      "\n  secret_key_file: ", secret, "\n  events:\n    webhook: { listen: \"127.0.0.1:7403\" }\n",
      "  peer_bucket:\n    endpoint: http://127.0.0.1:7481\n    bucket: west-assets\n"
      "    access_key_file: ",
      access, "\n    secret_key_file: ", secret, "\n");
  Outcome o = Check("bucket_only", absl::StrCat(kTop, kRest, objects));
  EXPECT_EQ(o.exit_code, 0) << o.output;
  EXPECT_THAT(o.output, HasSubstr("config " + path_ + " is valid\n"));
  const std::string neither =
      "key 'postgres': is required unless the config has an 'objects:' section (a region "
      "replicates its database, its bucket, or both)";
  o = Check("neither", absl::StrCat(kTop, kRest));
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.output, Refusal(neither));
  o = Check("both_empty", absl::StrCat(kTop, "postgres:\n", kRest, "objects:\n"));
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.output, Refusal(neither));
  // A bucket-only config is checked like any other: a bad objects key is still refused.
  o = Check("bucket_only_bad",
            absl::StrCat(kTop, kRest, absl::StrReplaceAll(objects, {{"assets", "A"}})));
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_THAT(o.output, HasSubstr("key 'objects.bucket': expected an S3 bucket name"));
}

TEST_F(FerrydCheckConfigTest, UnknownSectionsAndMisplacedKeysAreErrors) {
  Outcome o = Check("section", absl::StrCat(kTop, kPostgres, kRest, "postgress:\n  dsn: x\n"));
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.output,
            Refusal("key 'postgress': unknown key; did you mean 'postgres'? (line 10, column 1)"));
  o = Check("indent", absl::StrCat(kTop, "slot: ferry_east\n", kPostgres, kRest));
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.output, Refusal("key 'slot': unknown key; 'slot' belongs under 'postgres' (check "
                              "the indentation) (line 4, column 1)"));
}

TEST_F(FerrydCheckConfigTest, EngineKeysAreCheckedAsBefore) {
  const Outcome o =
      Check("admin", absl::StrCat(kTop, kPostgres, kRest, "listen:\n  admin: \"7400\"\n"));
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.output, Refusal("key 'listen': is set twice (duplicate key) (line 10, column 1)"));
  const Outcome admin =
      Check("admin2", absl::StrCat(kTop, kPostgres,
                                   "listen:\n  replication: 127.0.0.1:7401\n  admin: \"7400\"\n",
                                   "peer:\n"
                                   "  replication: 127.0.0.1:7411\n"));
  EXPECT_EQ(admin.exit_code, 1);
  EXPECT_EQ(admin.output, Refusal("key 'listen.admin': expected HOST:PORT, got \"7400\" (line 8, "
                                  "column 10)"));
}

// The crash tests' switches (engine/base/kill_point.h) left set outside a test would kill or
// freeze the daemon at that step, a switchover's included, with the old primary fenced: ferryd
// says so at start, as an error, and says nothing when they are unset or empty. Fails if the
// check is removed, moved after --check-config's exit, logged below error level, or counts an
// empty value as set.
TEST_F(FerrydCheckConfigTest, AKillOrPausePointLeftSetIsAnErrorAtStart) {
  const std::string yaml = absl::StrCat(kTop, kPostgres, kRest);
  Outcome o = Check("unset", yaml, {"FERRY_KILL_POINT=", "FERRY_PAUSE_POINT="});
  EXPECT_EQ(o.exit_code, 0) << o.output;
  EXPECT_THAT(o.output, Not(HasSubstr("is set: this process")));
  o = Check(
      "set", yaml,
      {"FERRY_KILL_POINT=receiver.appended@3", "FERRY_PAUSE_POINT=switchover.marker_applied"});
  EXPECT_EQ(o.exit_code, 0) << o.output;
  // At error level (the text format: "TIME LEVEL [REGION] MESSAGE").
  EXPECT_THAT(o.output, HasSubstr("error [east] FERRY_KILL_POINT=receiver.appended@3 is set: this "
                                  "process kills or stops itself there (for tests only)"));
  EXPECT_THAT(o.output,
              HasSubstr("error [east] FERRY_PAUSE_POINT=switchover.marker_applied is "
                        "set: this process kills or stops itself there (for tests only)"));
}

}  // namespace
}  // namespace ferry
