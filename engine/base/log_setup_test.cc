// log.format: the JSON layout is one valid object a line carrying exactly the message the text
// layout carries, with every character that would break JSON escaped.
#include "engine/base/log_setup.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

#include "absl/strings/match.h"

namespace ferry {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

std::string LogOnce(bool json, const std::string& region, const std::string& message) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("test", sink);
  SetLogFormat(logger, region, json);
  logger.warn("{}", message);
  logger.flush();
  return out.str();
}

TEST(LogSetupTest, JsonIsOneObjectALineWithTheSameMessageAsText) {
  // gtest's POSIX regex has no \n: each line's newline is checked apart.
  const std::string text = LogOnce(false, "east", "apply: table public.t stopped");
  ASSERT_TRUE(absl::EndsWith(text, "\n"));
  EXPECT_THAT(text.substr(0, text.size() - 1),
              MatchesRegex(R"(....-..-..T..:..:..\.... warning \[east\] apply: table )"
                           R"(public\.t stopped)"));
  const std::string json = LogOnce(true, "east", "apply: table public.t stopped");
  ASSERT_TRUE(absl::EndsWith(json, "\n"));
  EXPECT_THAT(json.substr(0, json.size() - 1),
              MatchesRegex(R"(\{"time":"....-..-..T..:..:..\.......Z","level":"warning",)"
                           R"("region":"east","thread":[0-9]+,)"
                           R"("message":"apply: table public\.t stopped"\})"));
}

TEST(LogSetupTest, JsonEscapesQuotesBackslashesNewlinesAndControlCharacters) {
  const std::string json =
      LogOnce(true, "east", std::string("a \"quoted\" C:\\path\nnext\tline\x01 é %v"));
  EXPECT_THAT(json, HasSubstr(R"("message":"a \"quoted\" C:\\path\nnext\tline\u0001 é %v"})"));
  // Exactly one line: the message's newline did not split the object.
  EXPECT_EQ(std::count(json.begin(), json.end(), '\n'), 1);
}

TEST(LogSetupTest, RegionIsEscapedInTheJsonPattern) {
  // Regions are [a-z0-9_-] (the config checks), but the formatter must not depend on it.
  const std::string json = LogOnce(true, "we\"st%n", "m");
  EXPECT_THAT(json, HasSubstr(R"("region":"we\"st%n",)"));
}

}  // namespace
}  // namespace ferry
