// TypeNameCache: the SQL name of a (type oid, type modifier) pair as Postgres spells it in DDL,
// format_type(oid, typmod): "integer", "numeric(10,2)", "character varying(20)",
// "timestamp with time zone", "public.mood", "\"My Schema\".\"My Type\"[]". Names of types
// outside the search path are schema-qualified and quoted as needed, so they paste into DDL.
//
// Queried over a normal connection the caller passes, cached per (oid, typmod) for the life
// of the cache. Type oids are stable in a database (a dropped and re-created type gets a new
// oid), so entries never go stale. Thread-safe (the connection is used only by the calling
// thread).
//
// Example:
//   TypeNameCache cache;
//   FERRY_ASSIGN_OR_RETURN(auto names, cache.Resolve(*conn, {{1700, 655366}}));
//   // names[0] == "numeric(10,2)"
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "connectors/postgres/common/pg_connection.h"

namespace ferry::pg {

struct TypeRef {
  uint32_t oid = 0;
  int32_t typmod = -1;
  bool operator==(const TypeRef&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const TypeRef& t) {
    return H::combine(std::move(h), t.oid, t.typmod);
  }
};

class TypeNameCache {
 public:
  // Names for every ref, in order. Misses are fetched in one query. An oid the catalog does
  // not know comes back as "???" (format_type's answer), never an error; errors are the
  // connection's.
  [[nodiscard]] absl::StatusOr<std::vector<std::string>> Resolve(PgConnection& conn,
                                                                 const std::vector<TypeRef>& refs);
  size_t size() const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<TypeRef, std::string> names_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::pg
