// The careful path: after the fast path failed for a range, the scheduler re-applies it change
// by change (GroupContext::careful). Each statement runs at once (Send + Sync) and its result is
// looked at: a transient error keeps its SQLSTATE's status (common/sqlstate.h), any other error
// stops the statement's table (a TableFault naming the SQLSTATE and the server's message), and
// a row count that is off is a conflict: recorded in ferry.conflicts and resolved per
// ConflictPolicy (kStopTable stops the table; kApplyRemote makes the target row equal the
// remote version, and stops the table when that is impossible).
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "connectors/postgres/common/sqlstate.h"
#include "connectors/postgres/sink/postgres_session.h"
#include "engine/base/status_macros.h"

namespace ferry::pg_sink {

absl::Status PostgresSession::RunStatement(const TableName& table, const std::string& sql,
                                           const std::vector<const std::string*>& params,
                                           const char* what, StatementResult* out) {
  StatementResult result;
  bool got = false;
  FERRY_RETURN_IF_ERROR(pipe_->SendPrepared(sql, params, [&](StatementResult& r) {
    result = std::move(r);
    got = true;
  }));
  FERRY_RETURN_IF_ERROR(SyncAndCheck());
  if (!got) return absl::InternalError("no result for a statement");
  if (!result.ok) return StatementError(table, result, what);
  if (out != nullptr) *out = std::move(result);
  return absl::OkStatus();
}

absl::Status PostgresSession::StatementError(const TableName& table, const StatementResult& r,
                                             const char* what) {
  if (pg::IsTransient(pg::CodeForSqlState(r.sqlstate))) {
    return pg::SqlStateError(r.sqlstate, r.message, what);
  }
  if (r.aborted) return absl::AbortedError(absl::StrCat(what, ": skipped after an error"));
  return Fault(table, absl::StrCat(what, " failed: [", r.sqlstate, "] ", r.message));
}

absl::Status PostgresSession::Conflict(const v1::Relation& rel, const v1::Change& change,
                                       const char* kind) {
  const TableName name = NameOf(rel);
  const bool is_insert = change.op() == v1::INSERT;
  const v1::Tuple& remote = change.op() == v1::DELETE ? change.old_tuple() : change.new_tuple();
  ConflictInfo info;
  info.kind = kind;
  info.remote_row = RowJson(rel, remote);
  const std::vector<int> identity = IdentityColumns(rel);
  // The local row, when there is one (an insert's key exists).
  if (is_insert && !identity.empty()) {
    RowMatch m = MatchRow(rel, TargetOf(rel), identity, 1);
    std::vector<std::optional<std::string>> params;
    for (int c : m.columns) {
      const v1::Value& v = change.new_tuple().values(c);
      params.push_back(v.kind_case() == v1::Value::kText ? std::optional(v.text()) : std::nullopt);
    }
    auto r = pipe_->Run(SelectJsonSql(rel, m), params);
    if (!r.ok()) {
      // As for any statement (sqlstate.h): a transient error is retried, and only an error the
      // table itself causes stops it.
      if (pg::IsTransient(r.status().code())) return Annotate(r.status(), "reading the local row");
      return StatementError(
          name, StatementResult{.sqlstate = "XX000", .message = std::string(r.status().message())},
          "reading the local row");
    }
    if (r->result.rows() > 0) info.local_row = std::string(r->result.Get(0, 0));
  }
  if (options_.conflict_policy == ConflictPolicy::kStopTable) {
    info.resolution = "table_stopped";
    return Fault(name, absl::StrCat("conflict ", kind, " (policy: stop the table)"), info);
  }
  // Apply the remote version.
  if (change.op() == v1::DELETE) {
    info.resolution = "skipped";  // the row is already gone
    return RecordConflict(name, txn_seq_, info);
  }
  for (const v1::Value& v : change.new_tuple().values()) {
    if (v.kind_case() == v1::Value::kUnchangedToast) {
      return Fault(name,
                   absl::StrCat("conflict ", kind,
                                ": cannot apply the remote version, some of its values "
                                "(unchanged TOAST) are unknown"),
                   info);
    }
  }
  StatementResult res;
  std::vector<const std::string*> params;
  if (is_insert) {
    if (identity.empty()) {
      return Fault(name, "conflict insert_exists on a table without replica identity key", info);
    }
    std::vector<int> all;
    for (int i = 0; i < rel.columns_size(); ++i) all.push_back(i);
    RowMatch m = MatchRow(rel, TargetOf(rel), identity, rel.columns_size() + 1);
    for (int c : all) {
      const v1::Value& v = change.new_tuple().values(c);
      params.push_back(v.kind_case() == v1::Value::kText ? &v.text() : nullptr);
    }
    for (int c : m.columns) {
      const v1::Value& v = change.new_tuple().values(c);
      params.push_back(v.kind_case() == v1::Value::kText ? &v.text() : nullptr);
    }
    FERRY_RETURN_IF_ERROR(
        Statement(name, UpdateSql(rel, all, m), params, -1, "UPDATE (resolve)", &res));
  } else {
    for (const v1::Value& v : change.new_tuple().values()) {
      params.push_back(v.kind_case() == v1::Value::kText ? &v.text() : nullptr);
    }
    FERRY_RETURN_IF_ERROR(Statement(name, InsertSql(rel, 1), params, -1, "INSERT (resolve)", &res));
  }
  if (res.rows != 1) {
    return Fault(name,
                 absl::StrCat("conflict ", kind,
                              ": the remote version collides with another unique key "
                              "on the target"),
                 info);
  }
  info.resolution = "applied_remote";
  return RecordConflict(name, txn_seq_, info);
}

}  // namespace ferry::pg_sink
