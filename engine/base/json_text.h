// `text` as a JSON string literal (quotes, backslashes and control characters escaped): for
// ferryctl's --json output and the rows a rejoin keeps in the quarantine.
#pragma once

#include <string>

#include "absl/strings/str_format.h"

namespace ferry {

inline std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace ferry
