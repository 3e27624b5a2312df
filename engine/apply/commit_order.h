// CommitOrder: which dispatched group a worker may start, when it may commit, and the committed
// prefix of the inbound log that results.
//
// Turns. The reader thread queues groups in log order, numbered 1, 2, 3... across rounds; only
// group `next_commit` may commit, so the committed progress is always a consistent prefix of the
// log (DESIGN invariant 4). A worker takes the queue's first group once what that group depends
// on (ApplyGroup::wait_for) committed; the worker that commits a group takes the queued group that
// waited for it (a chain of dependent groups stays on one worker and one target backend).
//
// Rounds. The first failure a worker reports (ReportFailure) ends the round: the reader thread
// calls EndRound(), which bumps the generation, so that every worker rolls back its uncommitted
// group at its next wait, and waits until no worker holds a group; it then reloads the progress
// from the target and starts the next round (StartRound). A group of an ended round never moves
// the order; one that committed in one step as its round ended is harmless, because the next
// round starts from the target's progress, read once no worker holds a group.
//
// Holds. Pause and ResumeTable (HoldAndWaitQuiet) stop new groups from being dispatched; groups
// in flight still commit. In-flight limits bound what the reader holds parsed in memory.
//
// Thread safety: thread-safe, one mutex; the methods named Wait* (and Take, EndRound,
// HoldAndWaitQuiet) block without holding it. Each method says which thread calls it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/api/sink.h"
#include "engine/apply/apply_group.h"

namespace ferry {

// A failure a worker reported, ending its round.
struct GroupFailure {
  absl::Status status;
  std::optional<TableFault> fault;
  uint64_t group_id = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  bool careful = false;  // the group ran change by change already
};

struct CommitOrderLimits {
  int workers = 4;
  // Groups dispatched and not committed, at most.
  size_t max_inflight_groups = 8;
  // Payload bytes of dispatched, uncommitted groups, at most (one group always goes).
  size_t max_inflight_bytes = size_t{32} << 20;
};

class CommitOrder {
 public:
  // `round_over` (optional) runs, outside the lock, when a reported failure ends the round: the
  // reader thread may be waiting for the next record rather than in this order's waits, and
  // it wakes it (ApplyScheduler: the inbound log's WakeWaiters).
  explicit CommitOrder(const CommitOrderLimits& limits, std::function<void()> round_over = {});
  CommitOrder(const CommitOrder&) = delete;
  CommitOrder& operator=(const CommitOrder&) = delete;

  // --- Any thread.
  // Ends every wait for good. Returns whether Stop() was called before.
  bool Stop();
  bool stopping() const;
  // Threads blocked in this order's waits right now (WaitForApplied's aside). For tests, which
  // wait until a thread is blocked before they assert that it has not gone on.
  int blocked() const;
  void SetPaused(bool paused);
  // Apply failed for good (the reader thread's last word): WaitForApplied returns.
  void Halt();
  struct Snapshot {
    bool paused = false;
    bool failed = false;  // Halt() was called
    uint64_t applied_seq = 0;
  };
  Snapshot snapshot() const;
  // Waits (real time) until applied_seq >= seq, Halt() or Stop(). True when applied.
  bool WaitForApplied(uint64_t seq, absl::Duration timeout) const;
  // ResumeTable: holds dispatching and waits until a round is loaded and nothing is in flight.
  // Returns the committed progress then, or nullopt on Stop() (the hold is then released).
  std::optional<uint64_t> HoldAndWaitQuiet();
  void ReleaseHold();

  // --- The reader thread.
  // A new round from the target's progress `applied_seq`; its first group is `next_group_id`.
  void StartRound(uint64_t applied_seq, uint64_t next_group_id);
  // A failure was reported or Stop() was called: the round must end.
  bool RoundOver() const;
  // Waits until one more group may be dispatched (within limits, no hold), freeing committed
  // groups meanwhile. False when the round is over.
  bool WaitForSlot();
  // Every dispatched group committed. Stays true until the next Enqueue (only the reader
  // thread dispatches).
  bool Idle() const;
  // Queues `group` in the current round; after WaitForSlot() returned true.
  void Enqueue(ApplyGroupPtr group);
  // The highest committed group id.
  uint64_t committed() const;
  // `group` (not yet dispatched) could not start now: it depends on a group in flight, or
  // every worker is busy. False once the round is over.
  bool WouldWait(const ApplyGroup& group) const;
  // Waits until group `id` committed and returns the committed progress; nullopt when the round
  // ended first.
  std::optional<uint64_t> WaitCommitted(uint64_t id);
  // Frees the groups workers committed (off the workers' path).
  void DropRetired();
  // Ends the round: workers drop their groups; returns once none holds one. False on Stop().
  bool EndRound();
  // The failure that ended the round, if any (taken: the next call returns null).
  std::unique_ptr<GroupFailure> TakeFailure();
  void WaitForStop();

  // --- Workers.
  // The next group whose dependencies committed (or whose round ended), in log order; the
  // caller holds it until Committed() or Release(). Null on Stop().
  ApplyGroupPtr Take();
  // Waits until what `group` depends on committed. False when its round ended: the caller no
  // longer holds it. *first_in_line: every group before it committed.
  bool WaitUntilReady(const ApplyGroup& group, bool* first_in_line);
  // Waits until it is `group`'s turn to commit. False when its round ended (the caller still
  // holds it: roll back, then Release()).
  bool WaitForTurn(const ApplyGroup& group);
  bool RoundLive(uint64_t generation) const;
  // `group` committed in the target: moves the order past it (when its round is live) and
  // retires it. Returns the next group, when it waited for this one (the caller now holds it).
  ApplyGroupPtr Committed(ApplyGroupPtr group);
  // The caller no longer holds a group (rolled back).
  void Release();
  // Ends the round of `group` with `status`, unless an earlier group failed first.
  void ReportFailure(absl::Status status, std::optional<TableFault> fault, const ApplyGroup& group);

 private:
  bool FrontReady() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool Live(uint64_t generation) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const CommitOrderLimits limits_;
  const std::function<void()> round_over_;

  // mu_.Await that counts the threads it blocks (blocked()).
  void AwaitCounted(const absl::Condition& condition) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  int blocked_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  int holds_ ABSL_GUARDED_BY(mu_) = 0;  // ResumeTable in progress: no dispatch
  bool halted_ ABSL_GUARDED_BY(mu_) = false;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;      // a round was started
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 1;  // bumped by every EndRound
  std::deque<ApplyGroupPtr> queue_ ABSL_GUARDED_BY(mu_);
  // Committed groups waiting for the reader thread to free them.
  std::vector<ApplyGroupPtr> retired_ ABSL_GUARDED_BY(mu_);
  // (group id, payload bytes) of dispatched groups; entries below next_commit_ are stale.
  std::deque<std::pair<uint64_t, size_t>> inflight_bytes_ ABSL_GUARDED_BY(mu_);
  int busy_workers_ ABSL_GUARDED_BY(mu_) = 0;      // holding a group
  uint64_t next_commit_ ABSL_GUARDED_BY(mu_) = 1;  // id of the group allowed to commit next
  uint64_t dispatched_ ABSL_GUARDED_BY(mu_) = 0;   // highest group id dispatched
  uint64_t applied_seq_ ABSL_GUARDED_BY(mu_) = 0;  // last log seq committed in the target
  std::unique_ptr<GroupFailure> failure_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry
