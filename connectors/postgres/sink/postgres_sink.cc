#include "connectors/postgres/sink/postgres_sink.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "connectors/postgres/common/identifiers.h"
#include "connectors/postgres/common/lsn.h"
#include "connectors/postgres/common/sqlstate.h"
#include "connectors/postgres/sink/change_batch.h"
#include "connectors/postgres/sink/pipeline.h"
#include "connectors/postgres/sink/sink_sql.h"
#include "engine/base/status_macros.h"

namespace ferry {
namespace {

using pg_sink::Pipeline;
using pg_sink::ResultCallback;
using pg_sink::StatementResult;
using pg_sink::TargetColumn;

constexpr const char* kBookkeeping[] = {
    "CREATE SCHEMA IF NOT EXISTS ferry",
    "CREATE TABLE IF NOT EXISTS ferry.conflicts ("
    " id bigserial PRIMARY KEY,"
    " detected_at timestamptz NOT NULL DEFAULT now(),"
    " source_region text NOT NULL,"
    " seq bigint NOT NULL,"
    " source_commit_time timestamptz,"
    " table_schema text NOT NULL,"
    " table_name text NOT NULL,"
    " kind text NOT NULL,"
    " remote_row jsonb,"
    " local_row jsonb,"
    " resolution text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ferry.table_state ("
    " source_region text NOT NULL,"
    " table_schema text NOT NULL,"
    " table_name text NOT NULL,"
    " stopped_at_seq bigint NOT NULL,"
    " reason text NOT NULL,"
    " stopped_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (source_region, table_schema, table_name))",
};

constexpr char kInsertConflict[] =
    "INSERT INTO ferry.conflicts (source_region, seq, source_commit_time, table_schema, "
    "table_name, kind, remote_row, local_row, resolution) VALUES ($1, $2, "
    "TIMESTAMPTZ 'epoch' + $3::bigint * INTERVAL '1 microsecond', $4, $5, $6, $7::jsonb, "
    "$8::jsonb, $9)";
constexpr char kUpsertStop[] =
    "INSERT INTO ferry.table_state (source_region, table_schema, table_name, stopped_at_seq, "
    "reason) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source_region, table_schema, table_name) "
    "DO UPDATE SET stopped_at_seq = EXCLUDED.stopped_at_seq, reason = EXCLUDED.reason, "
    "stopped_at = now()";
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
// Batched statements hold at most this many rows or value bytes.
constexpr size_t kBatchRows = 10000;
constexpr size_t kBatchBytes = 16 << 20;

bool SameShape(const std::vector<TargetColumn>& a, const std::vector<TargetColumn>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].type != b[i].type) return false;
  }
  return true;
}

TableName NameOf(const v1::Relation& r) { return {r.schema(), r.name()}; }

std::string Qualified(const TableName& t) { return pg::QualifiedName(t.schema, t.name); }

struct TargetTable {
  uint64_t verified_hash = 0;
  int verified_columns = -1;
  std::vector<TargetColumn> columns;
  std::vector<std::string> primary_key;
  // Changes may go through the ChangeBatch (see change_batch.h for when that is safe).
  bool batchable = false;
};

// A group whose every change went into one ChangeBatch (PostgresSink::Plan): its statements,
// array literals encoded, and the relations they need verified.
struct PlannedGroup final : GroupPlan {
  std::vector<pg_sink::ChangeBatch::Statement> statements;
  std::vector<const v1::Relation*> relations;  // one per table
};

class PostgresSession final : public SinkSession {
 public:
  PostgresSession(const PostgresSinkOptions& options, std::string dsn, std::string origin,
                  std::atomic<uint64_t>* one_trip_groups)
      : options_(options),
        dsn_(std::move(dsn)),
        origin_(std::move(origin)),
        one_trip_groups_(one_trip_groups) {}

  absl::Status Begin(const GroupContext& context) override;
  absl::Status Apply(uint64_t seq, const v1::Transaction& fragment) override;
  absl::Status Prepare() override;
  absl::Status Commit(uint64_t progress_seq, int64_t commit_time_us) override;
  absl::Status PrepareAndCommit(uint64_t progress_seq, int64_t commit_time_us) override;
  void Abort() override;
  std::optional<TableFault> fault() const override { return fault_; }
  uint64_t conflicts_committed() const override { return conflicts_committed_; }

 private:
  absl::Status Connect();
  absl::Status EnsureBegun();
  absl::Status SyncAndCheck();
  bool Skipped(const TableName& table) const;
  absl::Status Fault(const TableName& table, std::string reason,
                     std::optional<ConflictInfo> conflict = std::nullopt);
  absl::StatusOr<std::vector<TargetColumn>> ReadTarget(const TableName& t,
                                                       std::vector<std::string>* pk);
  absl::Status EnsureTable(const v1::Relation& rel);
  absl::Status Validate(const v1::Relation& rel, const v1::Tuple& tuple, bool allow_toast,
                        const char* what);
  absl::Status ApplyChange(const v1::Relation& rel, const v1::Change& change);
  absl::Status ApplyTruncate(const v1::Change& change,
                             const std::map<uint32_t, const v1::Relation*>& rels);
  absl::Status FlushInserts();
  absl::Status FlushBatch();
  // `server_checked`: every statement checks its own row count in the server (see
  // RowCountCheckedSql), so a COMMIT queued behind them runs only when all matched.
  absl::Status SendBatched(const std::vector<pg_sink::ChangeBatch::Statement>& statements,
                           bool server_checked = false);
  bool PlanUsable(const PlannedGroup& plan);
  // Sends the group's plan (planned_, then cleared) into the open transaction.
  absl::Status SendPlan(bool server_checked);
  absl::StatusOr<bool> Batchable(const v1::Relation& rel, const TargetTable& t);
  // Sends a statement; fast mode checks the affected rows later, careful mode runs it now and
  // returns its result in *out. `server_checked`: `sql` is a RowCountCheckedSql wrapper that
  // checks `expect_rows` itself (fast mode only).
  absl::Status Statement(const TableName& table, const std::string& sql,
                         const std::vector<const std::string*>& params, int64_t expect_rows,
                         const char* what, StatementResult* out, bool server_checked = false);
  absl::Status StatementError(const TableName& table, const StatementResult& r, const char* what);
  absl::Status Conflict(const v1::Relation& rel, const v1::Change& change, const char* kind);
  absl::Status RecordConflict(const TableName& table, uint64_t seq, const ConflictInfo& c);
  const std::vector<TargetColumn>& TargetOf(const v1::Relation& rel) {
    return tables_[Qualified(NameOf(rel))].columns;
  }

