// Test helper: builds pgoutput and walsender messages byte by byte (big-endian), as the
// server would send them. Test-only (ferry::postgres_testing).
//
// Example:
//   std::string keepalive = Bytes().Char('k').U64(lsn).U64(now).U8(1).str();
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace ferry::pg::testing {

class Bytes {
 public:
  Bytes& U8(uint8_t v) {
    s_.push_back(static_cast<char>(v));
    return *this;
  }
  Bytes& Char(char c) { return U8(static_cast<uint8_t>(c)); }
  Bytes& U16(uint16_t v) { return U8(v >> 8).U8(v & 0xff); }
  Bytes& U32(uint32_t v) { return U16(v >> 16).U16(v & 0xffff); }
  Bytes& U64(uint64_t v) {
    return U32(static_cast<uint32_t>(v >> 32)).U32(static_cast<uint32_t>(v));
  }
  Bytes& Str(absl::string_view v) {
    s_.append(v.data(), v.size());
    s_.push_back('\0');
    return *this;
  }
  Bytes& Raw(absl::string_view v) {
    s_.append(v.data(), v.size());
    return *this;
  }
  // A text tuple value: 't' Int32 len bytes.
  Bytes& Text(absl::string_view v) {
    Char('t').U32(static_cast<uint32_t>(v.size()));
    return Raw(v);
  }
  const std::string& str() const { return s_; }

 private:
  std::string s_;
};

}  // namespace ferry::pg::testing
