// ApplyWorker: one of the scheduler's N workers. It owns one SinkSession (one target
// connection), takes groups from the CommitOrder, applies each into one target transaction and
// commits it in its turn:
//   - a group whose turn has already come when it starts (every group before it committed) is
//     applied and committed in one step (SinkSession::PrepareAndCommit: one round trip);
//   - any other group is applied and prepared, then waits for its turn, then commits;
//   - a large transaction (ApplyGroup::stream) is read fragment by fragment from the inbound log
//     into the open target transaction; a new fragment 0 while one is incomplete (the source
//     sent it again) rolls back and starts over.
// Any error rolls the group back and ends the round (CommitOrder::ReportFailure); the reader
// thread decides what happens next. After a commit, `on_commit` does the scheduler's bookkeeping
// before the order moves past the group, so whoever sees the progress sees the bookkeeping.
//
// Thread safety: Run() is the worker thread; nothing else touches the worker.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/api/sink.h"
#include "engine/apply/apply_group.h"
#include "engine/apply/commit_order.h"
#include "engine/apply/inbound_reader.h"
#include "engine/base/clock.h"

namespace ferry {

class ApplyWorker {
 public:
  // Called after `group` committed in the target, with the conflicts the session recorded in it,
  // the tables it re-snapshotted (SinkSession::resnapshotted) and the commit time on the clock.
  // Runs on the worker thread.
  using CommitCallback =
      std::function<void(const ApplyGroup& group, uint64_t new_conflicts,
                         const std::vector<TableResnapshot>& resnapshotted, absl::Time committed)>;

  // Every pointer must outlive the worker. `idle_wait`: how long a streamed group waits for its
  // next fragment before checking that its round is still live.
  ApplyWorker(int index, Sink* sink, const InboundReader* inbound, CommitOrder* order, Clock* clock,
              absl::Duration idle_wait, CommitCallback on_commit);
  ApplyWorker(const ApplyWorker&) = delete;
  ApplyWorker& operator=(const ApplyWorker&) = delete;

  // Applies groups until CommitOrder::Stop(); then rolls back and closes the session.
  void Run();

 private:
  // Begin, Apply and Prepare; with `commit` (the group's turn has come) PrepareAndCommit.
  absl::Status Execute(SinkSession& session, ApplyGroup& group, bool commit);
  // Begin, Apply every fragment as read from the log, Prepare.
  absl::Status ExecuteStream(SinkSession& session, ApplyGroup& group);

  // Constant after construction.
  const int index_;
  Sink* const sink_;
  const InboundReader* const inbound_;
  CommitOrder* const order_;
  Clock* const clock_;
  const absl::Duration idle_wait_;
  const CommitCallback on_commit_;
};

}  // namespace ferry
