// Schema comparison for the verifier: each region describes a table (TableSchema, read from its
// catalog), and PlanTable decides how both read it (TableSpec) and what differs in the schema.
//
// Columns are matched by name. A column on one side only is one schema difference (never a
// difference in every row) and is left out of the row hashes; a type that differs is a schema
// difference and the column is still compared by its text. The primary's key is the key; a
// standby whose key differs is a difference (the rows are still compared, ordered by the
// primary's key columns). Key collations that differ are a note, and both sides then order
// the key by COLLATE "C". A schema difference comes with the DDL that would remove it on the
// standby (TablePlan::standby_ddl), for the operator: --repair leaves such a table alone.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "consistency/table_side.h"

namespace ferry::consistency {

struct ColumnSchema {
  std::string name;
  std::string type;       // format_type(), e.g. "numeric(10,2)"
  std::string collation;  // empty for a type without collation
};

struct TableSchema {
  std::string schema;
  std::string name;
  std::vector<ColumnSchema> columns;     // in the table's order
  std::vector<std::string> key_columns;  // the primary key's columns in key order; empty: none
  std::string key_constraint;            // the primary key constraint's name; empty: none
};

struct TablePlan {
  TableSpec spec;
  std::vector<std::string> schema_differences;
  std::vector<std::string> notes;
  // False when the rows cannot be compared (the primary's key has a column the standby lacks).
  bool compare_rows = true;
  // What an operator runs on the standby to give its table the primary's schema (the primary is
  // the reference), in order: columns added, types changed, the primary key replaced, columns
  // dropped. Empty when the schemas agree. --repair never runs it (docs/verify.md).
  std::vector<std::string> standby_ddl;
};

TablePlan PlanTable(const TableSchema& primary, const TableSchema& standby, int leaf_bits);

}  // namespace ferry::consistency
