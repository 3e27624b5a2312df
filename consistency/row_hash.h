// Row hashing for the consistency verifier: the canonical encoding of a row's values, its
// XXH3 128-bit hash, and the additive digest of a set of rows.
//
// Canonical encoding (docs/verify.md): the values of the compared columns, in the order of
// their names (columns are matched by name, never by position), each as one tag byte (0 NULL,
// 1 value) and, for a value, its length (4 bytes, little endian) and its bytes (Postgres' text
// output under fixed session settings). NULL and the empty string therefore differ, and no two
// rows with different values encode the same. Type OIDs play no part.
//
// A digest is the count of rows and the sum of their 128-bit hashes modulo 2^128: order
// independent, a duplicate row counts twice (a multiset, never XOR, where pairs cancel), and
// a digest can be subtracted (the digest of [a, b) is suffix(a) - suffix(b)).
//
// Example:
//   std::string buf;
//   AppendValue(&buf, "42"); AppendValue(&buf, std::nullopt);
//   Digest d; d.Add(HashBytes(buf));
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace ferry::consistency {

// Text values of one row or key, in the order the table's spec names them; nullopt is NULL.
using Values = std::vector<std::optional<std::string>>;

struct Hash128 {
  uint64_t low = 0;
  uint64_t high = 0;

  friend bool operator==(const Hash128&, const Hash128&) = default;
  // Addition and subtraction modulo 2^128.
  friend Hash128 operator+(const Hash128& a, const Hash128& b) {
    Hash128 r{a.low + b.low, a.high + b.high};
    if (r.low < a.low) ++r.high;
    return r;
  }
  friend Hash128 operator-(const Hash128& a, const Hash128& b) {
    Hash128 r{a.low - b.low, a.high - b.high};
    if (a.low < b.low) --r.high;
    return r;
  }
  template <typename H>
  friend H AbslHashValue(H h, const Hash128& x) {
    return H::combine(std::move(h), x.low, x.high);
  }
};

// Count and sum of row hashes.
struct Digest {
  uint64_t count = 0;
  Hash128 sum;

  void Add(const Hash128& row) {
    ++count;
    sum = sum + row;
  }
  friend bool operator==(const Digest&, const Digest&) = default;
  friend Digest operator+(const Digest& a, const Digest& b) {
    return {a.count + b.count, a.sum + b.sum};
  }
  friend Digest operator-(const Digest& a, const Digest& b) {
    return {a.count - b.count, a.sum - b.sum};
  }
};

// Appends one value in the canonical encoding.
void AppendValue(std::string* out, std::optional<absl::string_view> value);
// The canonical encoding of a whole row or key.
std::string EncodeValues(const Values& values);
// XXH3 128-bit of `bytes` (seed 0).
Hash128 HashBytes(absl::string_view bytes);
inline Hash128 HashValues(const Values& values) { return HashBytes(EncodeValues(values)); }

// Whether a row whose key hashes to `key_hash` starts a new leaf: a content-defined boundary,
// so both regions cut their tables at the same keys without exchanging them. A leaf holds
// 2^leaf_bits rows on average.
inline bool IsLeafBoundary(const Hash128& key_hash, int leaf_bits) {
  return (key_hash.high & ((uint64_t{1} << leaf_bits) - 1)) == 0;
}

}  // namespace ferry::consistency
