// ApplyScheduler: applies the inbound log to a Sink exactly once, in order, in parallel.
//
// Threads. One reader thread (the "scheduler") reads the inbound log from the committed
// progress on, decodes transactions, cuts them into groups of consecutive records (bounded by
// transactions and bytes; a group is dispatched at once when the log has nothing more), computes
// each group's dependency on earlier uncommitted groups (DependencyTracker) and queues it. N
// worker threads each own one SinkSession (one target connection): a worker takes the next
// group, waits until the group it depends on committed, applies the group into one target
// transaction, waits for its turn and commits. Groups commit strictly in log order, so the
// committed progress is a consistent prefix of the log (invariant 4) and is stored in the
// target in the same transaction as the data (invariant 3).
//
// A source transaction split into several fragments is applied as its own group, streamed from
// the log by the worker (never whole in memory), after every earlier group committed and before
// any later one starts. Fragment 0 of a transaction while one is incomplete discards the
// incomplete one (the worker rolls back and starts over).
//
// Log identity. The target's progress counts the seqs of one upstream log (the shipper's
// outbound log id, which the receiver records in the inbound log). Each round binds the sink to
// the inbound log's id (Sink::LoadState); when the target's progress counts another log, apply
// stops for good before reading anything ("identity mismatch" in status and the log), and a
// round ends as soon as the inbound log records another id. A new inbound log that recorded
// no id yet holds nothing to apply: apply waits for it without reading the target.
//
// Failures. Any failure rolls back every uncommitted group ("reset"), re-reads the progress
// from the sink and re-applies from there:
//   transient (kUnavailable: target down or restarting)  -> backoff on the injected Clock;
//   kAborted (deadlock, conflict or error in the fast path) -> that range again, serially and
//                                                          change by change ("careful");
//   TableFault (kFailedPrecondition + fault)              -> the table is stopped from the
//                                                          fault's transaction on; others go on;
//   anything else (malformed log records)                  -> apply stops; status() says why.
// A stopped table's later changes are skipped by apply but stay in the inbound log
// (cursor "apply_retain_from" says from where); ResumeTable() replays them once an operator has
// fixed the cause. See engine/apply/README.md, which also maps the parts: InboundReader (the
// only reader of the inbound log), GroupBuilder, CommitOrder, ApplyWorker and the table replay.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(auto apply, ApplyScheduler::Start({.workers = 4}, inbound, &sink));
//   apply->WaitForApplied(seq, absl::Seconds(10));
//   ApplyStatus s = apply->status();
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "engine/api/sink.h"
#include "engine/apply/dependency_tracker.h"
#include "engine/apply/relation_catalog.h"
#include "engine/base/backoff.h"
#include "engine/base/clock.h"
#include "engine/base/log_limiter.h"
#include "engine/log/durable_log.h"
#include "engine/log/log_names.h"
#include "engine/stats/table_counts.h"

