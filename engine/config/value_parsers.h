// Parsers of single config values, independent of YAML and of where the value sits: each takes
// the text of one scalar and returns the value or kInvalidArgument whose message is only the
// reason (e.g. `expected HOST:PORT, got "7400"`), for the caller to prefix with the file, the
// key and the position (engine/config/section.h does). Messages quote at most kMaxQuotedBytes
// of the value, C-escaped, so binary garbage and megabyte values stay short and readable.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(HostPort admin, ParseHostPort("[::1]:7400"));
//   FERRY_ASSIGN_OR_RETURN(uint64_t window, ParseByteSize("64MiB"));
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::config {

// A network endpoint. `host` is an IPv4 address, an IPv6 address (stored without brackets) or
// a DNS host name; it is never empty. Port 0 means "any free port" and is meaningful only for a
// listening socket (tests).
struct HostPort {
  std::string host;
  uint16_t port = 0;

  // "host:port", with brackets around an IPv6 host: "[::1]:7401".
  std::string ToString() const;
  bool operator==(const HostPort&) const = default;
};

// Parses "HOST:PORT": "127.0.0.1:7401", "[::1]:7401", "db.example.com:7401", with port 0-65535.
// An IPv6 address must be in brackets.
[[nodiscard]] absl::StatusOr<HostPort> ParseHostPort(std::string_view text);

// Whether `host` is "localhost", an address in 127.0.0.0/8, or ::1.
bool IsLoopbackHost(absl::string_view host);

// Parses a byte size: a non-negative integer ("65536", "65536B") or an integer followed by a
// binary unit KiB, MiB, GiB or TiB ("512KiB", "64MiB", "1 GiB"; unit case-insensitive). Decimal
// units (KB, MB, k, M...) and fractions are refused, because they are ambiguous.
[[nodiscard]] absl::StatusOr<uint64_t> ParseByteSize(std::string_view text);

// `n` in the largest binary unit that divides it ("64MiB", "1536KiB"), else in bytes ("1000").
std::string FormatBytes(uint64_t n);

// Parses a decimal integer with an optional '-' and at most 18 digits ("4", "-5", but not
// "4.0", "+4", "0x10", "1e3"): `expected an integer, got "4.0"`. Durations are integers of a
// unit the key names (`reconnect_min_ms`).
[[nodiscard]] absl::StatusOr<int64_t> ParseInteger(absl::string_view text);

// Parses YAML 1.2's booleans only: true, True, TRUE, false, False, FALSE. YAML 1.1's "yes",
// "on", "y" are refused: `expected true or false, got "yes"`.
[[nodiscard]] absl::StatusOr<bool> ParseBool(absl::string_view text);

// "one of a, b, c": the choices of an enumeration, as messages list them.
std::string EnumChoices(std::span<const absl::string_view> names);

// The index of `text` in `names` (exact match): `expected one of a, b, got "x"`.
[[nodiscard]] absl::StatusOr<size_t> ParseEnum(absl::string_view text,
                                               std::span<const absl::string_view> names);

// OK for an absolute path: `expected an absolute path, got "var/lib"`.
[[nodiscard]] absl::Status CheckAbsolutePath(absl::string_view text);

// `text` as a double-quoted, C-escaped string for messages, cut after kMaxQuotedBytes bytes
// with the full size said: "\"aaaa\"... (3000 bytes)".
std::string Quote(absl::string_view text);

}  // namespace ferry::config
