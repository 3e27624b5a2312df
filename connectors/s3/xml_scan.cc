#include "connectors/s3/xml_scan.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "engine/base/markup_text.h"

namespace ferry::s3 {
namespace {

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Finds the element starting at or after `from`: the position of its '<', its name and the end
// of its start tag. npos when none.
struct Tag {
  size_t open = std::string_view::npos;
  std::string_view name;
  size_t content = 0;  // just past '>'
  bool self_closing = false;
};

Tag NextStartTag(std::string_view xml, size_t from) {
  Tag tag;
  while (true) {
    size_t lt = xml.find('<', from);
    if (lt == std::string_view::npos || lt + 1 >= xml.size()) return Tag{};
    char c = xml[lt + 1];
    if (c == '/' || c == '?' || c == '!') {
      from = lt + 1;
      continue;
    }
    size_t gt = xml.find('>', lt);
    if (gt == std::string_view::npos) return Tag{};
    size_t name_end = lt + 1;
    while (name_end < gt && xml[name_end] != ' ' && xml[name_end] != '/' && xml[name_end] != '\t' &&
           xml[name_end] != '\n' && xml[name_end] != '\r') {
      ++name_end;
    }
    tag.open = lt;
    tag.name = xml.substr(lt + 1, name_end - lt - 1);
    tag.content = gt + 1;
    tag.self_closing = xml[gt - 1] == '/';
    return tag;
  }
}

}  // namespace

std::vector<XmlElement> XmlChildren(std::string_view xml, const std::vector<std::string>& names) {
  std::vector<XmlElement> out;
  size_t pos = 0;
  while (true) {
    Tag tag = NextStartTag(xml, pos);
    if (tag.open == std::string_view::npos) return out;
    bool wanted = false;
    for (const std::string& n : names) wanted = wanted || tag.name == n;
    if (!wanted) {
      pos = tag.content;
      continue;
    }
    if (tag.self_closing) {
      out.push_back({tag.name, {}});
      pos = tag.content;
      continue;
    }
    // S3's containers do not nest in themselves: the first matching end tag closes it.
    const std::string close = "</" + std::string(tag.name) + ">";
    size_t end = xml.find(close, tag.content);
    if (end == std::string_view::npos) return out;  // truncated: keep what was complete
    out.push_back({tag.name, xml.substr(tag.content, end - tag.content)});
    pos = end + close.size();
  }
}

std::string XmlText(std::string_view xml, std::string_view name) {
  std::vector<XmlElement> found = XmlChildren(xml, {std::string(name)});
  if (found.empty()) return "";
  return XmlUnescape(found.front().inner);
}

std::string XmlUnescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '&') {
      out.push_back(text[i]);
      continue;
    }
    size_t semi = text.find(';', i);
    if (semi == std::string_view::npos || semi - i > 12) {
      out.push_back('&');
      continue;
    }
    std::string_view entity = text.substr(i + 1, semi - i - 1);
    if (entity == "amp") {
      out.push_back('&');
    } else if (entity == "lt") {
      out.push_back('<');
    } else if (entity == "gt") {
      out.push_back('>');
    } else if (entity == "quot") {
      out.push_back('"');
    } else if (entity == "apos") {
      out.push_back('\'');
    } else if (entity.size() >= 2 && entity[0] == '#') {
      std::string digits(entity.substr(entity[1] == 'x' ? 2 : 1));
      char* end = nullptr;
      unsigned long cp = std::strtoul(digits.c_str(), &end, entity[1] == 'x' ? 16 : 10);
      if (digits.empty() || *end != '\0' || cp > 0x10FFFF) {
        out.push_back('&');
        continue;
      }
      AppendUtf8(static_cast<uint32_t>(cp), &out);
    } else {
      out.push_back('&');
      continue;
    }
    i = semi;
  }
  return out;
}

std::string XmlEscape(std::string_view text) { return MarkupEscape(text); }

}  // namespace ferry::s3
