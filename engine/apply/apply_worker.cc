#include "engine/apply/apply_worker.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/base/kill_point.h"
#include "engine/base/status_macros.h"
#include "engine/base/thread_name.h"

namespace ferry {

ApplyWorker::ApplyWorker(int index, Sink* sink, const InboundReader* inbound, CommitOrder* order,
                         Clock* clock, absl::Duration idle_wait, CommitCallback on_commit)
    : index_(index),
      sink_(sink),
      inbound_(inbound),
      order_(order),
      clock_(clock),
      idle_wait_(idle_wait),
      on_commit_(std::move(on_commit)) {}

void ApplyWorker::Run() {
  SetCurrentThreadName(absl::StrCat("apply-w", index_));
  std::unique_ptr<SinkSession> session;
  uint64_t conflicts_seen = 0;
  ApplyGroupPtr next;  // taken over from this worker's own commit (CommitOrder::Committed)
  while (true) {
    ApplyGroupPtr group = std::move(next);
    next = nullptr;
    if (group == nullptr) {
      group = order_->Take();
      if (group == nullptr) break;  // Stop()
    }
    if (session == nullptr) {
      absl::StatusOr<std::unique_ptr<SinkSession>> opened = sink_->OpenSession(index_);
      if (!opened.ok()) {
        order_->ReportFailure(opened.status(), std::nullopt, *group);
        order_->Release();
        continue;
      }
      session = *std::move(opened);
      conflicts_seen = session->conflicts_committed();
    }
    bool first_in_line = false;
    if (!order_->WaitUntilReady(*group, &first_in_line)) continue;
    auto fail = [&](absl::Status status) {
      std::optional<TableFault> fault;
      if (status.code() == absl::StatusCode::kFailedPrecondition) fault = session->fault();
      session->Abort();
      order_->ReportFailure(std::move(status), std::move(fault), *group);
      order_->Release();
    };
    if (first_in_line && !group->stream) {
      // Every group before it committed: the sink may send the work and the commit together
      // (one round trip instead of two, which is most of a group's latency at low rates).
      // Committing after its round ended is still safe: the reader reloads the progress only
      // once no worker holds a group.
      if (absl::Status status = Execute(*session, *group, /*commit=*/true); !status.ok()) {
        fail(std::move(status));
        continue;
      }
    } else {
      absl::Status status = group->stream ? ExecuteStream(*session, *group)
                                          : Execute(*session, *group, /*commit=*/false);
      if (!status.ok()) {
        fail(std::move(status));
        continue;
      }
      if (!order_->WaitForTurn(*group)) {
        session->Abort();
        order_->Release();
        continue;
      }
      KillPoint("apply.before_commit");
      status = session->Commit(group->last_seq, group->commit_time_us);
      if (!status.ok()) {
        fail(std::move(status));
        continue;
      }
    }
    KillPoint("apply.group_committed");  // in the target, not yet in the committed progress
    const uint64_t conflicts = session->conflicts_committed();
    on_commit_(*group, conflicts - conflicts_seen, session->resnapshotted(), clock_->Now());
    conflicts_seen = conflicts;
    next = order_->Committed(std::move(group));
  }
  if (session != nullptr) session->Abort();
}

absl::Status ApplyWorker::Execute(SinkSession& session, ApplyGroup& group, bool commit) {
  FERRY_RETURN_IF_ERROR(session.Begin(group.context));
  for (const auto& [seq, txn] : group.txns) FERRY_RETURN_IF_ERROR(session.Apply(seq, txn));
  if (commit) KillPoint("apply.before_commit");
  return commit ? session.PrepareAndCommit(group.last_seq, group.commit_time_us)
                : session.Prepare();
}

absl::Status ApplyWorker::ExecuteStream(SinkSession& session, ApplyGroup& group) {
  group.context.streamed = true;
  FERRY_RETURN_IF_ERROR(session.Begin(group.context));
  uint64_t seq = group.first_seq;
  bool started = false;
  uint32_t expect = 0;
  while (true) {
    const uint64_t wakeups = inbound_->wakeups();  // before the check: a stop ends the wait
    if (!order_->RoundLive(group.generation)) return absl::AbortedError("apply round ended");
    FERRY_ASSIGN_OR_RETURN(std::vector<LogRecord> records,
                           inbound_->Read(seq, InboundReader::Batch::kStream));
    if (records.empty()) {
      inbound_->WaitForRecord(seq, idle_wait_, wakeups);
      continue;
    }
    for (const LogRecord& raw : records) {
      seq = raw.seq + 1;
      FERRY_ASSIGN_OR_RETURN(InboundRecord record, InboundReader::Decode(raw));
      if (record.heartbeat) continue;
      const v1::Transaction& txn = record.txn;
      if (txn.fragment() == 0) {
        if (started) {
          // The source restarted and sends the transaction again: discard what we have.
          session.Abort();
          FERRY_RETURN_IF_ERROR(session.Begin(group.context));
          group.streamed_counts.clear();
        }
        started = true;
        expect = 0;
      }
      if (!started || txn.fragment() != expect) {
        return absl::DataLossError(absl::StrCat("apply: inbound record ", record.seq,
                                                " is fragment ", txn.fragment(), ", expected ",
                                                expect));
      }
      ++expect;
      const bool last = txn.last_fragment();
      const int64_t commit_time = txn.commit_time_us();
      FERRY_RETURN_IF_ERROR(session.Apply(record.seq, txn));
      CountTransaction(txn, group.streamed_counts);
      if (last) {
        group.last_seq = record.seq;
        group.commit_time_us = commit_time;
        return session.Prepare();
      }
    }
  }
}

}  // namespace ferry
