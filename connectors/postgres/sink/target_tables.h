// Target tables: what a session knows of each target table it writes (columns, primary key,
// whether the fast path may batch it), and how a table is made to take a source Relation:
// created when missing (types, NOT NULL, primary key, REPLICA IDENTITY FULL copied: tables that
// existed on the source before Ferry; later ones come as the source's own CREATE TABLE, see
// ddl_replay.h), else checked. Schema changes arrive as the source's DDL before any change of
// the new shape, so a source column the target lacks, a type the target's column cannot hold
// (sink_sql.h TypeHolds), or a target key column the source no longer sends is refused: the
// session then stops the table, naming the difference. DDL runs inside the group's open
// transaction, so it commits or rolls back with the group; prepared statements are dropped
// after DDL (they keep the parameter types of the old shape).
//
// A table is "verified" for a Relation's (schema_hash, column count) until Clear(): a session
// clears when it reconnects or rolls back (the DDL of a rolled-back group is gone).
//
// Thread safety: one thread at a time (the session's).
//
// Example:
//   std::string refusal;
//   if (!tables.Verified(rel)) FERRY_RETURN_IF_ERROR(tables.Reconcile(pipe, rel, &refusal));
//   if (!refusal.empty()) return StopTable(NameOf(rel), refusal);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "connectors/postgres/common/identifiers.h"
#include "connectors/postgres/sink/pipeline.h"
#include "connectors/postgres/sink/sink_sql.h"
#include "engine/api/sink.h"
#include "proto/change.pb.h"

namespace ferry::pg_sink {

inline TableName NameOf(const v1::Relation& r) { return {r.schema(), r.name()}; }
inline std::string Qualified(const TableName& t) { return pg::QualifiedName(t.schema, t.name); }

struct TargetTable {
  uint64_t verified_hash = 0;
  int verified_columns = -1;  // -1: never verified
  std::vector<TargetColumn> columns;
  std::vector<std::string> primary_key;
  // Changes may go through the ChangeBatch (see change_batch.h for when that is safe): the
  // session uses replica role, no column is of an array type, the primary key is the source's
  // replica identity, and nothing makes row order observable (other unique keys, exclusion
  // constraints, row triggers that fire on apply, rules; partitions included).
  bool batchable = false;
};

class TargetTables {
 public:
  // `replica_role`: sessions run with session_replication_role = replica (no table is
  // batchable otherwise).
  explicit TargetTables(bool replica_role) : replica_role_(replica_role) {}

  // The entry of `table`; a new, unverified one when unknown.
  TargetTable& Get(const TableName& table) { return tables_[Qualified(table)]; }
  // The entry of `table`, or nullptr when unknown.
  const TargetTable* Find(const TableName& table) const;
  // True when the target table was checked against `rel`'s shape since the last Clear().
  bool Verified(const v1::Relation& rel);

  // Makes the target table of `rel` take `rel` (see the top of this file) and records what it
  // looks like. `pipe` must have a transaction open and nothing outstanding. Returns OK with
  // *refusal empty when the table is verified, OK with *refusal saying why when the table cannot
  // take `rel` (the caller stops the table; the entry is left as it was), or the status of a
  // statement that failed for another reason (transient ones included; kUnavailable when the
  // connection broke).
  [[nodiscard]] absl::Status Reconcile(Pipeline& pipe, const v1::Relation& rel,
                                       std::string* refusal);

  // Forgets every table (a new connection, or a rollback).
  void Clear() { tables_.clear(); }

 private:
  // Reconcile without the refusal rule: may return a DDL's error after setting *refusal.
  absl::Status Reshape(Pipeline& pipe, const v1::Relation& rel, TargetTable& t,
                       std::string* refusal);
  absl::StatusOr<bool> Batchable(Pipeline& pipe, const v1::Relation& rel, const TargetTable& t);

  const bool replica_role_;
  absl::flat_hash_map<std::string, TargetTable> tables_;  // by qualified name
};

}  // namespace ferry::pg_sink
