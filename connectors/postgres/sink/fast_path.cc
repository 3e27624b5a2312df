// The fast path (see fast_path.h and README.md "Fast path, set-based" and "One round trip"):
// the ahead-of-time plan of a group (PlanGroup), the session's ChangeBatch of batchable tables,
// set-based statements and COPY sent through the pipeline, statements queued with their row
// counts checked when the results come back, and PrepareAndCommit's single round trip. Every
// problem found here is kAborted ("re-applying change by change"), or the transient status of
// its SQLSTATE: the scheduler then re-applies the range on the careful path.
#include <algorithm>
#include <map>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "connectors/postgres/common/sqlstate.h"
#include "connectors/postgres/sink/postgres_session.h"
#include "connectors/postgres/sink/sink_sql.h"
#include "engine/base/status_macros.h"
#include "engine/rows/copy_rows.h"

namespace ferry::pg_sink {

std::shared_ptr<const GroupPlan> PlanGroup(const GroupTransactions& txns, size_t max_value_bytes) {
  auto plan = std::make_shared<PlannedGroup>();
  ChangeBatch batch;
  // By (schema, name): views into the relations, which outlive the plan.
  absl::flat_hash_map<std::pair<std::string_view, std::string_view>, const v1::Relation*> tables;
  std::map<uint32_t, const v1::Relation*> rels;
  // COPY changes (snapshot rows) go as they are, after nothing else: a group that mixes them
  // with other changes goes the long way, which keeps their order.
  std::vector<ChangeBatch::Statement> copies;
  bool others = false;
  for (const auto& [seq, txn] : txns) {
    if (txn.fragment() != 0 || !txn.last_fragment()) return nullptr;
    rels.clear();
    for (const auto& r : txn.relations()) rels[r.relation_id()] = &r;
    for (const v1::Change& change : txn.changes()) {
      if (change.op() == v1::MESSAGE) {
        if (change.message_authenticated()) return nullptr;  // a schema change: Apply runs it
        continue;
      }
      auto it = rels.find(change.relation_id());
      if (it == rels.end()) return nullptr;
      const v1::Relation& rel = *it->second;
      if (change.op() == v1::COPY) {
        if (others) return nullptr;
        if (rel.columns_size() == 0) return nullptr;  // no column list for COPY: Apply
        if (CopyRowsProblem(rel, change, max_value_bytes)) return nullptr;  // Apply refuses it
        if (change.copy_row_count() > 0) {
          ChangeBatch::Statement& copy = copies.emplace_back();
          copy.relation = &rel;
          copy.copy = true;
          copy.copy_rows = &change.copy_rows();
          copy.expect_rows = change.copy_row_count();
        }
        tables.try_emplace(std::pair<std::string_view, std::string_view>(rel.schema(), rel.name()),
                           &rel);
        continue;
      }
      if (!copies.empty()) return nullptr;
      others = true;
      // Anything the session would refuse or treat specially goes the long way (Apply).
      if ((change.op() == v1::INSERT || change.op() == v1::UPDATE) &&
          TupleProblem(rel, change.new_tuple(), change.op() == v1::UPDATE, "", max_value_bytes)) {
        return nullptr;
      }
      if (change.has_old_tuple() &&
          TupleProblem(rel, change.old_tuple(), false, "", max_value_bytes)) {
        return nullptr;
      }
      if (batch.Add(rel, change, /*fresh=*/txn.snapshot()) != ChangeBatch::kAdded) return nullptr;
      tables.try_emplace(std::pair<std::string_view, std::string_view>(rel.schema(), rel.name()),
                         &rel);
    }
  }
  for (const auto& [name, rel] : tables) plan->relations.push_back(rel);
  plan->statements = copies.empty() ? batch.Take() : std::move(copies);
  return plan;
}

// A plan applies as is when every table it writes is known, unchanged since it was verified,
// batchable and not stopped; otherwise Apply does the work (and checks, creates, alters).
bool PostgresSession::PlanUsable(const PlannedGroup& plan) {
  for (const v1::Relation* rel : plan.relations) {
    const TableName name = NameOf(*rel);
    if (ctx_.stopped->contains(name)) return false;
    const TargetTable* t = tables_.Find(name);
    if (t == nullptr || !t->batchable || t->verified_hash != rel->schema_hash() ||
        t->verified_columns != rel->columns_size()) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<bool> PostgresSession::AddToBatch(const v1::Relation& rel,
                                                 const v1::Change& change) {
  if (!tables_.Get(NameOf(rel)).batchable) return false;
  FERRY_RETURN_IF_ERROR(FlushInserts());
  ChangeBatch::AddResult added = batch_.Add(rel, change);
  if (added == ChangeBatch::kFlushFirst) {
    FERRY_RETURN_IF_ERROR(FlushBatch());
    added = batch_.Add(rel, change);
  }
  if (added != ChangeBatch::kAdded) return false;
  if (batch_.rows() >= kBatchRows || batch_.bytes() >= kBatchBytes) {
    FERRY_RETURN_IF_ERROR(FlushBatch());
  }
  return true;
}

absl::Status PostgresSession::FlushBatch() {
  if (batch_.empty()) return absl::OkStatus();
  return SendBatched(batch_.Take());
}

absl::Status PostgresSession::SendBatched(const std::vector<ChangeBatch::Statement>& statements,
                                          bool server_checked) {
  for (const auto& st : statements) {
    const v1::Relation& rel = *st.relation;
    const std::vector<TargetColumn>& target = TargetOf(rel);
    std::vector<std::string> types;
    for (const auto& c : rel.columns()) {
      auto it = std::find_if(target.begin(), target.end(),
                             [&](const TargetColumn& tc) { return tc.name == c.name(); });
      types.push_back(it == target.end() ? c.type_name() : it->type);
    }
    if (st.copy) {
      FERRY_RETURN_IF_ERROR(EnsureBegun());
      FERRY_ASSIGN_OR_RETURN(
          StatementResult r,
          pipe_->Copy(st.Sql(types), st.copy_rows != nullptr ? *st.copy_rows : st.copy_data));
      FERRY_RETURN_IF_ERROR(deferred_);  // what ran before the COPY
      if (!r.ok && pg::IsTransient(pg::CodeForSqlState(r.sqlstate))) {
        return pg::SqlStateError(r.sqlstate, r.message, "COPY");
      }
      if (!r.ok || r.rows != st.expect_rows) {
        return absl::AbortedError(absl::StrCat(
            "COPY into ", NameOf(rel).ToString(), " (seq ", txn_seq_, ") ",
            r.ok ? absl::StrCat("inserted ", r.rows, " rows, expected ", st.expect_rows)
                 : absl::StrCat("failed: [", r.sqlstate, "] ", r.message),
            "; re-applying change by change"));
      }
      continue;
    }
    std::vector<const std::string*> params;
    params.reserve(st.params.size() + 1);
    for (const std::string& p : st.params) params.push_back(&p);
    if (server_checked) {
      const std::string expected = absl::StrCat(st.expect_rows);
      const int n = static_cast<int>(params.size());
      params.push_back(&expected);
      FERRY_RETURN_IF_ERROR(Statement(NameOf(rel), RowCountCheckedSql(st.Sql(types), n), params,
                                      st.expect_rows, st.what(), nullptr,
                                      /*server_checked=*/true));
      continue;
    }
    FERRY_RETURN_IF_ERROR(
        Statement(NameOf(rel), st.Sql(types), params, st.expect_rows, st.what(), nullptr));
  }
  return absl::OkStatus();
}

absl::Status PostgresSession::SendPlan(bool server_checked) {
  FERRY_RETURN_IF_ERROR(EnsureBegun());
  FERRY_RETURN_IF_ERROR(SendBatched(planned_->statements, server_checked));
  planned_ = nullptr;
  return absl::OkStatus();
}

absl::Status PostgresSession::QueueStatement(const TableName& table, const std::string& sql,
                                             const std::vector<const std::string*>& params,
                                             int64_t expect_rows, const char* what,
                                             bool server_checked) {
  const uint64_t seq = txn_seq_;
  return pipe_->SendPrepared(
      sql, params, [this, table, seq, expect_rows, what, server_checked](StatementResult& r) {
        if (!deferred_.ok()) return;
        // A row count other than expected: the client sees it in the result, or a
        // server-checked statement reports it in its error.
        std::optional<int64_t> affected;
        if (server_checked && !r.ok && r.sqlstate == "22P02") {
          affected = CheckedRowCount(r.message);
        }
        if (!server_checked && r.ok && expect_rows >= 0 && r.rows != expect_rows) {
          affected = r.rows;
        }
        if (affected.has_value()) {
          deferred_ = absl::AbortedError(absl::StrCat(
              "conflict: ", what, " on ", table.ToString(), " (seq ", seq, ") affected ", *affected,
              " rows, expected ", expect_rows, "; re-applying change by change"));
        } else if (!r.ok) {
          if (pg::IsTransient(pg::CodeForSqlState(r.sqlstate))) {
            deferred_ = pg::SqlStateError(r.sqlstate, r.message, what);
          } else {
            deferred_ = absl::AbortedError(
                absl::StrCat(what, " on ", table.ToString(), " (seq ", seq, ") failed: [",
                             r.sqlstate, "] ", r.message, "; re-applying change by change"));
          }
        }
      });
}

absl::Status PostgresSession::PrepareAndCommit(uint64_t progress_seq, int64_t commit_time_us) {
  // One round trip when the group is a plan of set-based statements (what most groups are):
  // each statement checks its own row count in the server, so a conflict fails it, and the
  // COMMIT queued behind it is skipped. Anything else (COPY, DDL, the careful path, stops to
  // record) takes the two round trips of Prepare() and Commit().
  const bool one_trip = planned_ != nullptr && !planned_->statements.empty() && progress_seq > 0 &&
                        !origin_.empty() && ctx_.new_stops.empty() && !ctx_.only_table &&
                        std::none_of(planned_->statements.begin(), planned_->statements.end(),
                                     [](const ChangeBatch::Statement& st) { return st.copy; });
  if (!one_trip) return SinkSession::PrepareAndCommit(progress_seq, commit_time_us);
  if (pipe_ == nullptr) return absl::UnavailableError("no target connection");
  FERRY_RETURN_IF_ERROR(SendPlan(/*server_checked=*/true));
  one_trip_groups_->fetch_add(1, std::memory_order_relaxed);
  return Commit(progress_seq, commit_time_us);
}

}  // namespace ferry::pg_sink
