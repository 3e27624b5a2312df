#include "connectors/postgres/sink/target_tables.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "connectors/postgres/common/ferry_messages.h"
#include "connectors/postgres/common/sqlstate.h"
#include "engine/base/status_macros.h"

namespace ferry::pg_sink {
namespace {

constexpr char kTargetColumns[] =
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
    "COALESCE(a.attnum = ANY (i.indkey::int2[]), false) "
    "FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary "
    "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attnum";
// What makes the order of changes to different rows observable on the target: unique keys
// besides the primary key, exclusion constraints, row-level triggers that fire on apply
// (ENABLE ALWAYS or REPLICA), rules. Partitions included. Statement-level triggers see no
// single row: they fire once per set-based statement instead of once per change.
constexpr char kOrderSensitive[] =
    "WITH parts AS (SELECT to_regclass($1) AS relid UNION "
    "SELECT relid FROM pg_partition_tree(to_regclass($1))) "
    "SELECT (SELECT count(*) FROM pg_index WHERE indrelid IN (SELECT relid FROM parts) AND "
    "(indisunique OR indisexclusion) AND NOT indisprimary) + "
    "(SELECT count(*) FROM pg_trigger WHERE tgrelid IN (SELECT relid FROM parts) AND NOT "
    "tgisinternal AND tgenabled IN ('A', 'R') AND (tgtype & 1) = 1) + "
    "(SELECT count(*) FROM pg_rewrite WHERE ev_class IN (SELECT relid FROM parts) AND "
    "rulename <> '_RETURN')";

bool SameShape(const std::vector<TargetColumn>& a, const std::vector<TargetColumn>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].type != b[i].type) return false;
  }
  return true;
}

// The target table's columns (empty when it does not exist) and, in *pk, its primary key.
absl::StatusOr<std::vector<TargetColumn>> ReadColumns(Pipeline& pipe, const TableName& t,
                                                      std::vector<std::string>* pk) {
  FERRY_ASSIGN_OR_RETURN(StatementResult r, pipe.Run(kTargetColumns, {Qualified(t)}));
  std::vector<TargetColumn> cols;
  pk->clear();
  for (int i = 0; i < r.result.rows(); ++i) {
    TargetColumn c{std::string(r.result.Get(i, 0)), std::string(r.result.Get(i, 1)),
                   r.result.Get(i, 2) == "t"};
    if (r.result.Get(i, 3) == "t") pk->push_back(c.name);
    cols.push_back(std::move(c));
  }
  return cols;
}

}  // namespace

const TargetTable* TargetTables::Find(const TableName& table) const {
  auto it = tables_.find(Qualified(table));
  return it == tables_.end() ? nullptr : &it->second;
}

bool TargetTables::Verified(const v1::Relation& rel) {
  const TargetTable& t = Get(NameOf(rel));
  return t.verified_columns == rel.columns_size() && t.verified_hash == rel.schema_hash();
}

absl::Status TargetTables::Reconcile(Pipeline& pipe, const v1::Relation& rel,
                                     std::string* refusal) {
  refusal->clear();
  absl::Status s = Reshape(pipe, rel, Get(NameOf(rel)), refusal);
  if (!refusal->empty()) return absl::OkStatus();
  return s;
}