namespace ferry {

struct ApplyGroup;
class ApplyWorker;
class CommitOrder;
class GroupBuilder;
class InboundReader;

struct ApplyOptions {
  // Worker sessions (target connections) applying groups in parallel. 1 = serial apply.
  int workers = 4;
  // A group (one target transaction) closes after this many source transactions...
  size_t max_group_transactions = 1000;
  // ...or this many payload bytes (compressed snapshot rows counted inflated).
  size_t max_group_bytes = 8 << 20;
  // Groups dispatched but not committed; 0 means 2 * workers.
  size_t max_inflight_groups = 0;
  // Change bytes of dispatched, uncommitted groups, at most (one group always goes): what the
  // scheduler holds parsed in memory (with each group's plan, about 3x the payload). Without it
  // an initial load held 1 GB; at 64 MiB a catch-up peaked at 261 MB (bench/RESULTS.md).
  size_t max_inflight_bytes = size_t{32} << 20;
  // Log reads.
  size_t read_batch_records = 2048;
  size_t read_batch_bytes = 16 << 20;
  // Backoff between retries after transient failures, on `clock`.
  absl::Duration backoff_initial = absl::Milliseconds(50);
  absl::Duration backoff_max = absl::Seconds(5);
  Clock* clock = Clock::Real();
  // How long the reader waits for new records before re-checking for work (wake-up granularity
  // only; never relied on for correctness).
  absl::Duration idle_wait = absl::Milliseconds(100);
  // While a group is not full and could not start (it depends on a group in flight, or every
  // worker is busy), the reader keeps collecting records into it for at most max_group_delay,
  // re-checking every collect_wait.
  absl::Duration max_group_delay = absl::Milliseconds(20);
  absl::Duration collect_wait = absl::Milliseconds(1);
  // How often the reader reads the sink's durable progress (Sink::DurableSeq), on `clock`.
  // Config apply.durable_poll_ms.
  absl::Duration durable_poll = absl::Milliseconds(200);
  // The cursors `applied` and `apply_retain_from` are written at most this often, on `clock`.
  absl::Duration cursor_interval = absl::Milliseconds(100);
  // A stopped table keeps the inbound log from its stop on (for ResumeTable), but at most this
  // many bytes of it (the log between its stop and apply's progress, RocksDB's estimate). Past
  // that the table needs a re-snapshot: it stays stopped, stops pinning the log (trimming goes
  // on) and ResumeTable refuses it. Checked every durable_poll. Config
  // apply.stopped_table_retention_bytes.
  uint64_t stopped_table_retention_bytes = uint64_t{1} << 30;
  // Cursors maintained on the inbound log.
  std::string applied_cursor = kAppliedCursor;
  std::string retain_cursor = kApplyRetainCursor;
  // Called after every committed group with its apply latency (target commit time minus the
  // source commit time of its last transaction) and its number of source transactions. Runs
  // on a worker thread; must be cheap and thread-safe (a metrics histogram).
  std::function<void(absl::Duration latency, size_t transactions)> on_group_committed;
  // Per-table counts of the row changes committed (tables stopped in a group are not counted);
  // not owned, may be null. Added to after every committed group, on a worker thread.
  TableCounts* table_counts = nullptr;
};

// What a stopped table holds of the inbound log, and whether it has lost it.
struct StoppedTableLog {
  // Bytes of inbound log from the table's stop to apply's progress (0 once released).
  uint64_t retained_bytes = 0;
  // The table's changes from its stop on are (or may soon be) trimmed: ResumeTable cannot
  // replay them, the table needs a re-snapshot.
  bool needs_resnapshot = false;
  // Why, as a short code: "retention_bytes" (over stopped_table_retention_bytes) or
  // "log_trimmed" (found trimmed, e.g. after a restart); and for people.
  std::string cause;
  std::string reason;
};

struct ApplyStatus {
  bool paused = false;
  bool failed = false;       // stopped for good (see last_error)
  std::string last_error;    // the error being retried, or the one that stopped apply
  uint64_t applied_seq = 0;  // last log seq committed in the target
  uint64_t durable_seq = 0;  // last log seq whose commit is durable in the target
  // Why the last reading of durable_seq failed (the target away, a query error); empty once a
  // reading answers. A promote or switchover that times out waiting for durable_seq says it.
  std::string durable_error;
  uint64_t lag_records = 0;      // records in the log after applied_seq
  absl::Duration apply_latency;  // target commit time - source commit time, last group
  StoppedTables stopped_tables;
  // For each stopped table: how much log it holds, whether it needs a re-snapshot.
  std::map<TableName, StoppedTableLog> stopped_table_logs;
  uint64_t conflicts = 0;  // recorded in the target (since the beginning)
  uint64_t groups_committed = 0;
  uint64_t transactions_applied = 0;
  uint64_t resets = 0;  // rollbacks of all uncommitted groups (retries)
  // The upstream log (engine/api/sink.h UpstreamLog) apply counts: the one the inbound log
  // copies ("" before the receiver recorded one).
  std::string log_id;
  // Apply refuses the target's progress because it counts another upstream log (failed is then
  // true, and nothing of the inbound log was applied): the log it counts ("" = not recorded)
  // and that progress. docs/operations.md, "Re-seeding a region", says what the operator does.
  bool identity_mismatch = false;
  std::string target_log_id;
  uint64_t target_applied_seq = 0;
};

// For the message of a wait for ApplyStatus::durable_seq that timed out: " (the last reading of
// it failed: <why>)" when durable_error says one did, else "".
std::string DurableErrorSuffix(const ApplyStatus& status);

// The error of a wait for apply's progress through `seq` (WaitForApplied, WaitForDurable) that
// ended short of it. When apply stopped for good short of seq (status.failed, applied_seq < seq)
// a longer wait cannot help: kFailedPrecondition "<who>'s apply stopped for good after seq
// <applied_seq>: <last_error>". Otherwise the wait ran out: kDeadlineExceeded with `timed_out`.
absl::Status ApplyWaitError(const ApplyStatus& status, uint64_t seq, const std::string& who,
                            const std::string& timed_out);

class ApplyScheduler {
 public:
  // Validates the options and starts the threads; the target may be down (apply then retries).
  // `inbound` and `sink` must outlive the scheduler. kInvalidArgument for bad options.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ApplyScheduler>> Start(
      const ApplyOptions& options, DurableLog* inbound, Sink* sink);
  // Stop()s.
  ~ApplyScheduler();
  ApplyScheduler(const ApplyScheduler&) = delete;
  ApplyScheduler& operator=(const ApplyScheduler&) = delete;

