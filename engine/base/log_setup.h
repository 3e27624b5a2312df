// LogSetup: the layout of ferryd's own log lines (config key log.format). Both layouts print
// the same events (every line is the same spdlog call; only the formatter differs):
//   text  2026-12-05T07:13:23.123 info [east] message
//   json  {"time":"2026-12-05T07:13:23.123456Z","level":"info","region":"east","thread":1,
//          "message":"message"}   one object a line, UTC, the message and region JSON-escaped
//
// Example (cmd/ferryd.cc):
//   SetLogFormat(spdlog::default_logger(), config.region, /*json=*/true);
#pragma once

#include <spdlog/logger.h>

#include <memory>
#include <string>

namespace ferry {

// Sets `logger`'s formatter. Not thread-safe with respect to concurrent logging setup; call
// before other threads log.
void SetLogFormat(spdlog::logger& logger, const std::string& region, bool json);

// `text` as the inside of a JSON string (quotes, backslashes and control characters escaped;
// bytes >= 0x80 are passed through, so UTF-8 stays UTF-8).
std::string JsonEscape(std::string_view text);

}  // namespace ferry
