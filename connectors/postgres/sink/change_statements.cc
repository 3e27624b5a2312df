// One statement per change, for both paths: runs of INSERTs into one table as multi-row
// INSERT ... ON CONFLICT DO NOTHING (full batches, then single rows: two prepared shapes per
// table), UPDATE and DELETE matched by the replica identity (REPLICA IDENTITY FULL on every old
// column, changing exactly one row), TRUNCATE of the tables a change names. Row images are
// validated first; hostile input (sink_sql.h TupleProblem) stops the table.
//
// The fast path takes a change here when its table is not batchable or the ChangeBatch does not
// take it (a key change, a TOAST key, ...); the batch is flushed before it, so the order of
// changes is kept. The careful path takes every change here, one at a time, and resolves a row
// count that is off as a conflict (careful_path.cc).
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "connectors/postgres/sink/postgres_session.h"
#include "engine/base/status_macros.h"
#include "engine/rows/copy_rows.h"

namespace ferry::pg_sink {

absl::Status PostgresSession::Validate(const v1::Relation& rel, const v1::Tuple& tuple,
                                       bool allow_toast, const char* what) {
  std::optional<std::string> problem =
      TupleProblem(rel, tuple, allow_toast, what, options_.max_value_bytes);
  if (problem) return Fault(NameOf(rel), *std::move(problem));
  return absl::OkStatus();
}

absl::Status PostgresSession::FlushInserts() {
  if (run_rel_ == nullptr || run_rows_.empty()) {
    run_rel_ = nullptr;
    run_rows_.clear();
    return absl::OkStatus();
  }
  const v1::Relation& rel = *run_rel_;
  const TableName name = NameOf(rel);
  const int ncols = std::max(1, rel.columns_size());
  const int batch = std::max(1, std::min(options_.insert_batch_rows, 60000 / ncols));
  size_t i = 0;
  while (i < run_rows_.size()) {
    const int n = run_rows_.size() - i >= static_cast<size_t>(batch)
                      ? batch
                      : 1;  // full batches, then single rows: two prepared shapes per table
    std::vector<const std::string*> params;
    params.reserve(n * ncols);
    for (int r = 0; r < n; ++r) {
      for (const v1::Value& v : run_rows_[i + r]->values()) {
        params.push_back(v.kind_case() == v1::Value::kText ? &v.text() : nullptr);
      }
    }
    StatementResult res;
    FERRY_RETURN_IF_ERROR(
        Statement(name, InsertSql(rel, n), params, n, "INSERT", ctx_.careful ? &res : nullptr));
    if (ctx_.careful && res.rows != n) {
      // Careful runs have one row each.
      v1::Change change;
      change.set_op(v1::INSERT);
      *change.mutable_new_tuple() = *run_rows_[i];
      run_rel_ = nullptr;
      run_rows_.clear();
      return Conflict(rel, change, "insert_exists");
    }
    i += n;
  }
  run_rel_ = nullptr;
  run_rows_.clear();
  return absl::OkStatus();
}

absl::Status PostgresSession::ApplyCopyRows(const v1::Relation& rel, const v1::Change& change) {
  if (std::optional<std::string> problem = CopyRowsProblem(rel, change, options_.max_value_bytes)) {
    return Fault(NameOf(rel), *std::move(problem));
  }
  if (change.copy_row_count() == 0) return absl::OkStatus();
  if (!ctx_.careful && tables_.Get(NameOf(rel)).batchable) {
    FERRY_RETURN_IF_ERROR(FlushInserts());
    FERRY_RETURN_IF_ERROR(FlushBatch());
    ChangeBatch::Statement copy;
    copy.relation = &rel;
    copy.kind = ChangeBatch::Kind::kInsert;
    copy.copy = true;
    copy.copy_rows = &change.copy_rows();
    copy.expect_rows = change.copy_row_count();
    return SendBatched({copy});
  }
  std::vector<v1::Change>& rows = expanded_.emplace_back();
  rows.reserve(change.copy_row_count());
  absl::Status expanded = ExpandCopyRows(change, rel.columns_size(), &rows);
  if (!expanded.ok()) return Fault(NameOf(rel), std::string(expanded.message()));
  for (const v1::Change& row : rows) FERRY_RETURN_IF_ERROR(ApplyChange(rel, row));
  return absl::OkStatus();
}

absl::Status PostgresSession::ApplyChange(const v1::Relation& rel, const v1::Change& change) {
  const TableName name = NameOf(rel);
  const bool is_insert = change.op() == v1::INSERT;
  const bool is_update = change.op() == v1::UPDATE;
  if (!is_insert && !is_update && change.op() != v1::DELETE) {
    return Fault(
        name, absl::StrCat("malformed change: unknown operation ", static_cast<int>(change.op())));
  }
  if (is_insert) {
    FERRY_RETURN_IF_ERROR(Validate(rel, change.new_tuple(), false, "new row"));
  } else {
    if (is_update) FERRY_RETURN_IF_ERROR(Validate(rel, change.new_tuple(), true, "new row"));
    if (change.has_old_tuple()) {
      FERRY_RETURN_IF_ERROR(Validate(rel, change.old_tuple(), IsFull(rel), "old row"));
    } else if (!is_update) {
      return Fault(name, "malformed change: DELETE without the old row's key");
    }
  }
  if (!ctx_.careful) {
    FERRY_ASSIGN_OR_RETURN(const bool batched, AddToBatch(rel, change));
    if (batched) return absl::OkStatus();
  }
  // One statement for this change, after everything batched before it.
  FERRY_RETURN_IF_ERROR(FlushBatch());
  if (is_insert) {
    if (run_rel_ != &rel) FERRY_RETURN_IF_ERROR(FlushInserts());
    run_rel_ = &rel;
    run_rows_.push_back(&change.new_tuple());
    if (ctx_.careful) return FlushInserts();
    return absl::OkStatus();
  }
  FERRY_RETURN_IF_ERROR(FlushInserts());
  const std::vector<int> identity = IdentityColumns(rel);
  if (identity.empty()) {
    return Fault(name, absl::StrCat("cannot apply ", is_update ? "UPDATE" : "DELETE",
                                    ": the relation has no replica identity key"));
  }
  const v1::Tuple& key_tuple = change.has_old_tuple() ? change.old_tuple() : change.new_tuple();
  std::vector<int> match_cols;
  for (int c : identity) {
    const v1::Value& v = key_tuple.values(c);
    if (v.kind_case() == v1::Value::kUnchangedToast) {
      if (IsFull(rel)) continue;  // compare on the others
      return Fault(name, absl::StrCat("key column \"", rel.columns(c).name(),
                                      "\" has no value (unchanged TOAST)"));
    }
    match_cols.push_back(c);
  }
  std::vector<int> set_cols;
  if (is_update) {
    // A key that did not change is not set again: an identity column GENERATED ALWAYS may only
    // be set to DEFAULT (a changed one can't be either: that update stops the table).
    const bool key_unchanged = !change.has_old_tuple() && !IsFull(rel);
    std::vector<int> key_cols;
    for (int i = 0; i < rel.columns_size(); ++i) {
      if (change.new_tuple().values(i).kind_case() == v1::Value::kUnchangedToast) continue;
      if (key_unchanged && rel.columns(i).part_of_key()) {
        key_cols.push_back(i);
        continue;
      }
      set_cols.push_back(i);
    }
    if (set_cols.empty()) set_cols = key_cols;  // only the key: the row must still be found
  }
  RowMatch m = MatchRow(rel, TargetOf(rel), match_cols, static_cast<int>(set_cols.size()) + 1);
  std::vector<const std::string*> params;
  for (int c : set_cols) {
    const v1::Value& v = change.new_tuple().values(c);
    params.push_back(v.kind_case() == v1::Value::kText ? &v.text() : nullptr);
  }
  for (int c : m.columns) {
    const v1::Value& v = key_tuple.values(c);
    params.push_back(v.kind_case() == v1::Value::kText ? &v.text() : nullptr);
  }
  StatementResult res;
  if (is_update) {
    if (set_cols.empty()) return absl::OkStatus();  // nothing but unchanged TOAST
    FERRY_RETURN_IF_ERROR(Statement(name, UpdateSql(rel, set_cols, m), params, 1, "UPDATE",
                                    ctx_.careful ? &res : nullptr));
  } else {
    FERRY_RETURN_IF_ERROR(
        Statement(name, DeleteSql(rel, m), params, 1, "DELETE", ctx_.careful ? &res : nullptr));
  }
  if (ctx_.careful && res.rows != 1) {
    return Conflict(rel, change, is_update ? "update_missing" : "delete_missing");
  }
  return absl::OkStatus();
}

absl::Status PostgresSession::ApplyTruncate(const v1::Change& change,
                                            const std::map<uint32_t, const v1::Relation*>& rels) {
  FERRY_RETURN_IF_ERROR(FlushInserts());
  FERRY_RETURN_IF_ERROR(FlushBatch());
  std::vector<uint32_t> ids(change.truncate_relation_ids().begin(),
                            change.truncate_relation_ids().end());
  if (ids.empty()) ids.push_back(change.relation_id());
  std::vector<std::string> names;
  std::optional<TableName> first;
  for (uint32_t id : ids) {
    auto it = rels.find(id);
    if (it == rels.end()) {
      return absl::DataLossError(absl::StrCat("record ", txn_seq_, ": TRUNCATE names relation ", id,
                                              " that the transaction does not describe"));
    }
    const TableName name = NameOf(*it->second);
    if (Skipped(name)) continue;
    FERRY_RETURN_IF_ERROR(EnsureTable(*it->second));
    names.push_back(Qualified(name));
    if (!first) first = name;
  }
  if (names.empty()) return absl::OkStatus();
  std::string sql = "TRUNCATE " + absl::StrJoin(names, ", ");
  if (change.truncate_restart_identity()) sql += " RESTART IDENTITY";
  if (change.truncate_cascade()) sql += " CASCADE";
  return Statement(*first, sql, {}, -1, "TRUNCATE", nullptr);
}

}  // namespace ferry::pg_sink