  // Rolls back uncommitted groups and joins the threads. Idempotent.
  void Stop();
  // Stops dispatching new groups (groups in flight still commit). Thread-safe.
  void Pause();
  void Resume();

  // Re-applies the stopped table's skipped changes (from its stop seq up to the applied
  // progress, one target transaction that also clears the stop), then lets it apply again.
  // Blocks until done. kNotFound when the table is not stopped; kFailedPrecondition when it
  // needs a re-snapshot (the log it needs is gone or released); on an error the table stays
  // stopped (with the new reason). Defined in table_replay.cc.
  [[nodiscard]] absl::Status ResumeTable(const TableName& table);

  // The verify's cut (docs/verify.md), in three steps, one cut at a time:
  //   FreezeForCut(): no further record is dispatched (groups in flight still commit), so that
  //     nothing the source commits from now on is applied before the cut is known;
  //   SetCut(position): apply goes on with every record the source committed before `position`
  //     and holds before the first record at or after it, once everything before it committed;
  //   WaitForCut(timeout): OK once held there (the target then holds exactly the source's
  //     transactions committed before `position`); kFailedPrecondition with apply's error once
  //     apply stopped for good; otherwise kDeadlineExceeded after `timeout` or Stop().
  // ReleaseCut() lets apply go on; it must follow every FreezeForCut. kFailedPrecondition when a
  // cut is already set, or apply stopped for good (with its error). Defined in verify_cut.cc.
  [[nodiscard]] absl::Status FreezeForCut();
  void SetCut(uint64_t position);
  [[nodiscard]] absl::Status WaitForCut(absl::Duration timeout);
  void ReleaseCut();

  ApplyStatus status() const;
  // Waits (real time) until applied_seq >= seq or apply failed for good. True when applied.
  bool WaitForApplied(uint64_t seq, absl::Duration timeout) const;
  // Waits (real time) until the target holds everything through seq durably: its durable
  // progress (Sink::DurableSeq; the applied progress when commits are durable) reached it. A
  // crash of the target cannot take back what this counts, where applied_seq may count
  // asynchronous commits it took back until apply notices. It reads the durable progress itself
  // every kDurableWaitSlice (the reader reads it only every durable_poll); a crash it finds ends
  // the reader's round, which applies again what the crash took back. True when reached; false
  // at the timeout, when apply stops, or when it failed for good short of seq.
  bool WaitForDurable(uint64_t seq, absl::Duration timeout);
  static constexpr absl::Duration kDurableWaitSlice = absl::Milliseconds(10);
  static constexpr absl::Duration kDurableRetry = absl::Milliseconds(100);

 private:
  ApplyScheduler(const ApplyOptions& options, DurableLog* inbound, Sink* sink);

  // The reader thread (apply_scheduler.cc): rounds, failures and their retries.
  void ReaderLoop();
  absl::Status LoadState();
  // The log id the inbound log records (kPeerLogIdState), "" when none or unreadable.
  std::string InboundLogId() const;
  // Reads and dispatches until a failure is reported, Stop() or a fatal error (returned).
  absl::Status ReadAndDispatch();
  // The open group keeps collecting instead of going out now (see README: Groups).
  bool KeepCollecting() const;
  // Dispatches the open group, if any. False when the round ended.
  bool Flush();
  absl::Status Dispatch(std::shared_ptr<ApplyGroup> group);
  void HandleFailure();
  // Apply stops for good (status().failed) because of `why`, which stays its last_error: the
  // commit order halts, a verify's cut can no longer be reached; returns once Stop() is called
  // (the reader's last step).
  void HaltForGood(const absl::Status& why);
  // FreezeForCut's and WaitForCut's refusal once halted_, with last_error_.
  absl::Status CutUnreachableLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Polls the target's durable progress and writes the cursors when due; false when the
  // target crashed since the round began (the round must end).
  bool MaybeWriteCursors();
  // Reads the sink's durable progress into durable_seq_ (the reader's poll and WaitForDurable's
  // reads). A crash it finds is recorded in crashed_round_, for the reader to end the round. An
  // error only when the read failed otherwise. A failed read or a crash sets durable_error_ (the
  // failure is logged once per new cause), a read that answers clears it; a reading dropped
  // because a round began leaves it as it was.
  absl::Status ReadDurableProgress();
  // Reader thread, before a transaction the source committed at `position`: holds at the cut
  // (verify_cut.cc). False when the round ended or Stop() was called meanwhile.
  bool PassCut(uint64_t position);
  // Measures what each stopped table holds of the log below `safe_below` and releases the
  // tables over stopped_table_retention_bytes (or whose log is trimmed already).
  void CheckStoppedTables(uint64_t safe_below);
  // A worker's bookkeeping after `group` committed (before the commit order passes it): its
  // re-snapshotted tables leave the stopped set (and their needs-resnapshot state) here, the
  // one place apply lifts a stop besides ResumeTable.
  void RecordCommit(int worker, const ApplyGroup& group, uint64_t new_conflicts,
                    const std::vector<TableResnapshot>& resnapshotted, absl::Time committed);