  const PostgresSinkOptions& options_;
  const std::string dsn_;
  const std::string origin_;                      // empty: no origin (never used today)
  std::atomic<uint64_t>* const one_trip_groups_;  // the sink's counter

  std::unique_ptr<Pipeline> pipe_;
  GroupContext ctx_;
  bool in_txn_ = false;
  uint64_t txn_seq_ = 0;  // seq of the current source transaction's fragment 0
  int64_t txn_commit_us_ = 0;
  std::optional<TableFault> fault_;
  absl::Status deferred_;  // first problem found by a fast-path result callback
  absl::flat_hash_map<std::string, TargetTable> tables_;
  uint64_t conflicts_pending_ = 0;
  uint64_t conflicts_committed_ = 0;
  // The current run of INSERTs into one relation (pointers into the fragment being applied).
  const v1::Relation* run_rel_ = nullptr;
  std::vector<const v1::Tuple*> run_rows_;
  // The fast path's net changes of tables where row order is not observable.
  pg_sink::ChangeBatch batch_;
  // The group's plan, when this session uses it (Apply then has nothing to do).
  const PlannedGroup* planned_ = nullptr;
};

absl::Status PostgresSession::Connect() {
  pipe_.reset();
  tables_.clear();
  FERRY_ASSIGN_OR_RETURN(pipe_, Pipeline::Connect(dsn_));
  std::vector<std::string> setup = {
      absl::StrCat("SET lock_timeout = ", absl::ToInt64Milliseconds(options_.lock_timeout)),
      "SET DateStyle = ISO", "SET IntervalStyle = postgres", "SET extra_float_digits = 3",
      "SET bytea_output = hex"};
  if (options_.replica_role) setup.push_back("SET session_replication_role = replica");
  if (!options_.synchronous_commit) setup.push_back("SET synchronous_commit = off");
  for (const auto& sql : setup) {
    auto r = pipe_->Run(sql);
    if (!r.ok()) return Annotate(r.status(), "setting up the target session");
  }
  if (!origin_.empty()) {
    auto r = pipe_->Run(
        "SELECT pg_replication_origin_create($1) WHERE NOT EXISTS "
        "(SELECT 1 FROM pg_replication_origin WHERE roname = $1)",
        {origin_});
    if (!r.ok()) return Annotate(r.status(), "creating replication origin " + origin_);
    r = pipe_->Run("SELECT pg_replication_origin_session_setup($1)", {origin_});
    if (!r.ok()) {
      // Held by another session: most often our own previous incarnation whose backend has not
      // noticed yet that we died. Retry later.
      pipe_.reset();
      return absl::UnavailableError(
          absl::StrCat("replication origin ", origin_, " is busy: ", r.status().message()));
    }
  }
  return absl::OkStatus();
}

absl::Status PostgresSession::Begin(const GroupContext& context) {
  ctx_ = context;
  if (ctx_.stopped == nullptr) ctx_.stopped = std::make_shared<StoppedTables>();
  fault_.reset();
  deferred_ = absl::OkStatus();
  conflicts_pending_ = 0;
  run_rel_ = nullptr;
  run_rows_.clear();
  batch_.Clear();
  txn_seq_ = context.first_seq;
  planned_ = nullptr;
  if (in_txn_) Abort();
  if (pipe_ == nullptr || pipe_->broken()) FERRY_RETURN_IF_ERROR(Connect());
  if (ctx_.plan != nullptr && !ctx_.careful && !ctx_.streamed && !ctx_.only_table) {
    const auto* plan = dynamic_cast<const PlannedGroup*>(ctx_.plan.get());
    if (plan != nullptr && PlanUsable(*plan)) planned_ = plan;
  }
  return absl::OkStatus();
}

// A plan applies as is when every table it writes is known, unchanged since it was verified,
// batchable and not stopped; otherwise Apply does the work (and checks, creates, alters).
bool PostgresSession::PlanUsable(const PlannedGroup& plan) {
  for (const v1::Relation* rel : plan.relations) {
    const TableName name = NameOf(*rel);
    if (ctx_.stopped->contains(name)) return false;
    auto it = tables_.find(Qualified(name));
    if (it == tables_.end() || !it->second.batchable ||
        it->second.verified_hash != rel->schema_hash() ||
        it->second.verified_columns != rel->columns_size()) {
      return false;
    }
  }
  return true;
}

