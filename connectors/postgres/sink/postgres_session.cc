// The session's lifecycle: connecting (session settings, the worker's replication origin),
// Begin, Apply (dispatching each change to the fast or careful path), Prepare, Commit (stops and
// conflicts to record, progress through the origin, COMMIT) and Abort. What a group's changes
// become is in change_statements.cc, fast_path.cc and careful_path.cc.
#include "connectors/postgres/sink/postgres_session.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "connectors/postgres/sink/bookkeeping.h"
#include "connectors/postgres/sink/origins.h"
#include "engine/base/status_macros.h"

namespace ferry::pg_sink {

PostgresSession::PostgresSession(const PostgresSinkOptions& options, std::string dsn,
                                 std::string origin, std::atomic<uint64_t>* one_trip_groups,
                                 std::atomic<uint64_t>* schema_generation,
                                 ResnapshotRegistry* resnapshots,
                                 const TargetIncarnation* incarnation)
    : options_(options),
      dsn_(std::move(dsn)),
      origin_(std::move(origin)),
      one_trip_groups_(one_trip_groups),
      schema_generation_(schema_generation),
      resnapshots_(resnapshots),
      incarnation_(incarnation),
      tables_(options.replica_role) {}

absl::Status PostgresSession::Connect() {
  pipe_.reset();
  tables_.Clear();
  FERRY_ASSIGN_OR_RETURN(pipe_, Pipeline::Connect(dsn_));
  planned_since_ = options_.clock->Now();
  std::vector<std::string> setup = {
      absl::StrCat("SET lock_timeout = ", absl::ToInt64Milliseconds(options_.lock_timeout)),
      "SET DateStyle = ISO", "SET IntervalStyle = postgres", "SET extra_float_digits = 3",
      "SET bytea_output = hex",
      // Plan each prepared statement once. A set-based statement of a group of one or a few
      // rows (unnest of its parameter arrays joined on the key) costs far less as a custom plan
      // than its generic plan's estimate of 10 rows, so Postgres's default re-planned it on
      // every execution, for ever: 0.22 ms of planning per group for pgbench_accounts, a sixth
      // of the standby's CPU at 200 tps. Every statement here finds its rows by the replica
      // identity, which a generic plan does as well as a custom one (a native subscription's
      // apply does not plan at all). Begin drops the statements now and then, so that the
      // plans follow the tables' sizes (PostgresSinkOptions::replan_interval).
      "SET plan_cache_mode = force_generic_plan"};
  if (options_.replica_role) setup.push_back("SET session_replication_role = replica");
  // With synchronous commits asked for, a server, database or role default of off would make
  // the commits apply counts durable only later: that default becomes local (a stronger one,
  // such as remote_apply for the target's own standbys, is kept).
  setup.push_back(options_.synchronous_commit
                      ? "SELECT set_config('synchronous_commit', 'local', false) "
                        "WHERE current_setting('synchronous_commit') = 'off'"
                      : "SET synchronous_commit = off");
  // A connection whose setup failed half-way is never used: the next Begin connects again.
  auto fail = [this](absl::Status s) {
    pipe_.reset();
    return s;
  };
  for (const auto& sql : setup) {
    auto r = pipe_->Run(sql);
    if (!r.ok()) return fail(Annotate(r.status(), "setting up the target session"));
  }
  if (incarnation_ != nullptr) {
    // target_incarnation.h: a crash since the round began may have taken back its commits.
    // The token is set only when commits are asynchronous (LoadState), the only case in which
    // a crash can take them back.
    const std::string token = incarnation_->token();
    if (!token.empty()) {
      auto r = pipe_->Run("SELECT token FROM ferry.target_run WHERE source_region = $1",
                          {options_.source_region});
      if (!r.ok()) return fail(Annotate(r.status(), "reading the target's run"));
      if (r->result.rows() != 1 || r->result.Get(0, 0) != token) {
        return fail(absl::UnavailableError(
            "the target database crashed or was restarted since this apply round began: its "
            "unflushed commits may be gone, so the progress is read again"));
      }
    }
  }
  if (!origin_.empty()) {
    absl::Status s = CreateOrigin(*pipe_, origin_);
    if (!s.ok()) return fail(Annotate(s, "creating replication origin " + origin_));
    s = HoldOrigin(*pipe_, origin_);
    if (!s.ok()) return fail(std::move(s));  // busy: the next Begin tries again
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
  expanded_.clear();
  txn_seq_ = context.first_seq;
  planned_ = nullptr;
  resnapshots_in_group_.clear();
  resnapshotted_.clear();
  if (in_txn_) Abort();
  if (pipe_ == nullptr || pipe_->broken()) FERRY_RETURN_IF_ERROR(Connect());
  // Another session replayed a schema change: what this one knew of the tables may be stale.
  const uint64_t generation = schema_generation_->load(std::memory_order_acquire);
  if (generation != seen_schema_generation_) {
    tables_.Clear();
    pipe_->ForgetPrepared();
    seen_schema_generation_ = generation;
  }
  // Generic plans (Connect) are made again now and then, so that one made while a table was
  // small does not outlive the table's growth (PostgresSinkOptions::replan_interval).
  if (const absl::Time now = options_.clock->Now();
      now - planned_since_ >= options_.replan_interval) {
    pipe_->ForgetPrepared();
    planned_since_ = now;
  }
  if (ctx_.plan != nullptr && !ctx_.careful && !ctx_.streamed && !ctx_.only_table) {
    const auto* plan = dynamic_cast<const PlannedGroup*>(ctx_.plan.get());
    if (plan != nullptr && PlanUsable(*plan)) planned_ = plan;
  }
  return absl::OkStatus();
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
  if (it == ctx_.stopped->end() || txn_seq_ < it->second.seq) return false;
  // A re-snapshot since the stop replaced the table's copy: its changes apply again.
  const uint64_t stop_seq = it->second.seq;
  for (const TableResnapshot& r : resnapshots_in_group_) {
    if (r.table == table && r.seq >= stop_seq && r.seq <= txn_seq_) return false;
  }
  return resnapshots_ == nullptr || !resnapshots_->Lifts(table, stop_seq, txn_seq_);
}

absl::Status PostgresSession::Fault(const TableName& table, std::string reason,
                                    std::optional<ConflictInfo> conflict) {
  fault_ = TableFault{table, txn_seq_, reason, std::move(conflict)};
  return absl::FailedPreconditionError(
      absl::StrCat("table ", table.ToString(), " at seq ", txn_seq_, ": ", reason));
}

absl::Status PostgresSession::EnsureTable(const v1::Relation& rel) {
  if (tables_.Verified(rel)) return absl::OkStatus();
  FERRY_RETURN_IF_ERROR(EnsureBegun());
  FERRY_RETURN_IF_ERROR(FlushInserts());
  FERRY_RETURN_IF_ERROR(FlushBatch());
  FERRY_RETURN_IF_ERROR(SyncAndCheck());
  const TableName name = NameOf(rel);
  if (rel.name().empty()) return Fault(name, "the relation has no name");
  std::string refusal;
  FERRY_RETURN_IF_ERROR(tables_.Reconcile(*pipe_, rel, &refusal));
  if (!refusal.empty()) return Fault(name, std::move(refusal));
  return absl::OkStatus();
}

absl::Status PostgresSession::Statement(const TableName& table, const std::string& sql,
                                        const std::vector<const std::string*>& params,
                                        int64_t expect_rows, const char* what, StatementResult* out,
                                        bool server_checked) {
  FERRY_RETURN_IF_ERROR(EnsureBegun());
  if (!ctx_.careful) return QueueStatement(table, sql, params, expect_rows, what, server_checked);
  return RunStatement(table, sql, params, what, out);
}

absl::Status PostgresSession::RecordConflict(const TableName& table, uint64_t seq,
                                             const ConflictInfo& c) {
  FERRY_RETURN_IF_ERROR(
      pg_sink::RecordConflict(*pipe_, options_.source_region, table, seq, txn_commit_us_, c));
  ++conflicts_pending_;
  return absl::OkStatus();
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
    if (change.op() == v1::MESSAGE) {
      FERRY_RETURN_IF_ERROR(ApplyFerryMessage(seq, change));  // others are not replayed
      continue;
    }
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
    if (change.op() == v1::COPY) {
      FERRY_RETURN_IF_ERROR(ApplyCopyRows(rel, change));
      continue;
    }
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
  // Nothing written (heartbeats, or changes of stopped tables only): the progress is committed
  // all the same, so that the target's progress reaches the end of what was applied and a new
  // inbound log can start right after it (the receiver's handshake). At most one such commit per
  // heartbeat when idle. A transaction that wrote nothing commits no WAL record and would not
  // move the origin: it takes a transaction id first. So does one whose statements happened to
  // write nothing (sequence values the target is already past, no setval run): the durable
  // progress and the restart point are the origins', and must reach every group apply counts.
  const bool nothing_written = !in_txn_ && ctx_.new_stops.empty() && !ctx_.only_table;
  if (nothing_written && (progress_seq == 0 || origin_.empty())) return absl::OkStatus();
  if (pipe_ == nullptr) return absl::UnavailableError("no target connection");
  FERRY_RETURN_IF_ERROR(EnsureBegun());
  if (progress_seq > 0 && !origin_.empty()) {
    FERRY_RETURN_IF_ERROR(
        pipe_->SendPrepared("SELECT pg_current_xact_id()", {}, [this](StatementResult& r) {
          if (!r.ok && deferred_.ok()) {
            deferred_ = absl::UnavailableError("taking a transaction id failed: " + r.message);
          }
        }));
  }
  for (const TableStop& stop : ctx_.new_stops) {
    FERRY_RETURN_IF_ERROR(RecordStop(*pipe_, options_.source_region, stop));
    if (stop.conflict) FERRY_RETURN_IF_ERROR(RecordConflict(stop.table, stop.seq, *stop.conflict));
  }
  if (ctx_.only_table) {
    FERRY_RETURN_IF_ERROR(ClearStop(*pipe_, options_.source_region, *ctx_.only_table));
  }
  for (const TableResnapshot& r : resnapshots_in_group_) {
    // Unless the table stopped again after the re-snapshot (a stop this group records).
    const bool stopped_later =
        std::any_of(ctx_.new_stops.begin(), ctx_.new_stops.end(),
                    [&](const TableStop& s) { return s.table == r.table && s.seq > r.seq; });
    if (!stopped_later) FERRY_RETURN_IF_ERROR(ClearStop(*pipe_, options_.source_region, r.table));
  }
  if (progress_seq > 0 && !origin_.empty()) {
    FERRY_RETURN_IF_ERROR(
        QueueProgress(*pipe_, progress_seq, commit_time_us, [this](StatementResult& r) {
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
  for (const TableResnapshot& r : resnapshots_in_group_) {
    if (resnapshots_ != nullptr) resnapshots_->Record(r.table, r.seq);
  }
  resnapshotted_ = std::move(resnapshots_in_group_);
  resnapshots_in_group_.clear();
  return absl::OkStatus();
}

void PostgresSession::Abort() {
  resnapshots_in_group_.clear();
  run_rel_ = nullptr;
  run_rows_.clear();
  batch_.Clear();
  planned_ = nullptr;
  ctx_.plan.reset();
  conflicts_pending_ = 0;
  tables_.Clear();  // DDL of the aborted transaction is gone
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

}  // namespace ferry::pg_sink
