#include "consistency/schema.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ferry::consistency {
namespace {

// An SQL identifier, always quoted ("" doubles a quote).
std::string Quote(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// "ALTER TABLE ..." statements that give the standby's table the primary's schema.
std::vector<std::string> StandbyDdl(const TableSchema& primary, const TableSchema& standby) {
  const std::string table =
      absl::StrCat("ALTER TABLE ", Quote(primary.schema), ".", Quote(primary.name), " ");
  std::map<std::string, const ColumnSchema*> theirs;
  for (const auto& c : standby.columns) theirs[c.name] = &c;
  std::map<std::string, const ColumnSchema*> mine;
  for (const auto& c : primary.columns) mine[c.name] = &c;
  std::vector<std::string> out;
  for (const auto& c : primary.columns) {  // the primary's column order
    if (theirs.contains(c.name)) continue;
    std::string add = absl::StrCat(table, "ADD COLUMN ", Quote(c.name), " ", c.type);
    if (!c.collation.empty() && c.collation != "default") {
      absl::StrAppend(&add, " COLLATE ", Quote(c.collation));
    }
    out.push_back(std::move(add));
  }
  for (const auto& c : primary.columns) {
    auto it = theirs.find(c.name);
    if (it == theirs.end() || it->second->type == c.type) continue;
    out.push_back(absl::StrCat(table, "ALTER COLUMN ", Quote(c.name), " TYPE ", c.type, " USING ",
                               Quote(c.name), "::", c.type));
  }
  const bool key_differs = primary.key_columns != standby.key_columns;
  if (key_differs && !standby.key_constraint.empty()) {
    out.push_back(absl::StrCat(table, "DROP CONSTRAINT IF EXISTS ", Quote(standby.key_constraint)));
  }
  for (const auto& c : standby.columns) {
    if (!mine.contains(c.name)) out.push_back(absl::StrCat(table, "DROP COLUMN ", Quote(c.name)));
  }
  if (key_differs && !primary.key_columns.empty()) {
    std::vector<std::string> keys;
    for (const auto& k : primary.key_columns) keys.push_back(Quote(k));
    out.push_back(absl::StrCat(table, "ADD PRIMARY KEY (", absl::StrJoin(keys, ", "), ")"));
  }
  return out;
}

}  // namespace

TablePlan PlanTable(const TableSchema& primary, const TableSchema& standby, int leaf_bits) {
  TablePlan plan;
  plan.spec.schema = primary.schema;
  plan.spec.name = primary.name;
  plan.spec.leaf_bits = leaf_bits;
  std::map<std::string, const ColumnSchema*> theirs;
  for (const auto& c : standby.columns) theirs[c.name] = &c;
  std::map<std::string, const ColumnSchema*> mine;
  for (const auto& c : primary.columns) mine[c.name] = &c;

  for (const auto& [name, column] : mine) {
    auto it = theirs.find(name);
    if (it == theirs.end()) {
      plan.schema_differences.push_back(absl::StrCat("column ", name, " missing on the standby"));
      continue;
    }
    if (it->second->type != column->type) {
      plan.schema_differences.push_back(absl::StrCat("column ", name, ": type ", column->type,
                                                     " on the primary, ", it->second->type,
                                                     " on the standby"));
    }
    plan.spec.columns.push_back(name);  // std::map: name order
  }
  for (const auto& [name, column] : theirs) {
    if (!mine.contains(name)) {
      plan.schema_differences.push_back(absl::StrCat("column ", name, " extra on the standby"));
    }
  }

  if (primary.key_columns != standby.key_columns) {
    plan.schema_differences.push_back(absl::StrCat(
        "primary key (", absl::StrJoin(primary.key_columns, ", "), ") on the primary, (",
        absl::StrJoin(standby.key_columns, ", "), ") on the standby"));
  }
  plan.spec.key_columns = primary.key_columns;
  if (!plan.schema_differences.empty()) plan.standby_ddl = StandbyDdl(primary, standby);
  for (const std::string& key : primary.key_columns) {
    auto it = theirs.find(key);
    if (it == theirs.end()) {
      plan.compare_rows = false;
      plan.notes.push_back(
          absl::StrCat("rows not compared: key column ", key, " missing on the standby"));
      continue;
    }
    if (it->second->collation != mine[key]->collation) {
      plan.spec.key_collate_c = true;
      plan.notes.push_back(absl::StrCat("key column ", key, ": collation \"", mine[key]->collation,
                                        "\" on the primary, \"", it->second->collation,
                                        "\" on the standby; keys ordered by COLLATE \"C\""));
    }
  }
  return plan;
}

}  // namespace ferry::consistency