  // Constant after construction.
  const ApplyOptions options_;
  DurableLog* const log_;
  Sink* const sink_;
  // The only reader of log_'s records (the reader thread, streamed groups, table replay).
  const std::unique_ptr<const InboundReader> inbound_;
  // Turns: which group may start and commit, the committed progress, rounds, pause and holds.
  const std::unique_ptr<CommitOrder> order_;

  // Reader-thread state.
  const std::unique_ptr<GroupBuilder> builder_;
  // Parses each table description once and lends it to the transactions that carry it.
  RelationCatalog catalog_;
  uint64_t next_read_ = 1;
  // The inbound log's log id when the round started; a round ends when it changes.
  std::string round_log_id_;
  uint64_t cursor_written_ = 0;
  uint64_t retain_written_ = 0;
  // When the sink's durable progress was last polled, when the cursors were last written.
  absl::Time durable_polled_ = absl::InfinitePast();
  absl::Time cursors_written_at_ = absl::InfinitePast();
  // Retries after transient failures: a failed group waits retry_delay_ (the schedule's current
  // step) and moves to the next step; a round that could not start (LoadState or a log read
  // failed) moves to the next step first, then waits it. Progress since the last failure starts
  // the schedule over.
  Backoff backoff_;
  absl::Duration retry_delay_;
  absl::Time backoff_until_;
  // One log line per new cause of a retried failure (DESIGN: every apply error is a log line).
  LogLimiter retry_log_;

  absl::Notification stop_notification_;  // wakes clock sleeps on Stop()

  // What status() reports besides the commit order, and the table stops. Never held while
  // calling into order_ (the two mutexes are never nested).
  mutable absl::Mutex mu_;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const StoppedTables> stopped_ ABSL_GUARDED_BY(mu_);
  // Stopped tables that need a re-snapshot (released: they no longer hold the log back), and
  // what the others hold. Entries of tables no longer stopped are ignored.
  std::map<TableName, StoppedTableLog> stopped_logs_ ABSL_GUARDED_BY(mu_);
  absl::Time stopped_checked_at_ = absl::InfinitePast();  // reader thread
  std::vector<TableStop> unpersisted_stops_ ABSL_GUARDED_BY(mu_);
  uint64_t conflicts_base_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<uint64_t> session_conflicts_ ABSL_GUARDED_BY(mu_);
  absl::Duration apply_latency_ ABSL_GUARDED_BY(mu_);
  uint64_t groups_committed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t transactions_applied_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t resets_ ABSL_GUARDED_BY(mu_) = 0;
  // The largest durable progress (Sink::DurableSeq) read in this round, bounded by the
  // target's progress at the round's start; durable_round_ counts the rounds' starts, so that a
  // WaitForDurable reading taken across one is dropped.
  uint64_t durable_seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t durable_round_ ABSL_GUARDED_BY(mu_) = 0;
  std::string durable_error_ ABSL_GUARDED_BY(mu_);  // ApplyStatus::durable_error
  // One log line per new cause of a failed reading of the durable progress (the reader's and
  // WaitForDurable's callers' threads; the limiter locks itself).
  LogLimiter durable_log_;
  // The round (durable_round_) in which the target was found to have crashed, if any.
  std::optional<uint64_t> crashed_round_ ABSL_GUARDED_BY(mu_);
  // Log identity as status() reports it (ApplyStatus).
  std::string log_id_ ABSL_GUARDED_BY(mu_);
  bool identity_mismatch_ ABSL_GUARDED_BY(mu_) = false;
  std::string target_log_id_ ABSL_GUARDED_BY(mu_);
  uint64_t target_applied_seq_ ABSL_GUARDED_BY(mu_) = 0;

  // The verify's cut (verify_cut.cc); its position is 0 while frozen.
  struct Cut {
    uint64_t position = 0;
    bool reached = false;
  };
  std::optional<Cut> cut_ ABSL_GUARDED_BY(mu_);
  // Stop() or a halt (HaltForGood): no cut can be reached any more.
  bool cut_stop_ ABSL_GUARDED_BY(mu_) = false;
  // HaltForGood ran: CommitOrder's halt, as seen under mu_ (what a target crash found later
  // must not replace in last_error_, and what a wait for the durable progress reads).
  bool halted_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar cut_changed_;

  // Constant after construction: workers_[i] runs apply_workers_[i].
  std::vector<std::unique_ptr<ApplyWorker>> apply_workers_;
  std::thread reader_;
  std::vector<std::thread> workers_;
};

}  // namespace ferry
