// Helpers of the config tests (config_test.cc, config_connector_test.cc): a config assembled
// from parts, parsed as ferryd loads it, an expected error's form, and a fixture with a
// directory for config and secret files.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/config/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace ferry::config {

// A config assembled from parts, so each test changes only what it is about.
struct Parts {
  std::string top = "region: east\ndata_dir: /var/lib/ferry\nrole: primary\n";
  std::string listen = "  replication: 127.0.0.1:7401\n";
  std::string peer = "  replication: 127.0.0.1:7411\n";
  std::string extra;  // further sections, at the top level

  std::string Text() const {
    return absl::StrCat(top, "listen:\n", listen, "peer:\n", peer, extra);
  }
};

// Strict, as ferryd loads: every top-level key is the engine's (no connector is declared here;
// connector sections have their own tests in config_connector_test.cc and in their connector).
inline absl::StatusOr<Config> Parse(const Parts& parts) {
  return ParseConfig(parts.Text(), "test.yaml", LoadOptions{});
}

// Expects kInvalidArgument whose message starts with "config test.yaml: " and holds `parts`.
template <typename... M>
void ExpectError(const absl::StatusOr<Config>& result, M... parts) {
  ASSERT_FALSE(result.ok()) << result->DebugString();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  EXPECT_THAT(std::string(result.status().message()),
              ::testing::AllOf(::testing::StartsWith("config test.yaml: "),
                               ::testing::HasSubstr(parts)...));
}

class ConfigTest : public ::testing::Test {
 protected:
  // Writes `content` to a file in the test directory with `mode`; returns its absolute path.
  std::string WriteFile(const std::string& name, std::string_view content, mode_t mode = 0600) {
    return dir_.Write(name, content, mode);
  }

  ::ferry::testing::TempDir dir_{"ferry-config-test"};
};

}  // namespace ferry::config
