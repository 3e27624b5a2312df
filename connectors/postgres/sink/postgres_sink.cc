// PostgresSink: options, the admin connection, and what the scheduler asks of the sink as a
// whole (state, sessions, unique keys, plans, durable progress). The work is elsewhere:
// bookkeeping.h (schema ferry), origins.h (progress), postgres_session.h (applying groups),
// fast_path.h (plans).
#include "connectors/postgres/sink/postgres_sink.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "connectors/postgres/common/identifiers.h"
#include "connectors/postgres/sink/bookkeeping.h"
#include "connectors/postgres/sink/fast_path.h"
#include "connectors/postgres/sink/origins.h"
#include "connectors/postgres/sink/pipeline.h"
#include "connectors/postgres/sink/postgres_session.h"
#include "engine/base/status_macros.h"

namespace ferry {

using pg_sink::Pipeline;
using pg_sink::StatementResult;

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
  return pg_sink::OriginName(options_.source_region, options_.epoch, worker);
}

std::string PostgresSink::Dsn() const {
  return absl::StrCat(options_.dsn, " connect_timeout=", options_.connect_timeout_seconds,
                      " application_name=ferry_apply");
}

// Apply needs a superuser on the target: SET session_replication_role = replica (so that user
// triggers and foreign keys do not fire on replicated rows) and the replication origin functions
// (exactly-once progress) are refused to other roles. Said at once, naming the role and the fix,
// rather than as a "permission denied" from whichever statement runs first. kPermissionDenied:
// apply retries with backoff, so a grant takes effect without a restart.
absl::Status PostgresSink::CheckPrivileges(Pipeline& pipe) const {
  FERRY_ASSIGN_OR_RETURN(
      pg_sink::StatementResult r,
      pipe.Run("SELECT rolname, rolsuper FROM pg_roles WHERE rolname = current_user"));
  if (!r.ok || r.result.rows() != 1) {
    return absl::UnavailableError(
        absl::StrCat("apply: cannot read the target role's privileges: ", r.message));
  }
  const std::string role(r.result.Get(0, 0));
  if (options_.replica_role && r.result.Get(0, 1) != "t") {
    return absl::PermissionDeniedError(absl::StrCat(
        "apply: the target's database role '", role,
        "' is not a superuser; apply needs one for SET session_replication_role = replica and "
        "for the replication origin functions. Run ALTER ROLE ",
        role, " SUPERUSER on the target, or connect as one (docs/operations.md, Privileges)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<SinkState> PostgresSink::LoadState(const UpstreamLog& upstream) {
  absl::MutexLock lock(&mu_);
  // A new round: no group is in flight, and the stops are read again from the target, where
  // committed re-snapshots already deleted theirs (seqs of another log must never lift one).
  resnapshots_.Clear();
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Pipeline> pipe, Pipeline::Connect(Dsn()));
  FERRY_RETURN_IF_ERROR(CheckPrivileges(*pipe));
  FERRY_RETURN_IF_ERROR(pg_sink::CreateBookkeeping(*pipe));
  // Before the progress is read: a crash after this makes sessions refuse (target_incarnation.h).
  // Only asynchronous commits can be taken back by a crash; with synchronous_commit on, sessions
  // never check the token, so none is written.
  if (!options_.synchronous_commit) {
    const std::string token = absl::StrCat(absl::Hex(absl::Uniform<uint64_t>(bitgen_)),
                                           absl::Hex(absl::Uniform<uint64_t>(bitgen_)));
    FERRY_RETURN_IF_ERROR(
        pipe->Run("INSERT INTO ferry.target_run (source_region, token) VALUES ($1, $2) "
                  "ON CONFLICT (source_region) DO UPDATE SET token = EXCLUDED.token",
                  {options_.source_region, token})
            .status());
    incarnation_.Set(token);
  }
  SinkState state;
  FERRY_ASSIGN_OR_RETURN(
      pg_sink::LoadedProgress progress,
      pg_sink::LoadProgress(*pipe, options_.source_region, options_.epoch, upstream));
  state.applied_seq = progress.applied_seq;
  state.log_id = std::move(progress.log_id);
  FERRY_ASSIGN_OR_RETURN(state.stopped, pg_sink::ReadStops(*pipe, options_.source_region));
  FERRY_ASSIGN_OR_RETURN(state.conflicts, pg_sink::CountConflicts(*pipe, options_.source_region));
  return state;
}

absl::StatusOr<TargetProgress> PostgresSink::CommittedProgress() {
  absl::MutexLock lock(&mu_);
  FERRY_ASSIGN_OR_RETURN(Pipeline * admin, AdminConnection());
  absl::StatusOr<TargetProgress> progress =
      pg_sink::ReadCommittedProgress(*admin, options_.source_region);
  if (!progress.ok()) admin_.reset();
  return progress;
}

absl::StatusOr<uint64_t> PostgresSink::DiscardProgress(const std::string& discard_log_id,
                                                       const std::string& keep_log_id) {
  if ((!discard_log_id.empty() && !IsValidLogId(discard_log_id)) ||
      (!keep_log_id.empty() && !IsValidLogId(keep_log_id))) {
    return absl::InvalidArgumentError("a log id is 32 lowercase hex digits");
  }
  absl::MutexLock lock(&mu_);
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Pipeline> pipe, Pipeline::Connect(Dsn()));
  FERRY_RETURN_IF_ERROR(CheckPrivileges(*pipe));
  FERRY_RETURN_IF_ERROR(pg_sink::CreateBookkeeping(*pipe));
  return pg_sink::DiscardProgress(*pipe, options_.source_region, discard_log_id, keep_log_id);
}

absl::StatusOr<std::unique_ptr<SinkSession>> PostgresSink::OpenSession(int worker) {
  auto session = std::make_unique<pg_sink::PostgresSession>(options_, Dsn(), OriginName(worker),
                                                            &one_trip_groups_, &schema_generation_,
                                                            &resnapshots_, &incarnation_);
  return std::unique_ptr<SinkSession>(std::move(session));
}

std::shared_ptr<const GroupPlan> PostgresSink::Plan(const GroupTransactions& txns) {
  if (!options_.replica_role) return nullptr;
  return pg_sink::PlanGroup(txns, options_.max_value_bytes);
}

absl::StatusOr<std::optional<uint64_t>> PostgresSink::DurableSeq() {
  if (options_.synchronous_commit) return std::optional<uint64_t>();
  absl::MutexLock lock(&mu_);
  FERRY_ASSIGN_OR_RETURN(Pipeline * admin, AdminConnection());
  absl::StatusOr<pg_sink::DurableProgressAndToken> durable =
      pg_sink::DurableProgress(*admin, options_.source_region);
  if (!durable.ok()) {
    admin_.reset();
    // kAborted means a crash to the caller: a failed query (even a serialization failure,
    // which Run reports as kAborted) is only a poll that did not answer.
    const absl::Status& s = durable.status();
    return s.code() == absl::StatusCode::kAborted ? absl::UnavailableError(s.message()) : s;
  }
  // A crash since the round began may have taken back commits apply counts, and an idle apply
  // has no session to find it out (target_incarnation.h): the token tells.
  const std::string token = incarnation_.token();
  if (!token.empty() && durable->run_token != token) {
    return absl::AbortedError(
        "the target database crashed or was restarted since this apply round began: its "
        "unflushed commits may be gone, so the progress is read again");
  }
  return std::optional<uint64_t>(durable->seq);
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
