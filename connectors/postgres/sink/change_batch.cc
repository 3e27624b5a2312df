#include "connectors/postgres/sink/change_batch.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "connectors/postgres/sink/sink_sql.h"

namespace ferry::pg_sink {
namespace {

// Appends a key value to `key` unambiguously; false when the value cannot identify a row.
bool AppendKey(std::string* key, const v1::Value& v) {
  switch (v.kind_case()) {
    case v1::Value::kNull:
      key->push_back('n');
      return true;
    case v1::Value::kText:
      absl::StrAppend(key, "t", v.text().size(), ":", v.text());
      return true;
    default:
      return false;  // unchanged TOAST or binary: not a usable key
  }
}

const std::string* TextOf(const v1::Value* v) {
  return v != nullptr && v->kind_case() == v1::Value::kText ? &v->text() : nullptr;
}

}  // namespace

ChangeBatch::AddResult ChangeBatch::Add(const v1::Relation& relation, const v1::Change& change,
                                        bool fresh) {
  // REPLICA IDENTITY FULL names no key: its inserts are appended like a keyless table's; its
  // updates and deletes match on every old value and need their own statements.
  const bool full = relation.replica_identity() == v1::REPLICA_IDENTITY_FULL;
  if (full && change.op() != v1::INSERT) return kNotBatchable;
  Op op;
  switch (change.op()) {
    case v1::INSERT:
      op = Op::kInsert;
      break;
    case v1::UPDATE:
      op = Op::kUpdate;
      break;
    case v1::DELETE:
      op = Op::kDelete;
      break;
    default:
      return kNotBatchable;
  }
  std::vector<int> key_columns;
  for (int i = 0; i < relation.columns_size() && !full; ++i) {
    if (relation.columns(i).part_of_key()) key_columns.push_back(i);
  }
  if (key_columns.empty() && op != Op::kInsert) return kNotBatchable;
  const int ncols = relation.columns_size();
  const v1::Tuple& row_tuple = op == Op::kDelete ? change.old_tuple() : change.new_tuple();
  if (row_tuple.values_size() != ncols) return kNotBatchable;
  if (op == Op::kDelete && !change.has_old_tuple()) return kNotBatchable;

  fresh = fresh && op == Op::kInsert;
  // The row's key, and for an UPDATE that names its old key: the key must not change.
  std::string key;
  const v1::Tuple& key_tuple = change.has_old_tuple() ? change.old_tuple() : change.new_tuple();
  if (key_tuple.values_size() != ncols) return kNotBatchable;
  for (size_t k = 0; k < key_columns.size() && !fresh; ++k) {  // a fresh row is not indexed
    if (!AppendKey(&key, key_tuple.values(key_columns[k]))) return kNotBatchable;
  }
  if (op == Op::kUpdate && change.has_old_tuple()) {
    std::string new_key;
    for (int c : key_columns) {
      if (!AppendKey(&new_key, change.new_tuple().values(c))) return kNotBatchable;
    }
    if (new_key != key) return kNotBatchable;
  }

  const std::string name = absl::StrCat(relation.schema(), std::string(1, '\0'), relation.name());
  auto [slot, created] = table_index_.try_emplace(name, tables_.size());
  if (created) tables_.push_back(TableBatch{&relation, key_columns, {}, {}});
  TableBatch& table = tables_[slot->second];
  if (table.relation != &relation &&
      (table.relation->schema_hash() != relation.schema_hash() ||
       table.relation->columns_size() != ncols || table.key_columns != key_columns)) {
    if (!table.rows.empty()) return kFlushFirst;  // the table's shape changed mid-batch
    table.relation = &relation;
    table.key_columns = key_columns;
    table.by_key.clear();
    table.has_fresh = false;
  }
  if (table.has_fresh && !fresh && !key_columns.empty()) return kFlushFirst;

  size_t value_bytes = 0;
  auto take = [&](std::vector<const v1::Value*>* values, const v1::Tuple& tuple, bool only_keys) {
    for (int c = 0; c < ncols; ++c) {
      if (only_keys && !relation.columns(c).part_of_key()) continue;
      const v1::Value& v = tuple.values(c);
      if (v.kind_case() == v1::Value::kUnchangedToast) continue;
      (*values)[c] = &v;
      value_bytes += v.text().size() + 4;
    }
  };

  Row* existing = nullptr;
  if (!key_columns.empty() && !fresh) {
    auto it = table.by_key.find(key);
    if (it != table.by_key.end()) existing = &table.rows[it->second];
  }
  if (existing == nullptr) {
    Row row{op, std::vector<const v1::Value*>(ncols, nullptr)};
    take(&row.values, row_tuple, op == Op::kDelete);
    if (!key_columns.empty() && !fresh) table.by_key.emplace(std::move(key), table.rows.size());
    table.has_fresh = table.has_fresh || fresh;
    table.rows.push_back(std::move(row));
    ++rows_;
  } else if ((existing->op == Op::kInsert || existing->op == Op::kUpdate) && op == Op::kUpdate) {
    take(&existing->values, row_tuple, false);  // the latest value of every column sent
  } else if (existing->op == Op::kUpdate && op == Op::kDelete) {
    existing->op = Op::kDelete;
    std::fill(existing->values.begin(), existing->values.end(), nullptr);
    take(&existing->values, row_tuple, true);
  } else {
    return kFlushFirst;
  }
  bytes_ += value_bytes;
  return kAdded;
}

std::vector<ChangeBatch::Statement> ChangeBatch::Take() {
  std::vector<Statement> out;
  for (TableBatch& table : tables_) {
    if (table.rows.empty()) continue;
    const v1::Relation& rel = *table.relation;
    auto add = [&](Kind kind, std::vector<int> set, const std::vector<const Row*>& rows) {
      Statement s;
      s.relation = &rel;
      s.kind = kind;
      s.key_columns = table.key_columns;
      s.set_columns = std::move(set);
      s.expect_rows = static_cast<int64_t>(rows.size());
      if (kind == Kind::kInsert && rows.size() >= kCopyRows) {
        s.copy = true;
        for (const Row* row : rows) {
          for (int c = 0; c < rel.columns_size(); ++c) {
            if (c > 0) s.copy_data.push_back('\t');
            AppendCopyField(&s.copy_data, TextOf(row->values[c]));
          }
          s.copy_data.push_back('\n');
        }
        out.push_back(std::move(s));
        return;
      }
      std::vector<int> columns = s.key_columns;
      columns.insert(columns.end(), s.set_columns.begin(), s.set_columns.end());
      if (kind == Kind::kInsert) {
        columns.clear();
        for (int c = 0; c < rel.columns_size(); ++c) columns.push_back(c);
      }
      for (int c : columns) {
        std::string literal = "{";
        literal.reserve(rows.size() * 8);
        for (size_t r = 0; r < rows.size(); ++r) {
          if (r > 0) literal.push_back(',');
          AppendArrayElement(&literal, TextOf(rows[r]->values[c]));
        }
        literal.push_back('}');
        s.params.push_back(std::move(literal));
      }
      out.push_back(std::move(s));
    };
    std::vector<const Row*> deletes;
    std::vector<const Row*> inserts;
    // Updates by the set of columns they write (rows with unchanged TOAST leave some out).
    std::map<std::vector<int>, std::vector<const Row*>> updates;
    for (const Row& row : table.rows) {
      switch (row.op) {
        case Op::kDelete:
          deletes.push_back(&row);
          break;
        case Op::kInsert:
          inserts.push_back(&row);
          break;
        case Op::kUpdate: {
          std::vector<int> set;
          for (int c = 0; c < rel.columns_size(); ++c) {
            if (row.values[c] != nullptr && !rel.columns(c).part_of_key()) set.push_back(c);
          }
          if (set.empty()) set = table.key_columns;  // only the key: still must find the row
          updates[set].push_back(&row);
          break;
        }
      }
    }
    if (!deletes.empty()) add(Kind::kDelete, {}, deletes);
    for (const auto& [set, rows] : updates) add(Kind::kUpdate, set, rows);
    if (!inserts.empty()) add(Kind::kInsert, {}, inserts);
  }
  Clear();
  return out;
}

std::string ChangeBatch::Statement::Sql(const std::vector<std::string>& types) const {
  switch (kind) {
    case Kind::kInsert:
      return copy ? CopySql(*relation) : BatchInsertSql(*relation, types);
    case Kind::kUpdate:
      return BatchUpdateSql(*relation, types, key_columns, set_columns);
    case Kind::kDelete:
      return BatchDeleteSql(*relation, types, key_columns);
  }
  return "";
}

const char* ChangeBatch::Statement::what() const {
  switch (kind) {
    case Kind::kInsert:
      return "INSERT";
    case Kind::kUpdate:
      return "UPDATE";
    case Kind::kDelete:
      return "DELETE";
  }
  return "";
}

void ChangeBatch::Clear() {
  tables_.clear();
  table_index_.clear();
  rows_ = 0;
  bytes_ = 0;
}

}  // namespace ferry::pg_sink
