// The interface between the engine's apply scheduler and a change target (Postgres today, a
// bucket in the next wave). The engine owns it; a connector implements Sink and SinkSession
// and never touches the engine's internals.
//
// Model. The scheduler reads the inbound log and cuts it into groups of consecutive records.
// Each group is applied by one SinkSession (one target connection) as ONE target transaction,
// and groups commit strictly in log order, so the committed progress is always a prefix of the
// log. Progress is committed in the target in the same transaction as the data (invariant 3):
// Commit(progress_seq, ...) makes "everything up to log seq progress_seq is applied" durable
// atomically with the group's effects, and Sink::LoadState() reads it back after a restart.
//
// Tables. A change that a table cannot take (unknown or incompatible shape, a value the column
// refuses, a conflict under the "stop" policy) stops that table and no other (invariant 7): the
// session reports a TableFault, the scheduler rolls back every uncommitted group, and re-applies
// from the committed prefix with the table excluded from the fault's seq on. The stop is
// persisted by the session in the group that carries GroupContext::new_stops, atomically with
// the progress that passes it.
//
// Example (what the scheduler does with one group, simplified):
//   FERRY_RETURN_IF_ERROR(session->Begin(context));
//   for (const auto& [seq, fragment] : group) FERRY_RETURN_IF_ERROR(session->Apply(seq, fragment));
//   FERRY_RETURN_IF_ERROR(session->Prepare());
//   ... wait until every earlier group committed ...
//   FERRY_RETURN_IF_ERROR(session->Commit(last_seq, commit_time_us));
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/change.pb.h"

