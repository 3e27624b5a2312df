#include "engine/config/value_parsers.h"

#include <arpa/inet.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "engine/config/limits.h"

namespace ferry::config {
namespace {

// Dotted-quad IPv4: four decimal octets 0-255 without leading zeros.
bool IsIPv4(absl::string_view s) {
  int parts = 0;
  size_t i = 0;
  while (true) {
    size_t start = i;
    while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) ++i;
    const size_t len = i - start;
    if (len == 0 || len > 3 || (len > 1 && s[start] == '0')) return false;
    int value = 0;
    for (size_t k = start; k < i; ++k) value = value * 10 + (s[k] - '0');
    if (value > 255) return false;
    ++parts;
    if (i == s.size()) return parts == 4;
    if (s[i] != '.' || parts == 4) return false;
    ++i;
  }
}

// A DNS host name: dot-separated labels of [A-Za-z0-9_-], 1..63 bytes, not starting or ending
// with '-'; 253 bytes at most; one trailing dot allowed. ('_' is not RFC 1123 but appears in
// container service names, and resolvers accept it.)
bool IsHostName(absl::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('.', start);
    if (end == absl::string_view::npos) end = s.size();
    absl::string_view label = s.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
        return false;
      }
    }
    start = end + 1;
  }
  return true;
}

absl::Status HostPortError(absl::string_view text) {
  return absl::InvalidArgumentError(absl::StrCat("expected HOST:PORT, got ", Quote(text)));
}

// Strict non-negative decimal integer of at most `max_digits` digits.
std::optional<uint64_t> ParseDigits(absl::string_view s, size_t max_digits) {
  if (s.empty() || s.size() > max_digits) return std::nullopt;
  uint64_t value = 0;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

}  // namespace

std::string Quote(absl::string_view text) {
  if (text.size() <= kMaxQuotedBytes) return absl::StrCat("\"", absl::CEscape(text), "\"");
  return absl::StrCat("\"", absl::CEscape(text.substr(0, kMaxQuotedBytes)), "\"... (", text.size(),
                      " bytes)");
}

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<HostPort> ParseHostPort(std::string_view std_text) {
  const absl::string_view text(std_text.data(), std_text.size());
  if (text.size() > 300) return HostPortError(text);
  HostPort result;
  absl::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return HostPortError(text);
    }
    std::string host(text.substr(1, close - 1));
    in6_addr addr;
    if (host.empty() || inet_pton(AF_INET6, host.c_str(), &addr) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid IPv6 address ", Quote(host), " in ", Quote(text)));
    }
    result.host = std::move(host);
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) return HostPortError(text);
    absl::string_view host = text.substr(0, colon);
    if (host.find(':') != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected HOST:PORT, got ", Quote(text),
                       " (put an IPv6 address in brackets: [::1]:7401)"));
    }
    if (host.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected HOST:PORT, got ", Quote(text),
                       " (the host is empty; use 0.0.0.0 or [::] for every address)"));
    }
    const bool looks_numeric = std::all_of(host.begin(), host.end(), [](char c) {
      return c == '.' || absl::ascii_isdigit(static_cast<unsigned char>(c));
    });
    if (looks_numeric ? !IsIPv4(host) : !IsHostName(host)) {
      return absl::InvalidArgumentError(
          absl::StrCat(looks_numeric ? "invalid IPv4 address " : "invalid host name ", Quote(host),
                       " in ", Quote(text)));
    }
    result.host = std::string(host);
    port_text = text.substr(colon + 1);
  }
  const std::optional<uint64_t> port = ParseDigits(port_text, 5);
  if (!port.has_value() || *port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port must be a number 0-65535, got ", Quote(port_text), " in ", Quote(text)));
  }
  result.port = static_cast<uint16_t>(*port);
  return result;
}

bool IsLoopbackHost(absl::string_view host) {
  return host == "localhost" || absl::StartsWith(host, "127.") || host == "::1";
}

