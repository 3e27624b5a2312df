// `text` with the five characters markup gives meaning to escaped as references (& < > " '), so
// that it reads as text in HTML and in XML alike: the status page's values, an S3 request's keys.
#pragma once

#include <string>
#include <string_view>

namespace ferry {

inline std::string MarkupEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace ferry