namespace ferry {

// A target table (for a bucket sink: schema = bucket, name = key prefix or "").
struct TableName {
  std::string schema;
  std::string name;
  bool operator==(const TableName&) const = default;
  auto operator<=>(const TableName&) const = default;
  std::string ToString() const { return schema + "." + name; }
};

// What to do when a change does not fit the target's rows.
enum class ConflictPolicy {
  kStopTable,    // record the conflict, stop the table (operator decides)
  kApplyRemote,  // record the conflict, make the target row equal the remote version
};

// A conflict as the sink records it (ferry.conflicts on Postgres).
struct ConflictInfo {
  std::string kind;        // "insert_exists", "update_missing", "delete_missing"
  std::string remote_row;  // JSON object of the remote row image (column -> text or null)
  std::string local_row;   // JSON object of the target row before resolution, "" when none
  std::string resolution;  // "applied_remote", "skipped", "table_stopped"
};

// A table that must not receive changes at or after `seq`.
struct TableStop {
  TableName table;
  uint64_t seq = 0;    // log seq of the first source transaction NOT applied to the table
  std::string reason;  // operator-facing, names the cause
  std::optional<ConflictInfo> conflict;  // when a conflict (policy kStopTable) stopped it
};

// Reported by a session when one table cannot take a change. `stop.seq` is the seq of the
// failing source transaction's first fragment (the table stops at a transaction boundary).
using TableFault = TableStop;

// Tables currently stopped, by name, each with its stop seq. Changes of a table with seq >=
// its stop seq are skipped (they stay in the inbound log for ResumeTable); earlier ones apply.
using StoppedTables = std::map<TableName, TableStop>;

// A table re-snapshotted by a committed group (SinkSession::resnapshotted): its copy was
// replaced at log seq `seq` (the re-snapshot's source transaction) and its stop, if it had one
// from seq or before, was cleared in the same target transaction.
struct TableResnapshot {
  TableName table;
  uint64_t seq = 0;
};

// A log id as the shipper makes it: exactly 32 lowercase hex digits. Anything else (empty,
// oversized, other characters) is refused wherever a log id comes from outside.
inline bool IsValidLogId(const std::string& id) {
  if (id.size() != 32) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The log apply reads, as the scheduler tells the sink (Sink::LoadState). Log identity: the
// inbound log copies the shipping region's outbound log, whose random id (32 hex digits, the
// Hello's log_id) the receiver records before it appends anything; seqs mean something only
// together with that id. A sink keeps the id beside its progress, so that progress counted in
// another log (the peer's data_dir re-created, a re-seed) is never taken for this one's.
struct UpstreamLog {
  // The shipper's outbound log id the inbound log copies; "" for an inbound log that never
  // recorded one (written by a ferryd before log ids, or by a test).
  std::string log_id;
  // The inbound log's readable range [first_seq, next_seq): a sink may adopt progress that
  // carries no recorded id (written before ids were recorded) only when the log holds the record
  // right after it, first_seq <= progress + 1 <= next_seq.
  uint64_t first_seq = 1;
  uint64_t next_seq = 1;
};

// Persistent state a sink keeps in its target.
struct SinkState {
  uint64_t applied_seq = 0;  // committed progress (0: nothing applied yet)
  // The upstream log whose seqs applied_seq counts. Equal to UpstreamLog::log_id when the
  // progress is this log's (or there is none); anything else ("" = not recorded) is an identity
  // mismatch: the progress counts another log, and apply must not use it.
  std::string log_id;
  StoppedTables stopped;
  uint64_t conflicts = 0;  // conflicts recorded so far
};

// A target's committed progress and the log it counts, as the receiver's handshake asks for it
// (Sink::CommittedProgress): a new inbound log may start right after it.
struct TargetProgress {
  std::string log_id;        // "" when not recorded (then nothing may be resumed from it)
  uint64_t applied_seq = 0;  // durable in the target
};

// Work a sink did ahead for one group (Sink::Plan); opaque to the engine.
class GroupPlan {
 public:
  virtual ~GroupPlan() = default;
};

// The transactions of a group: (log seq, fragment), in log order.
using GroupTransactions = std::vector<std::pair<uint64_t, v1::Transaction>>;

// What a session needs to know about the group it applies.
struct GroupContext {
  uint64_t first_seq = 0;
  // Skip filter for this group (shared, immutable).
  std::shared_ptr<const StoppedTables> stopped;
  // Stops to persist in this group's transaction (not yet persisted).
  std::vector<TableStop> new_stops;
  // Apply change by change and resolve conflicts inline (slow, exact); the scheduler asks for
  // it after the fast path failed for this range.
  bool careful = false;
  // The group's fragments are read from the log one at a time (a large transaction): a
  // fragment passed to Apply may be gone when Apply returns, so the session must not keep
  // pointers into it past that call. Otherwise fragments live until Prepare() or Abort().
  bool streamed = false;
  // Catch-up replay of one stopped table (ApplyScheduler::ResumeTable): apply only this
  // table's changes, ignoring its stop; Commit does not move progress and clears the table's
  // stop in the same transaction.
  std::optional<TableName> only_table;
  // What Sink::Plan prepared for this group (null: nothing). The session may use it instead of
  // doing that work in Apply; Apply is still called for every fragment.
  std::shared_ptr<const GroupPlan> plan;
};

// One target connection. Used by one thread at a time (its worker). All methods are
// exception-free. Error codes follow engine/base/status_macros.h:
//   kUnavailable / kAborted  transient: the scheduler rolls back every uncommitted group, backs
//                            off and re-applies from the committed progress.
//   kFailedPrecondition with fault() set: one table cannot take a change (see TableFault).
//   kDataLoss / kInvalidArgument: malformed input that names no table; apply stops.
class SinkSession {
 public:
  virtual ~SinkSession() = default;

  // Opens a target transaction for a group. Reconnects first when the connection was lost.
  [[nodiscard]] virtual absl::Status Begin(const GroupContext& context) = 0;
  // Applies one transaction fragment (log record `seq`) into the open transaction. May queue
  // work: errors of earlier Apply calls may be reported by a later call or by Prepare().
  [[nodiscard]] virtual absl::Status Apply(uint64_t seq, const v1::Transaction& fragment) = 0;
  // Finishes all queued work and checks it; after OK, Commit fails only for transient reasons.
  [[nodiscard]] virtual absl::Status Prepare() = 0;
  // Records progress `progress_seq` (the group's last seq; ignored for only_table replays) and
  // the source commit time of its last transaction, and commits. On an error the outcome is
  // unknown: the scheduler re-reads the state with Sink::LoadState().
  [[nodiscard]] virtual absl::Status Commit(uint64_t progress_seq, int64_t commit_time_us) = 0;
  // Prepare() and Commit() as one step, for a group whose turn to commit has already come
  // (every group before it committed): a sink may send the work and the commit together, in
  // one round trip. An error of the work (what Prepare() would report) means nothing was
  // committed; an error of the commit step leaves the outcome unknown, as for Commit(). The
  // scheduler reloads the progress from the target after any error, so it never relies on
  // telling the two apart.
  [[nodiscard]] virtual absl::Status PrepareAndCommit(uint64_t progress_seq,
                                                      int64_t commit_time_us) {
    if (absl::Status s = Prepare(); !s.ok()) return s;
    return Commit(progress_seq, commit_time_us);
  }
  // Rolls back the open transaction (no-op when none). Never fails: a broken connection is
  // dropped and re-opened by the next Begin.
  virtual void Abort() = 0;

  // After kFailedPrecondition from Apply/Prepare: the table that could not take the change.
  virtual std::optional<TableFault> fault() const = 0;
  // Conflicts recorded (and committed) by this session since it was opened.
  virtual uint64_t conflicts_committed() const = 0;
  // The tables the last committed group re-snapshotted (a source's re-snapshot of a table: the
  // group applied the table's changes from there on even if it was stopped, and the commit
  // cleared its stop). Valid after Commit()/PrepareAndCommit() returned OK, until the next
  // Begin(). The scheduler drops them from its stopped set. Default: none.
  virtual std::vector<TableResnapshot> resnapshotted() const { return {}; }
};

// The unit-of-work keys that make two changes of one table dependent on the target, besides the
// replica identity: the column sets of the target's unique constraints.
using UniqueKeys = std::vector<std::vector<std::string>>;

// A change target. Thread-safe.
class Sink {
 public:
  virtual ~Sink() = default;
  // Reads the committed progress, stopped tables and conflict count from the target (creating
  // the bookkeeping it needs), for applying `upstream`. When the target holds no progress, it
  // records (before any group commits) that its progress counts upstream.log_id; when it holds
  // progress, state.log_id says which log that progress counts (see SinkState). Sessions opened
  // afterwards commit progress for that log. kUnavailable while the target is away.
  [[nodiscard]] virtual absl::StatusOr<SinkState> LoadState(const UpstreamLog& upstream) = 0;
  // Opens session number `worker` (0-based; each has its own progress slot in the target).
  [[nodiscard]] virtual absl::StatusOr<std::unique_ptr<SinkSession>> OpenSession(int worker) = 0;
  // Unique constraints of the target table that `relation` maps to, beyond the replica
  // identity (empty when the table does not exist yet). Cached; kUnavailable while away.
  [[nodiscard]] virtual absl::StatusOr<UniqueKeys> UniqueKeysOf(const v1::Relation& relation) = 0;
  // The progress that survives a crash of the target, when Commit may return before the commit
  // is durable (Postgres: synchronous_commit = off). nullopt: every commit is durable when
  // Commit returns. The engine keeps inbound records after this point (never trims them), so
  // that whatever a crash of the target takes back can be applied again. kAborted: the target
  // crashed since the round began (LoadState), so commits the engine counts may be gone; the
  // engine ends the round and reads the progress again, even when it has nothing new to apply.
  [[nodiscard]] virtual absl::StatusOr<std::optional<uint64_t>> DurableSeq() {
    return std::optional<uint64_t>();
  }
  // For the receiver's handshake: the durable committed progress and the log it counts, read
  // without changing anything. kUnimplemented when the sink cannot tell (then a new inbound log
  // is never started past seq 1); kUnavailable while the target is away.
  [[nodiscard]] virtual absl::StatusOr<TargetProgress> CommittedProgress() {
    return absl::UnimplementedError("this sink does not report its progress");
  }
  // Re-seed (docs/operations.md): discards the target's progress, which must count the log
  // `discard_log_id` ("" = progress whose log was never recorded), so that apply starts the
  // inbound log `keep_log_id` from its beginning. kFailedPrecondition when the progress counts
  // `keep_log_id` (nothing is discarded, ever, of the log being applied) or a log other than
  // `discard_log_id`; kUnavailable when an applier still holds the progress. Idempotent: after a
  // crash part-way it is simply run again. Returns the progress discarded (0 when none was left).
  [[nodiscard]] virtual absl::StatusOr<uint64_t> DiscardProgress(const std::string& discard_log_id,
                                                                 const std::string& keep_log_id) {
    (void)discard_log_id;
    (void)keep_log_id;
    return absl::UnimplementedError("this sink cannot discard its progress");
  }
  // Optional, for speed: the client-side part of applying a group (encoding its statements),
  // done by the scheduler's reader thread while workers apply earlier groups, so that it
  // overlaps with the target's work instead of adding to it. Must not touch the target. The
  // plan may point into `txns`, which outlive it. nullptr: nothing prepared.
  [[nodiscard]] virtual std::shared_ptr<const GroupPlan> Plan(const GroupTransactions& txns) {
    (void)txns;
    return nullptr;
  }
};

}  // namespace ferry