absl::StatusOr<uint64_t> ParseByteSize(std::string_view std_text) {
  const absl::string_view text(std_text.data(), std_text.size());
  const auto expected = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected a byte size such as 65536, 512KiB, 64MiB or 1GiB, got ", Quote(text)));
  };
  if (!text.empty() && text.front() == '-') {
    return absl::InvalidArgumentError(absl::StrCat("must not be negative, got ", Quote(text)));
  }
  size_t digits_end = 0;
  while (digits_end < text.size() &&
         absl::ascii_isdigit(static_cast<unsigned char>(text[digits_end]))) {
    ++digits_end;
  }
  if (digits_end == 0) return expected();
  absl::string_view digits = text.substr(0, digits_end);
  absl::string_view unit = absl::StripLeadingAsciiWhitespace(text.substr(digits_end));
  if (!unit.empty() && (unit.front() == '.' || unit.front() == ',')) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fractions are not allowed (use a smaller unit, e.g. 1536MiB), got ", Quote(text)));
  }
  const std::string lower = absl::AsciiStrToLower(unit);
  uint64_t multiplier = 0;
  if (lower.empty() || lower == "b") {
    multiplier = 1;
  } else if (lower == "kib") {
    multiplier = 1ull << 10;
  } else if (lower == "mib") {
    multiplier = 1ull << 20;
  } else if (lower == "gib") {
    multiplier = 1ull << 30;
  } else if (lower == "tib") {
    multiplier = 1ull << 40;
  } else if (lower == "k" || lower == "kb" || lower == "m" || lower == "mb" || lower == "g" ||
             lower == "gb" || lower == "t" || lower == "tb") {
    return absl::InvalidArgumentError(
        absl::StrCat("ambiguous unit ", Quote(unit),
                     ": units are powers of 1024, write KiB, MiB, GiB or TiB; got ", Quote(text)));
  } else {
    return expected();
  }
  // 20 digits can exceed 2^64; check the multiplication too.
  const std::optional<uint64_t> value = ParseDigits(digits, 19);
  if (!value.has_value() || *value > std::numeric_limits<uint64_t>::max() / multiplier) {
    return absl::InvalidArgumentError(absl::StrCat("byte size too large, got ", Quote(text)));
  }
  return *value * multiplier;
}

std::string FormatBytes(uint64_t n) {
  static constexpr std::pair<uint64_t, absl::string_view> kUnits[] = {
      {1ull << 40, "TiB"}, {1ull << 30, "GiB"}, {1ull << 20, "MiB"}, {1ull << 10, "KiB"}};
  for (const auto& [size, unit] : kUnits) {
    if (n != 0 && n % size == 0) return absl::StrCat(n / size, unit);
  }
  return absl::StrCat(n);
}

absl::StatusOr<int64_t> ParseInteger(absl::string_view text) {
  const bool negative = !text.empty() && text.front() == '-';
  const std::optional<uint64_t> magnitude = ParseDigits(text.substr(negative ? 1 : 0), 18);
  if (!magnitude.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("expected an integer, got ", Quote(text)));
  }
  return negative ? -static_cast<int64_t>(*magnitude) : static_cast<int64_t>(*magnitude);
}

absl::StatusOr<bool> ParseBool(absl::string_view text) {
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  return absl::InvalidArgumentError(absl::StrCat("expected true or false, got ", Quote(text)));
}

std::string EnumChoices(std::span<const absl::string_view> names) {
  return absl::StrCat("one of ", absl::StrJoin(names, ", "));
}

absl::StatusOr<size_t> ParseEnum(absl::string_view text, std::span<const absl::string_view> names) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (text == names[i]) return i;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("expected ", EnumChoices(names), ", got ", Quote(text)));
}

absl::Status CheckAbsolutePath(absl::string_view text) {
  if (text.empty() || text.front() != '/') {
    return absl::InvalidArgumentError(absl::StrCat("expected an absolute path, got ", Quote(text)));
  }
  return absl::OkStatus();
}

}  // namespace ferry::config
