// RelationCache: what Ferry knows of each published table, keyed by the relation id (oid) the
// pgoutput stream uses. It turns a pgoutput Relation message into a complete v1::Relation:
// schema-qualified name, columns with format_type names, replica identity, primary key column
// names, not-null flags, and schema_hash.
//
// schema_hash (spec): XXH3-64 over, for each column in order, name '\0' type_name '\0'
// type_oid (4 bytes LE) type_modifier (4 bytes LE) part_of_key (1 byte). A column added or
// dropped, renamed, retyped or a change of key membership changes it; not_null and the
// primary key list do not take part (they come from the catalog at the time the Relation
// message was read, see below).
//
// Type names come from format_type and the primary key and not-null flags from the catalog
// through RelationCatalog, read when the Relation message arrives. Postgres sends a Relation
// message before the first change of a table in a session and again after any change of its
// definition, so the shape (columns, types) is always exactly the stream's; the primary key and
// not_null are the catalog's current state, which can only differ when DDL ran between the
// change and its decoding (documented limitation). The lookup first waits until the
// transaction that carried the Relation message is visible to other sessions: the walsender
// sends a transaction once its commit record is flushed, which can be before the committing
// backend makes it visible, and a lookup in between would describe a table created by that
// transaction as having no primary key (seen in a test run under load).
//
// Thread safety: not thread-safe; owned by the capture thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "connectors/postgres/common/type_names.h"
#include "connectors/postgres/source/pgoutput_decoder.h"
#include "engine/api/shared_relation.h"
#include "proto/change.pb.h"

namespace ferry::pg {

struct TableDetails {
  std::vector<std::string> primary_key;       // column names in key order; empty when none
  std::vector<std::string> not_null_columns;  // names of NOT NULL columns
};

// Catalog lookups the cache needs. Implemented over a normal connection in production
// (PgRelationCatalog) and by a fake in tests.
class RelationCatalog {
 public:
  virtual ~RelationCatalog() = default;
  [[nodiscard]] virtual absl::StatusOr<std::vector<std::string>> TypeNames(
      const std::vector<TypeRef>& types) = 0;
  // Details of a table; empty details (not an error) when it no longer exists.
  [[nodiscard]] virtual absl::StatusOr<TableDetails> Table(uint32_t relation_id) = 0;
  // Returns once transaction `xid` (committed) is visible to a new snapshot, so that the
  // lookups after it see what it did. Catalogs that read no live database need not wait.
  [[nodiscard]] virtual absl::Status AwaitVisible(uint32_t /*xid*/) { return absl::OkStatus(); }
};

// Builds the v1::Relation for a Relation message (see the file comment). `xid`: the
// transaction the message came in (0: none to wait for, e.g. a snapshot's table).
[[nodiscard]] absl::StatusOr<v1::Relation> BuildRelation(const RelationMessage& message,
                                                         RelationCatalog& catalog,
                                                         uint32_t xid = 0);

// The schema_hash of a relation's columns (spec in the file comment).
uint64_t SchemaHash(const v1::Relation& relation);

v1::ReplicaIdentity ReplicaIdentityFromChar(char c);

class RelationCache {
 public:
  explicit RelationCache(RelationCatalog* catalog) : catalog_(catalog) {}

  // Records the relation of a Relation message that came in transaction `xid`. Returns true
  // when the shape (schema_hash) changed compared with what the cache held (false for a
  // relation seen the first time).
  [[nodiscard]] absl::StatusOr<bool> Update(const RelationMessage& message, uint32_t xid);

  // nullptr when the relation was never announced in this session. What it returns never
  // changes: a later Relation message makes a new one.
  SharedRelationPtr Find(uint32_t relation_id) const;

  // Forgets everything (a new replication session announces every relation again).
  void Clear() { relations_.clear(); }

 private:
  RelationCatalog* catalog_;  // not owned
  absl::flat_hash_map<uint32_t, SharedRelationPtr> relations_;
};

}  // namespace ferry::pg