absl::Status TargetTables::Reshape(Pipeline& pipe, const v1::Relation& rel, TargetTable& t,
                                   std::string* refusal) {
  const TableName name = NameOf(rel);
  auto refuse = [&](std::string reason) {
    *refusal = std::move(reason);
    return absl::OkStatus();
  };
  std::vector<std::string> pk;
  FERRY_ASSIGN_OR_RETURN(std::vector<TargetColumn> cols, ReadColumns(pipe, name, &pk));
  // DDL runs inside the group's transaction: rolled back with it, committed with it. An error
  // that is not transient refuses the relation.
  auto ddl = [&](const std::string& sql) -> absl::Status {
    auto r = pipe.Run(sql);
    if (r.ok()) return absl::OkStatus();
    if (!pg::IsTransient(r.status().code())) {
      *refusal = absl::StrCat("schema change failed: ", r.status().message());
    }
    return r.status();
  };
  if (cols.empty()) {
    if (rel.columns_size() == 0) return refuse("the relation has no columns");
    FERRY_RETURN_IF_ERROR(ddl("CREATE SCHEMA IF NOT EXISTS " + pg::QuoteIdentifier(rel.schema())));
    FERRY_RETURN_IF_ERROR(ddl(CreateTableSql(rel)));
    if (IsFull(rel)) {
      FERRY_RETURN_IF_ERROR(ddl("ALTER TABLE " + Qualified(name) + " REPLICA IDENTITY FULL"));
    }
    FERRY_RETURN_IF_ERROR(ddl(pg::kAddFenceTriggers));
  } else {
    for (const auto& target_pk : pk) {
      bool present = false;
      for (const auto& c : rel.columns()) present = present || c.name() == target_pk;
      if (!present) {
        return refuse(absl::StrCat("key column \"", target_pk,
                                   "\" of the target is no longer sent by the source "
                                   "(dropped key); fix the target and resume the table"));
      }
    }
    for (const auto& c : rel.columns()) {
      auto it = std::find_if(cols.begin(), cols.end(),
                             [&](const TargetColumn& tc) { return tc.name == c.name(); });
      const std::string col = pg::QuoteIdentifier(c.name());
      // Schema changes reach the target as the source's own DDL (ddl_replay.h), before any
      // change of the new shape. A difference here is one that did not: adding the column
      // (without the source's default) or changing its type here would leave the standby
      // quietly different, so the table stops instead.
      if (it == cols.end()) {
        return refuse(absl::StrCat(
            "column ", col, " (", c.type_name(),
            ") of the source is missing on the target and no schema change adding it reached "
            "the standby; add it on the target as on the source and resume the table"));
      }
      if (!TypeHolds(it->type, c.type_name())) {
        return refuse(absl::StrCat("column ", col, " is ", it->type,
                                   " on the target but the source sends ", c.type_name(),
                                   " and no schema change for it reached the standby; make the "
                                   "target's column match and resume the table"));
      }
    }
    // Prepared statements keep the parameter types of the shape they were prepared for; when
    // the target's shape moved under them (DDL by another worker or an operator), drop them.
    if (t.verified_columns >= 0 && !SameShape(t.columns, cols)) pipe.ForgetPrepared();
    t.columns = std::move(cols);
    t.primary_key = std::move(pk);
    FERRY_ASSIGN_OR_RETURN(t.batchable, Batchable(pipe, rel, t));
    t.verified_hash = rel.schema_hash();
    t.verified_columns = rel.columns_size();
    return absl::OkStatus();
  }
  // Created here.
  FERRY_ASSIGN_OR_RETURN(t.columns, ReadColumns(pipe, name, &t.primary_key));
  FERRY_ASSIGN_OR_RETURN(t.batchable, Batchable(pipe, rel, t));
  pipe.ForgetPrepared();  // DDL ran: statements prepared for the old shape are stale
  t.verified_hash = rel.schema_hash();
  t.verified_columns = rel.columns_size();
  return absl::OkStatus();
}

absl::StatusOr<bool> TargetTables::Batchable(Pipeline& pipe, const v1::Relation& rel,
                                             const TargetTable& t) {
  if (!replica_role_) return false;
  for (const TargetColumn& c : t.columns) {
    if (absl::EndsWith(c.type, "]")) return false;  // unnest would flatten array values
  }
  // The rows' key on the target must be exactly the source's replica identity; REPLICA
  // IDENTITY FULL (only its inserts are batched) goes with a target without a key.
  std::vector<std::string> identity;
  for (const auto& c : rel.columns()) {
    if (c.part_of_key() && !IsFull(rel)) identity.push_back(c.name());
  }
  std::vector<std::string> pk = t.primary_key;
  std::sort(identity.begin(), identity.end());
  std::sort(pk.begin(), pk.end());
  if (identity != pk) return false;
  FERRY_ASSIGN_OR_RETURN(StatementResult r, pipe.Run(kOrderSensitive, {Qualified(NameOf(rel))}));
  return r.result.rows() == 1 && r.result.Get(0, 0) == "0";
}

}  // namespace ferry::pg_sink
