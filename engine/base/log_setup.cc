#include "engine/base/log_setup.h"

#include <spdlog/pattern_formatter.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ferry {
namespace {

// %* in the pattern: the message, JSON-escaped.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string escaped =
        JsonEscape(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

}  // namespace

std::string JsonEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

void SetLogFormat(spdlog::logger& logger, const std::string& region, bool json) {
  if (!json) {
    logger.set_formatter(std::make_unique<spdlog::pattern_formatter>(
        absl::StrCat("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [", region, "] %v")));
    return;
  }
  // The region goes into the pattern escaped, and '%' doubled (spdlog's pattern escape).
  std::string quoted_region;
  for (char c : JsonEscape(region)) {
    quoted_region += c;
    if (c == '%') quoted_region += '%';
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<JsonMessageFlag>('*').set_pattern(
      absl::StrCat(R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","region":")", quoted_region,
                   R"(","thread":%t,"message":"%*"})"));
  logger.set_formatter(std::move(formatter));
}

}  // namespace ferry
