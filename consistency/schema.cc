#include "consistency/schema.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ferry::consistency {

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
