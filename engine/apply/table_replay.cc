#include "engine/apply/table_replay.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/apply/apply_scheduler.h"
#include "engine/apply/commit_order.h"
#include "engine/base/status_macros.h"

namespace ferry {
namespace {

// The part of `txn` that concerns `table`: its relations and their changes (TRUNCATE included),
// and every message the source vouches for (a schema change: the sink runs those of `table`).
v1::Transaction PartOf(const v1::Transaction& txn, const TableName& table) {
  v1::Transaction kept;
  kept.set_origin_region(txn.origin_region());
  kept.set_source_position(txn.source_position());
  kept.set_commit_time_us(txn.commit_time_us());
  kept.set_fragment(txn.fragment());
  kept.set_last_fragment(txn.last_fragment());
  std::vector<uint32_t> ids;
  for (const auto& r : txn.relations()) {
    if (r.schema() == table.schema && r.name() == table.name) {
      *kept.add_relations() = r;
      ids.push_back(r.relation_id());
    }
  }
  for (const auto& c : txn.changes()) {
    bool mine = std::find(ids.begin(), ids.end(), c.relation_id()) != ids.end();
    for (uint32_t t : c.truncate_relation_ids()) {
      mine = mine || std::find(ids.begin(), ids.end(), t) != ids.end();
    }
    mine = mine || (c.op() == v1::MESSAGE && c.message_authenticated());
    if (mine) *kept.add_changes() = c;
  }
  return kept;
}

}  // namespace

absl::Status ReplayStoppedTable(const InboundReader& inbound, Sink& sink, int session_number,
                                const TableStop& stop, uint64_t until_seq) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<SinkSession> session, sink.OpenSession(session_number));
  GroupContext context;
  context.first_seq = stop.seq;
  context.stopped = std::make_shared<StoppedTables>();
  context.careful = true;
  context.only_table = stop.table;
  absl::Status status = session->Begin(context);
  // Fragments of the current transaction, kept until it is complete (a restarted transaction
  // discards them). Only the stopped table's part of one transaction is held.
  std::vector<std::pair<uint64_t, v1::Transaction>> chain;
  uint64_t seq = stop.seq;
  while (status.ok() && seq <= until_seq) {
    absl::StatusOr<std::vector<LogRecord>> records =
        inbound.Read(seq, InboundReader::Batch::kReplay, until_seq);
    if (!records.ok()) {
      status = records.status();
      break;
    }
    if (records->empty()) break;
    for (const LogRecord& raw : *records) {
      seq = raw.seq + 1;
      absl::StatusOr<InboundRecord> record = InboundReader::Decode(raw);
      if (!record.ok()) {
        status = record.status();
        break;
      }
      if (record->heartbeat) continue;
      if (record->txn.fragment() == 0) chain.clear();
      chain.emplace_back(record->seq, PartOf(record->txn, stop.table));
      if (record->txn.last_fragment()) {
        for (auto& [s, part] : chain) {
          // Apply as one complete transaction per fragment boundary.
          status = session->Apply(s, part);
          if (!status.ok()) break;
        }
        chain.clear();
        if (!status.ok()) break;
      }
    }
  }
  if (status.ok()) status = session->Prepare();
  if (status.ok()) status = session->Commit(0, 0);
  if (!status.ok()) {
    if (status.code() == absl::StatusCode::kFailedPrecondition && session->fault()) {
      status = absl::FailedPreconditionError(session->fault()->reason);
    }
    session->Abort();
    return Annotate(status, absl::StrCat("resuming ", stop.table.ToString()));
  }
  return absl::OkStatus();
}

absl::Status ApplyScheduler::ResumeTable(const TableName& table) {
  TableStop stop;
  {
    absl::MutexLock lock(&mu_);
    auto it = stopped_->find(table);
    if (it == stopped_->end()) {
      return absl::NotFoundError(absl::StrCat("table ", table.ToString(), " is not stopped"));
    }
    stop = it->second;
    auto released = stopped_logs_.find(table);
    const bool trimmed = stop.seq < log_->first_seq();
    if (trimmed || (released != stopped_logs_.end() && released->second.needs_resnapshot)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "table ", table.ToString(), " needs a re-snapshot: the inbound log it needs (from seq ",
          stop.seq, ") is gone: ",
          trimmed || released == stopped_logs_.end()
              ? absl::StrCat("the log starts at ", log_->first_seq())
              : released->second.reason,
          ". resume-table cannot replay it. The table stays stopped (the other tables "
          "replicate); copy it anew from the primary: ferryctl --admin PRIMARY resnapshot ",
          table.ToString(), " (docs/operations.md: re-snapshotting a table)"));
    }
  }
  if (order_->snapshot().failed) {
    absl::MutexLock lock(&mu_);
    return absl::FailedPreconditionError("apply has failed: " + last_error_);
  }
  std::optional<uint64_t> until = order_->HoldAndWaitQuiet();
  if (!until.has_value()) return absl::CancelledError("apply is stopping");
  absl::Status status = ReplayStoppedTable(*inbound_, *sink_, options_.workers, stop, *until);
  {
    absl::MutexLock lock(&mu_);
    auto stopped = std::make_shared<StoppedTables>(*stopped_);
    if (status.ok()) {
      stopped->erase(table);
      std::erase_if(unpersisted_stops_, [&](const TableStop& s) { return s.table == table; });
    } else {
      (*stopped)[table].reason = absl::StrCat("resume failed: ", status.message());
    }
    stopped_ = std::move(stopped);
  }
  // Only now may groups go out again: one dispatched before the stop was cleared would skip the
  // table's changes after the replayed range.
  order_->ReleaseHold();
  return status;
}

}  // namespace ferry
