// The fence's connection string (no database needed): the operator's timeouts stay, the
// session's name is the fence's, and a DSN libpq cannot parse is refused without quoting it.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "connectors/postgres/common/pg_connection.h"
#include "connectors/postgres/source/postgres_fence.h"

namespace ferry::pg {
namespace {

// The keys libpq reads from the fence's connection string for `dsn` (the last value of each).
std::map<std::string, std::string> FenceKeys(const std::string& dsn) {
  std::map<std::string, std::string> keys;
  absl::StatusOr<std::string> conninfo = FenceConnectionString(dsn);
  if (!conninfo.ok()) {
    ADD_FAILURE() << conninfo.status();
    return keys;
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> parsed = DsnKeys(*conninfo);
  if (!parsed.ok()) {
    ADD_FAILURE() << parsed.status();
    return keys;
  }
  for (auto& [key, value] : *parsed) keys[key] = value;
  return keys;
}

// The fence's session is bounded by keepalives and tcp_user_timeout unless the operator's DSN
// sets its own (which then stay, key=value or URI); its name is always ferry_fence, which the
// fence's SQL functions tell it by. A DSN libpq cannot parse is refused without quoting it.
TEST(FenceConnectionStringTest, TheOperatorsTimeoutsStayAndTheSessionNameIsTheFences) {
  std::map<std::string, std::string> keys = FenceKeys(
      "host=db.example port=5433 keepalives_idle=77 tcp_user_timeout=5000 application_name=app");
  EXPECT_EQ(keys["host"], "db.example");
  EXPECT_EQ(keys["port"], "5433");
  EXPECT_EQ(keys["keepalives_idle"], "77");
  EXPECT_EQ(keys["tcp_user_timeout"], "5000");
  EXPECT_EQ(keys["application_name"], "ferry_fence");
  EXPECT_EQ(keys["keepalives"], "1");
  EXPECT_EQ(keys["keepalives_interval"], "10");
  EXPECT_EQ(keys["keepalives_count"], "3");
  EXPECT_EQ(keys["connect_timeout"], "10");

  keys = FenceKeys("postgresql://u@db.example:5433/app?keepalives_idle=5&connect_timeout=30");
  EXPECT_EQ(keys["user"], "u");
  EXPECT_EQ(keys["dbname"], "app");
  EXPECT_EQ(keys["keepalives_idle"], "5");
  EXPECT_EQ(keys["connect_timeout"], "30");
  EXPECT_EQ(keys["tcp_user_timeout"], "15000");
  EXPECT_EQ(keys["application_name"], "ferry_fence");

  keys = FenceKeys("dbname=app");
  EXPECT_EQ(keys["keepalives_idle"], "30");
  EXPECT_EQ(keys["tcp_user_timeout"], "15000");

  absl::StatusOr<std::string> bad = FenceConnectionString("postgresql://u:s3cret@[::1");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(absl::StrContains(bad.status().message(), "s3cret")) << bad.status();
}

}  // namespace
}  // namespace ferry::pg