absl::Status PostgresSession::EnsureBegun() {
  if (in_txn_) return absl::OkStatus();
  in_txn_ = true;
  return pipe_->Send("BEGIN", {}, [this](StatementResult& r) {
    if (!r.ok && deferred_.ok()) deferred_ = absl::UnavailableError("BEGIN failed: " + r.message);
  });
}

absl::Status PostgresSession::SyncAndCheck() {
  FERRY_RETURN_IF_ERROR(pipe_->Sync());
  return deferred_;
}

bool PostgresSession::Skipped(const TableName& table) const {
  if (ctx_.only_table) return table != *ctx_.only_table;
  auto it = ctx_.stopped->find(table);
  return it != ctx_.stopped->end() && txn_seq_ >= it->second.seq;
}

absl::Status PostgresSession::Fault(const TableName& table, std::string reason,
                                    std::optional<ConflictInfo> conflict) {
  fault_ = TableFault{table, txn_seq_, reason, std::move(conflict)};
  return absl::FailedPreconditionError(
      absl::StrCat("table ", table.ToString(), " at seq ", txn_seq_, ": ", reason));
}

absl::StatusOr<std::vector<TargetColumn>> PostgresSession::ReadTarget(
    const TableName& t, std::vector<std::string>* pk) {
  FERRY_ASSIGN_OR_RETURN(StatementResult r, pipe_->Run(kTargetColumns, {Qualified(t)}));
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

absl::Status PostgresSession::EnsureTable(const v1::Relation& rel) {
  const TableName name = NameOf(rel);
  TargetTable& t = tables_[Qualified(name)];
  if (t.verified_columns == rel.columns_size() && t.verified_hash == rel.schema_hash()) {
    return absl::OkStatus();
  }
  FERRY_RETURN_IF_ERROR(EnsureBegun());
  FERRY_RETURN_IF_ERROR(FlushInserts());
  FERRY_RETURN_IF_ERROR(FlushBatch());
  FERRY_RETURN_IF_ERROR(SyncAndCheck());
  if (rel.name().empty()) return Fault(name, "the relation has no name");
  std::vector<std::string> pk;
  FERRY_ASSIGN_OR_RETURN(std::vector<TargetColumn> cols, ReadTarget(name, &pk));
  // DDL runs inside the group's transaction: rolled back with it, committed with it.
  auto ddl = [&](const std::string& sql) -> absl::Status {
    auto r = pipe_->Run(sql);
    if (r.ok()) return absl::OkStatus();
    if (r.status().code() == absl::StatusCode::kUnavailable ||
        r.status().code() == absl::StatusCode::kAborted) {
      return r.status();
    }
    return Fault(name, absl::StrCat("schema change failed: ", r.status().message()));
  };
  if (cols.empty()) {
    if (rel.columns_size() == 0) return Fault(name, "the relation has no columns");
    FERRY_RETURN_IF_ERROR(ddl("CREATE SCHEMA IF NOT EXISTS " + pg::QuoteIdentifier(rel.schema())));
    FERRY_RETURN_IF_ERROR(ddl(pg_sink::CreateTableSql(rel)));
    if (pg_sink::IsFull(rel)) {
      FERRY_RETURN_IF_ERROR(ddl("ALTER TABLE " + Qualified(name) + " REPLICA IDENTITY FULL"));
    }
  } else {
    bool changed = false;
    for (const auto& target_pk : pk) {
      bool present = false;
      for (const auto& c : rel.columns()) present = present || c.name() == target_pk;
      if (!present) {
        return Fault(name, absl::StrCat("key column \"", target_pk,
                                        "\" of the target is no longer sent by the source "
                                        "(dropped key); fix the target and resume the table"));
      }
    }
    for (const auto& c : rel.columns()) {
      auto it = std::find_if(cols.begin(), cols.end(),
                             [&](const TargetColumn& tc) { return tc.name == c.name(); });
      const std::string col = pg::QuoteIdentifier(c.name());
      if (it == cols.end()) {
        // Added on the source. Added nullable: existing target rows have no value for it.
        FERRY_RETURN_IF_ERROR(ddl(absl::StrCat("ALTER TABLE ", Qualified(name), " ADD COLUMN ", col,
                                               " ", c.type_name())));
        changed = true;
      } else if (!pg_sink::TypeHolds(it->type, c.type_name())) {
        if (pg_sink::TypeHolds(c.type_name(), it->type)) {
          // The source widened the column (integer -> bigint, varchar(10) -> varchar(20)).
          FERRY_RETURN_IF_ERROR(ddl(absl::StrCat("ALTER TABLE ", Qualified(name), " ALTER COLUMN ",
                                                 col, " TYPE ", c.type_name())));
          changed = true;
        } else {
          return Fault(name, absl::StrCat("incompatible type change: column \"", c.name(), "\" is ",
                                          it->type,
                                          " on the target but the source "
                                          "sends ",
                                          c.type_name()));
        }
      }
    }
    if (!changed) {
      // Prepared statements keep the parameter types of the shape they were prepared for; when
      // the target's shape moved under them (DDL by another worker or an operator), drop them.
      if (t.verified_columns >= 0 && !SameShape(t.columns, cols)) pipe_->ForgetPrepared();
      t.columns = std::move(cols);
      t.primary_key = std::move(pk);
      FERRY_ASSIGN_OR_RETURN(t.batchable, Batchable(rel, t));
      t.verified_hash = rel.schema_hash();
      t.verified_columns = rel.columns_size();
      return absl::OkStatus();
    }
  }
  FERRY_ASSIGN_OR_RETURN(t.columns, ReadTarget(name, &t.primary_key));
  FERRY_ASSIGN_OR_RETURN(t.batchable, Batchable(rel, t));
  pipe_->ForgetPrepared();  // DDL ran: statements prepared for the old shape are stale
  t.verified_hash = rel.schema_hash();
  t.verified_columns = rel.columns_size();
  return absl::OkStatus();
}

absl::StatusOr<bool> PostgresSession::Batchable(const v1::Relation& rel, const TargetTable& t) {
  if (!options_.replica_role) return false;
  for (const TargetColumn& c : t.columns) {
    if (absl::EndsWith(c.type, "]")) return false;  // unnest would flatten array values
  }
  // The rows' key on the target must be exactly the source's replica identity; REPLICA
  // IDENTITY FULL (only its inserts are batched) goes with a target without a key.
  std::vector<std::string> identity;
  for (const auto& c : rel.columns()) {
    if (c.part_of_key() && !pg_sink::IsFull(rel)) identity.push_back(c.name());
  }
  std::vector<std::string> pk = t.primary_key;
  std::sort(identity.begin(), identity.end());
  std::sort(pk.begin(), pk.end());
  if (identity != pk) return false;
  FERRY_ASSIGN_OR_RETURN(StatementResult r, pipe_->Run(kOrderSensitive, {Qualified(NameOf(rel))}));
  return r.result.rows() == 1 && r.result.Get(0, 0) == "0";
}

absl::Status PostgresSession::FlushBatch() {
  if (batch_.empty()) return absl::OkStatus();
  return SendBatched(batch_.Take());
}

absl::Status PostgresSession::SendBatched(
    const std::vector<pg_sink::ChangeBatch::Statement>& statements, bool server_checked) {
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
      FERRY_ASSIGN_OR_RETURN(StatementResult r, pipe_->Copy(st.Sql(types), st.copy_data));
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
      FERRY_RETURN_IF_ERROR(Statement(NameOf(rel), pg_sink::RowCountCheckedSql(st.Sql(types), n),
                                      params, st.expect_rows, st.what(), nullptr,
                                      /*server_checked=*/true));
      continue;
    }
    FERRY_RETURN_IF_ERROR(
        Statement(NameOf(rel), st.Sql(types), params, st.expect_rows, st.what(), nullptr));
  }
  return absl::OkStatus();
}

absl::Status PostgresSession::Validate(const v1::Relation& rel, const v1::Tuple& tuple,
                                       bool allow_toast, const char* what) {
  std::optional<std::string> problem =
      pg_sink::TupleProblem(rel, tuple, allow_toast, what, options_.max_value_bytes);
  if (problem) return Fault(NameOf(rel), *std::move(problem));
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

absl::Status PostgresSession::Statement(const TableName& table, const std::string& sql,
                                        const std::vector<const std::string*>& params,
                                        int64_t expect_rows, const char* what, StatementResult* out,
                                        bool server_checked) {
  FERRY_RETURN_IF_ERROR(EnsureBegun());
  if (!ctx_.careful) {
    const uint64_t seq = txn_seq_;
    return pipe_->SendPrepared(
        sql, params, [this, table, seq, expect_rows, what, server_checked](StatementResult& r) {
          if (!deferred_.ok()) return;
          // A row count other than expected: the client sees it in the result, or a
          // server-checked statement reports it in its error.
          std::optional<int64_t> affected;
          if (server_checked && !r.ok && r.sqlstate == "22P02") {
            affected = pg_sink::CheckedRowCount(r.message);
          }
          if (!server_checked && r.ok && expect_rows >= 0 && r.rows != expect_rows) {
            affected = r.rows;
          }
          if (affected.has_value()) {
            deferred_ = absl::AbortedError(absl::StrCat(
                "conflict: ", what, " on ", table.ToString(), " (seq ", seq, ") affected ",
                *affected, " rows, expected ", expect_rows, "; re-applying change by change"));
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
    FERRY_RETURN_IF_ERROR(Statement(name, pg_sink::InsertSql(rel, n), params, n, "INSERT",
                                    ctx_.careful ? &res : nullptr));
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

absl::Status PostgresSession::RecordConflict(const TableName& table, uint64_t seq,
                                             const ConflictInfo& c) {
  const std::string seq_text = absl::StrCat(seq);
  const std::string time_text = absl::StrCat(txn_commit_us_);
  std::vector<std::optional<std::string>> params = {
      options_.source_region, seq_text,     time_text,   table.schema, table.name, c.kind,
      c.remote_row,           std::nullopt, c.resolution};
  if (!c.local_row.empty()) params[7] = c.local_row;
  auto r = pipe_->Run(kInsertConflict, params);
  if (!r.ok()) return Annotate(r.status(), "recording a conflict");
  ++conflicts_pending_;
  return absl::OkStatus();
}

// Careful mode only: the change did not find its row (or found one where it should not).
absl::Status PostgresSession::Conflict(const v1::Relation& rel, const v1::Change& change,
                                       const char* kind) {
  const TableName name = NameOf(rel);
  const bool is_insert = change.op() == v1::INSERT;
  const v1::Tuple& remote = change.op() == v1::DELETE ? change.old_tuple() : change.new_tuple();
  ConflictInfo info;
  info.kind = kind;
  info.remote_row = pg_sink::RowJson(rel, remote);
  const std::vector<int> identity = pg_sink::IdentityColumns(rel);
  // The local row, when there is one (an insert's key exists).
  if (is_insert && !identity.empty()) {
    pg_sink::RowMatch m = pg_sink::MatchRow(rel, TargetOf(rel), identity, 1);
    std::vector<std::optional<std::string>> params;
    for (int c : m.columns) {
      const v1::Value& v = change.new_tuple().values(c);
      params.push_back(v.kind_case() == v1::Value::kText ? std::optional(v.text()) : std::nullopt);
    }
    auto r = pipe_->Run(pg_sink::SelectJsonSql(rel, m), params);
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
    pg_sink::RowMatch m = pg_sink::MatchRow(rel, TargetOf(rel), identity, rel.columns_size() + 1);
    for (int c : all) {
      const v1::Value& v = change.new_tuple().values(c);
      params.push_back(v.kind_case() == v1::Value::kText ? &v.text() : nullptr);
    }
    for (int c : m.columns) {
      const v1::Value& v = change.new_tuple().values(c);
      params.push_back(v.kind_case() == v1::Value::kText ? &v.text() : nullptr);
    }
    FERRY_RETURN_IF_ERROR(
        Statement(name, pg_sink::UpdateSql(rel, all, m), params, -1, "UPDATE (resolve)", &res));
  } else {
    for (const v1::Value& v : change.new_tuple().values()) {
      params.push_back(v.kind_case() == v1::Value::kText ? &v.text() : nullptr);
    }
    FERRY_RETURN_IF_ERROR(
        Statement(name, pg_sink::InsertSql(rel, 1), params, -1, "INSERT (resolve)", &res));
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
      FERRY_RETURN_IF_ERROR(Validate(rel, change.old_tuple(), pg_sink::IsFull(rel), "old row"));
    } else if (!is_update) {
      return Fault(name, "malformed change: DELETE without the old row's key");
    }
  }
  if (!ctx_.careful && tables_[Qualified(name)].batchable) {
    FERRY_RETURN_IF_ERROR(FlushInserts());
    pg_sink::ChangeBatch::AddResult added = batch_.Add(rel, change);
    if (added == pg_sink::ChangeBatch::kFlushFirst) {
      FERRY_RETURN_IF_ERROR(FlushBatch());
      added = batch_.Add(rel, change);
    }
    if (added == pg_sink::ChangeBatch::kAdded) {
      if (batch_.rows() >= kBatchRows || batch_.bytes() >= kBatchBytes) return FlushBatch();
      return absl::OkStatus();
    }
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
  const std::vector<int> identity = pg_sink::IdentityColumns(rel);
  if (identity.empty()) {
    return Fault(name, absl::StrCat("cannot apply ", is_update ? "UPDATE" : "DELETE",
                                    ": the relation has no replica identity key"));
  }
  const v1::Tuple& key_tuple = change.has_old_tuple() ? change.old_tuple() : change.new_tuple();
  std::vector<int> match_cols;
  for (int c : identity) {
    const v1::Value& v = key_tuple.values(c);
    if (v.kind_case() == v1::Value::kUnchangedToast) {
      if (pg_sink::IsFull(rel)) continue;  // compare on the others
      return Fault(name, absl::StrCat("key column \"", rel.columns(c).name(),
                                      "\" has no value (unchanged TOAST)"));
    }
    match_cols.push_back(c);
  }
  std::vector<int> set_cols;
  if (is_update) {
    for (int i = 0; i < rel.columns_size(); ++i) {
      if (change.new_tuple().values(i).kind_case() != v1::Value::kUnchangedToast) {
        set_cols.push_back(i);
      }
    }
  }
  pg_sink::RowMatch m =
      pg_sink::MatchRow(rel, TargetOf(rel), match_cols, static_cast<int>(set_cols.size()) + 1);
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
    FERRY_RETURN_IF_ERROR(Statement(name, pg_sink::UpdateSql(rel, set_cols, m), params, 1, "UPDATE",
                                    ctx_.careful ? &res : nullptr));
  } else {
    FERRY_RETURN_IF_ERROR(Statement(name, pg_sink::DeleteSql(rel, m), params, 1, "DELETE",
                                    ctx_.careful ? &res : nullptr));
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

absl::Status PostgresSession::Apply(uint64_t seq, const v1::Transaction& fragment) {
  if (pipe_ == nullptr) return absl::UnavailableError("no target connection");
  if (fragment.fragment() == 0) txn_seq_ = seq;
  txn_commit_us_ = fragment.commit_time_us();
  if (planned_ != nullptr) return absl::OkStatus();  // Prepare sends the plan
  std::map<uint32_t, const v1::Relation*> rels;
  for (const auto& r : fragment.relations()) rels[r.relation_id()] = &r;
  for (int i = 0; i < fragment.changes_size(); ++i) {
    const v1::Change& change = fragment.changes(i);
    if (change.op() == v1::MESSAGE) continue;  // logical messages are not replayed
    if (change.op() == v1::TRUNCATE) {
      FERRY_RETURN_IF_ERROR(ApplyTruncate(change, rels));
      continue;
    }
    auto it = rels.find(change.relation_id());
    if (it == rels.end()) {
      // Names no table: the record itself is malformed. Apply stops here (see README).
      return absl::DataLossError(absl::StrCat("inbound record ", seq, ": change ", i,
                                              " references relation ", change.relation_id(),
                                              " that the transaction does not describe"));
    }
    const v1::Relation& rel = *it->second;
    if (Skipped(NameOf(rel))) continue;
    FERRY_RETURN_IF_ERROR(EnsureTable(rel));
    FERRY_RETURN_IF_ERROR(ApplyChange(rel, change));
  }
  FERRY_RETURN_IF_ERROR(FlushInserts());
  // A streamed fragment is gone when Apply returns: nothing may point into it.
  if (ctx_.streamed) FERRY_RETURN_IF_ERROR(FlushBatch());
  if (pipe_->outstanding() > 4000) FERRY_RETURN_IF_ERROR(SyncAndCheck());
  return deferred_;
}

absl::Status PostgresSession::Prepare() {
  if (pipe_ == nullptr) return absl::UnavailableError("no target connection");
  FERRY_RETURN_IF_ERROR(FlushInserts());
  FERRY_RETURN_IF_ERROR(FlushBatch());
  if (planned_ != nullptr) FERRY_RETURN_IF_ERROR(SendPlan(/*server_checked=*/false));
  if (!in_txn_) return deferred_;
  return SyncAndCheck();
}

absl::Status PostgresSession::Commit(uint64_t progress_seq, int64_t commit_time_us) {
  if (!in_txn_ && ctx_.new_stops.empty() && !ctx_.only_table) {
    return absl::OkStatus();  // nothing written: progress lives in the log cursor
  }
  if (pipe_ == nullptr) return absl::UnavailableError("no target connection");
  FERRY_RETURN_IF_ERROR(EnsureBegun());
  for (const TableStop& stop : ctx_.new_stops) {
    auto r = pipe_->Run(kUpsertStop, {options_.source_region, stop.table.schema, stop.table.name,
                                      absl::StrCat(stop.seq), stop.reason});
    if (!r.ok()) return Annotate(r.status(), "recording a stopped table");
    if (stop.conflict) {
      const uint64_t saved = txn_seq_;
      txn_seq_ = stop.seq;
      absl::Status s = RecordConflict(stop.table, stop.seq, *stop.conflict);
      txn_seq_ = saved;
      FERRY_RETURN_IF_ERROR(s);
    }
  }
  if (ctx_.only_table) {
    auto r = pipe_->Run(
        "DELETE FROM ferry.table_state WHERE source_region = $1 AND table_schema = $2 AND "
        "table_name = $3",
        {options_.source_region, ctx_.only_table->schema, ctx_.only_table->name});
    if (!r.ok()) return Annotate(r.status(), "clearing a stopped table");
  }
  if (progress_seq > 0 && !origin_.empty()) {
    FERRY_RETURN_IF_ERROR(pipe_->Send(
        "SELECT pg_replication_origin_xact_setup($1::pg_lsn, TIMESTAMPTZ 'epoch' + "
        "$2::bigint * INTERVAL '1 microsecond')",
        {pg::FormatLsn(progress_seq), absl::StrCat(commit_time_us)}, [this](StatementResult& r) {
          if (!r.ok && deferred_.ok()) {
            deferred_ = absl::UnavailableError("recording progress failed: " + r.message);
          }
        }));
  }
  bool committed = false;
  bool commit_ran = false;
  std::string commit_error = "no result";
  FERRY_RETURN_IF_ERROR(pipe_->Send("COMMIT", {}, [&](StatementResult& r) {
    commit_ran = !r.aborted;
    committed = r.ok && std::string_view(PQcmdStatus(r.result.get())) == "COMMIT";
    if (!committed) commit_error = r.ok ? "the transaction was rolled back" : r.message;
  }));
  absl::Status s = pipe_->Sync();
  // A COMMIT skipped after an error in its pipeline leaves the failed transaction open on the
  // server: it stays ours, and Abort() rolls it back.
  if (commit_ran) in_txn_ = false;
  FERRY_RETURN_IF_ERROR(s);
  FERRY_RETURN_IF_ERROR(deferred_);
  if (!committed) return absl::UnavailableError("COMMIT failed: " + commit_error);
  conflicts_committed_ += conflicts_pending_;
  conflicts_pending_ = 0;
  ctx_.plan.reset();  // its literals are of no more use
  return absl::OkStatus();
}

absl::Status PostgresSession::SendPlan(bool server_checked) {
  FERRY_RETURN_IF_ERROR(EnsureBegun());
  FERRY_RETURN_IF_ERROR(SendBatched(planned_->statements, server_checked));
  planned_ = nullptr;
  return absl::OkStatus();
}

absl::Status PostgresSession::PrepareAndCommit(uint64_t progress_seq, int64_t commit_time_us) {
  // One round trip when the group is a plan of set-based statements (what most groups are):
  // each statement checks its own row count in the server, so a conflict fails it, and the
  // COMMIT queued behind it is skipped. Anything else (COPY, DDL, the careful path, stops to
  // record) takes the two round trips of Prepare() and Commit().
  const bool one_trip =
      planned_ != nullptr && !planned_->statements.empty() && progress_seq > 0 &&
      !origin_.empty() && ctx_.new_stops.empty() && !ctx_.only_table &&
      std::none_of(planned_->statements.begin(), planned_->statements.end(),
                   [](const pg_sink::ChangeBatch::Statement& st) { return st.copy; });
  if (!one_trip) return SinkSession::PrepareAndCommit(progress_seq, commit_time_us);
  if (pipe_ == nullptr) return absl::UnavailableError("no target connection");
  FERRY_RETURN_IF_ERROR(SendPlan(/*server_checked=*/true));
  one_trip_groups_->fetch_add(1, std::memory_order_relaxed);
  return Commit(progress_seq, commit_time_us);
}

void PostgresSession::Abort() {
  run_rel_ = nullptr;
  run_rows_.clear();
  batch_.Clear();
  planned_ = nullptr;
  ctx_.plan.reset();
  conflicts_pending_ = 0;
  tables_.clear();  // DDL of the aborted transaction is gone
  if (pipe_ == nullptr) return;
  if (pipe_->broken() || !pipe_->Sync().ok()) {
    pipe_.reset();
    in_txn_ = false;
    return;
  }
  if (in_txn_) {
    in_txn_ = false;
    if (!pipe_->Run("ROLLBACK").ok()) {
      pipe_.reset();
      return;
    }
  }
  // Whatever failed may have been a stale statement: start over with fresh ones.
  pipe_->ForgetPrepared();
}

bool ParseOriginName(const std::string& name, const std::string& prefix, uint64_t* epoch,
                     int* worker) {
  if (!absl::StartsWith(name, prefix)) return false;
  std::vector<std::string> parts = absl::StrSplit(name.substr(prefix.size()), '_');
  if (parts.size() != 2 || parts[1].size() < 2 || parts[1][0] != 'w') return false;
  return absl::SimpleAtoi(parts[0], epoch) && absl::SimpleAtoi(parts[1].substr(1), worker);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresSink>> PostgresSink::Open(
    const PostgresSinkOptions& options) {
  if (options.dsn.empty()) return absl::InvalidArgumentError("postgres sink: dsn is required");
  if (options.source_region.empty()) {
    return absl::InvalidArgumentError("postgres sink: source_region is required");
  }
  for (char c : options.source_region) {
    if (!(absl::ascii_isalnum(c) || c == '-' || c == '_')) {
      return absl::InvalidArgumentError(absl::StrCat("postgres sink: source_region \"",
                                                     options.source_region,
                                                     "\" may hold only [A-Za-z0-9_-]"));
    }
  }
  if (options.insert_batch_rows < 1 || options.max_value_bytes < 1) {
    return absl::InvalidArgumentError("postgres sink: batch and value limits must be positive");
  }
  return std::unique_ptr<PostgresSink>(new PostgresSink(options));
}

PostgresSink::~PostgresSink() = default;

absl::StatusOr<pg_sink::Pipeline*> PostgresSink::AdminConnection() {
  if (admin_ == nullptr || admin_->broken()) {
    admin_.reset();
    FERRY_ASSIGN_OR_RETURN(admin_, Pipeline::Connect(Dsn()));
  }
  return admin_.get();
}

std::string PostgresSink::OriginName(int worker) const {
  return absl::StrCat("ferry_", options_.source_region, "_", options_.epoch, "_w", worker);
}

std::string PostgresSink::Dsn() const {
  return absl::StrCat(options_.dsn, " connect_timeout=", options_.connect_timeout_seconds,
                      " application_name=ferry_apply");
}

absl::StatusOr<SinkState> PostgresSink::LoadState() {
  absl::MutexLock lock(&mu_);
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Pipeline> pipe, Pipeline::Connect(Dsn()));
  for (const char* sql : kBookkeeping) {
    auto r = pipe->Run(sql);
    if (!r.ok()) return Annotate(r.status(), "creating Ferry's bookkeeping tables");
  }
  const std::string prefix = absl::StrCat("ferry_", options_.source_region, "_");
  FERRY_ASSIGN_OR_RETURN(
      StatementResult origins,
      pipe->Run("SELECT roname, pg_replication_origin_progress(roname, false)::text "
                "FROM pg_replication_origin WHERE starts_with(roname, $1)",
                {prefix}));
  SinkState state;
  std::vector<std::string> stale;
  for (int i = 0; i < origins.result.rows(); ++i) {
    const std::string name(origins.result.Get(i, 0));
    uint64_t epoch = 0;
    int worker = 0;
    if (!ParseOriginName(name, prefix, &epoch, &worker)) continue;
    if (!origins.result.IsNull(i, 1)) {
      FERRY_ASSIGN_OR_RETURN(uint64_t lsn, pg::ParseLsn(std::string(origins.result.Get(i, 1))));
      state.applied_seq = std::max(state.applied_seq, lsn);
    }
    if (epoch != options_.epoch) stale.push_back(name);
  }
  if (!stale.empty()) {
    // Keep the progress in this epoch's w0, then drop the old epoch's origins. Dropping fails
    // while an applier of the old epoch still holds one: we refuse to run beside it.
    const std::string w0 = OriginName(0);
    auto r = pipe->Run(
        "SELECT pg_replication_origin_create($1) WHERE NOT EXISTS "
        "(SELECT 1 FROM pg_replication_origin WHERE roname = $1)",
        {w0});
    if (!r.ok()) return r.status();
    if (state.applied_seq > 0) {
      r = pipe->Run(
          "SELECT pg_replication_origin_advance($1, $2::pg_lsn) WHERE "
          "COALESCE(pg_replication_origin_progress($1, false), '0/0'::pg_lsn) < $2::pg_lsn",
          {w0, pg::FormatLsn(state.applied_seq)});
      if (!r.ok()) return Annotate(r.status(), "carrying progress over to " + w0);
    }
    for (const auto& name : stale) {
      r = pipe->Run("SELECT pg_replication_origin_drop($1)", {name});
      if (!r.ok()) {
        return absl::UnavailableError(
            absl::StrCat("replication origin ", name,
                         " of another epoch is still in use: ", r.status().message()));
      }
    }
  }
  FERRY_ASSIGN_OR_RETURN(
      StatementResult stops,
      pipe->Run("SELECT table_schema, table_name, stopped_at_seq, reason FROM ferry.table_state "
                "WHERE source_region = $1",
                {options_.source_region}));
  for (int i = 0; i < stops.result.rows(); ++i) {
    TableStop stop;
    stop.table = {std::string(stops.result.Get(i, 0)), std::string(stops.result.Get(i, 1))};
    if (!absl::SimpleAtoi(std::string(stops.result.Get(i, 2)), &stop.seq)) continue;
    stop.reason = std::string(stops.result.Get(i, 3));
    state.stopped[stop.table] = std::move(stop);
  }
  FERRY_ASSIGN_OR_RETURN(StatementResult count,
                         pipe->Run("SELECT count(*) FROM ferry.conflicts WHERE source_region = $1",
                                   {options_.source_region}));
  if (count.result.rows() == 1) {
    if (!absl::SimpleAtoi(std::string(count.result.Get(0, 0)), &state.conflicts))
      state.conflicts = 0;
  }
  return state;
}

absl::StatusOr<std::unique_ptr<SinkSession>> PostgresSink::OpenSession(int worker) {
  auto session =
      std::make_unique<PostgresSession>(options_, Dsn(), OriginName(worker), &one_trip_groups_);
  return std::unique_ptr<SinkSession>(std::move(session));
}

std::shared_ptr<const GroupPlan> PostgresSink::Plan(const GroupTransactions& txns) {
  if (!options_.replica_role) return nullptr;
  auto plan = std::make_shared<PlannedGroup>();
  pg_sink::ChangeBatch batch;
  // By (schema, name): views into the relations, which outlive the plan.
  absl::flat_hash_map<std::pair<std::string_view, std::string_view>, const v1::Relation*> tables;
  std::map<uint32_t, const v1::Relation*> rels;
  for (const auto& [seq, txn] : txns) {
    if (txn.fragment() != 0 || !txn.last_fragment()) return nullptr;
    rels.clear();
    for (const auto& r : txn.relations()) rels[r.relation_id()] = &r;
    for (const v1::Change& change : txn.changes()) {
      if (change.op() == v1::MESSAGE) continue;
      auto it = rels.find(change.relation_id());
      if (it == rels.end()) return nullptr;
      const v1::Relation& rel = *it->second;
      // Anything the session would refuse or treat specially goes the long way (Apply).
      const size_t limit = options_.max_value_bytes;
      if ((change.op() == v1::INSERT || change.op() == v1::UPDATE) &&
          pg_sink::TupleProblem(rel, change.new_tuple(), change.op() == v1::UPDATE, "", limit)) {
        return nullptr;
      }
      if (change.has_old_tuple() &&
          pg_sink::TupleProblem(rel, change.old_tuple(), false, "", limit)) {
        return nullptr;
      }
      if (batch.Add(rel, change, /*fresh=*/txn.snapshot()) != pg_sink::ChangeBatch::kAdded) {
        return nullptr;
      }
      tables.try_emplace(std::pair<std::string_view, std::string_view>(rel.schema(), rel.name()),
                         &rel);
    }
  }
  for (const auto& [name, rel] : tables) plan->relations.push_back(rel);
  plan->statements = batch.Take();
  return plan;
}

absl::StatusOr<std::optional<uint64_t>> PostgresSink::DurableSeq() {
  if (options_.synchronous_commit) return std::optional<uint64_t>();
  absl::MutexLock lock(&mu_);
  FERRY_ASSIGN_OR_RETURN(Pipeline * admin, AdminConnection());
  absl::StatusOr<StatementResult> r = admin->Run(
      "SELECT COALESCE(max(pg_replication_origin_progress(roname, true)), '0/0')::text "
      "FROM pg_replication_origin WHERE roname ~ $1",
      {absl::StrCat("^ferry_", options_.source_region, "_[0-9]+_w[0-9]+$")});
  if (!r.ok()) {
    admin_.reset();
    return r.status();
  }
  if (r->result.rows() != 1) return absl::InternalError("no durable progress row");
  FERRY_ASSIGN_OR_RETURN(uint64_t seq, pg::ParseLsn(std::string(r->result.Get(0, 0))));
  return std::optional<uint64_t>(seq);
}

absl::StatusOr<UniqueKeys> PostgresSink::UniqueKeysOf(const v1::Relation& relation) {
  absl::MutexLock lock(&mu_);
  FERRY_ASSIGN_OR_RETURN(Pipeline * pipe, AdminConnection());
  FERRY_ASSIGN_OR_RETURN(
      StatementResult r,
      pipe->Run("SELECT i.indexrelid::text, a.attname FROM pg_index i CROSS JOIN LATERAL "
                "unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE i.indrelid = "
                "to_regclass($1) AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL "
                "ORDER BY i.indexrelid, k.ord",
                {pg::QualifiedName(relation.schema(), relation.name())}));
  std::vector<std::string> identity;
  for (const auto& c : relation.columns()) {
    if (c.part_of_key()) identity.push_back(c.name());
  }
  std::sort(identity.begin(), identity.end());
  UniqueKeys keys;
  std::string current;
  for (int i = 0; i < r.result.rows(); ++i) {
    std::string index(r.result.Get(i, 0));
    if (index != current) {
      keys.emplace_back();
      current = index;
    }
    keys.back().emplace_back(r.result.Get(i, 1));
  }
  // The replica identity itself is already a key; keep only the others.
  std::erase_if(keys, [&](const std::vector<std::string>& k) {
    std::vector<std::string> sorted = k;
    std::sort(sorted.begin(), sorted.end());
    return sorted == identity;
  });
  return keys;
}

}  // namespace ferry
