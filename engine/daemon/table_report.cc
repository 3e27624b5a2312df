// The status' table list (issue #20): every table the region knows, with its state, what was
// captured or applied of it, its lag and, while its initial copy runs, the copy's progress.
// Sources of each field:
//   primary  the source's table list and initial-snapshot progress (SourceHealth) and the
//            capture's per-table counts. A table the standby stopped is not "stopped" here:
//            peer.stopped_tables says it, so that ferry_table_stopped is 1 in one region only,
//            the one whose apply stopped it;
//   standby  apply's per-table counts and apply's stopped tables (with their log retention).
#include <algorithm>
#include <map>

#include "engine/daemon/status_report.h"

namespace ferry {
namespace {

v1::TableState& Entry(std::map<std::string, v1::TableState>& tables, const std::string& name) {
  v1::TableState& t = tables[name];
  if (t.table().empty()) {
    t.set_table(name);
    t.set_state("replicating");
    t.set_rows_estimated(-1);
    t.set_eta_seconds(-1);
  }
  return t;
}

// Seconds left of a copy at its rate so far; -1 when unknown.
double CopyEta(const TableCopyProgress& p, absl::Time now) {
  if (p.rows_estimated < 0 || p.started == absl::InfinitePast()) return -1;
  const uint64_t total = static_cast<uint64_t>(p.rows_estimated);
  if (p.rows_copied >= total) return 0;
  const double elapsed = absl::ToDoubleSeconds(now - p.started);
  if (p.rows_copied == 0 || elapsed <= 0) return -1;
  return static_cast<double>(total - p.rows_copied) * elapsed / static_cast<double>(p.rows_copied);
}

}  // namespace

void AssembleTables(const StatusSnapshot& s, v1::StatusReply& r) {
  std::map<std::string, v1::TableState> tables;
  const bool primary = s.primary.has_value();
  if (primary) {
    const SourceHealth& source = s.primary->source;
    for (const std::string& name : source.tables) Entry(tables, name);
    for (const TableCopyProgress& p : source.snapshot_tables) {
      v1::TableState& t = Entry(tables, p.table);
      t.set_rows_copied(p.rows_copied);
      t.set_rows_estimated(p.rows_estimated);
      if (!p.done && source.snapshot_in_progress) {
        t.set_state("snapshotting");
        t.set_eta_seconds(CopyEta(p, s.now));
      }
    }
  }
  for (const auto& [name, count] : s.table_counts) {
    v1::TableState& t = Entry(tables, name);
    if (primary) {
      t.set_changes_captured(count.changes);
    } else {
      t.set_changes_applied(count.changes);
    }
    t.set_last_commit_time_us(count.last_commit_us);
    t.set_rows_copied(std::max<uint64_t>(t.rows_copied(), count.snapshot_rows));
  }
  // A table that is not stopped is behind by the oldest change not yet applied, stops aside
  // (the region's apply_lag counts from a stopped table's first change).
  double lag = 0;
  if (primary) {
    const uint64_t from = std::max(r.positions().peer_applied_seq() + 1, s.outbound.first_seq);
    if (s.outbound.next_seq > from) lag = RecordAgeSeconds(s, true, from);
  } else if (s.standby.has_value() && s.standby->apply.lag_records > 0) {
    lag = RecordAgeSeconds(s, false, s.standby->apply.applied_seq + 1);
  }
  for (auto& [name, t] : tables) t.set_lag_seconds(lag);
  if (s.standby.has_value()) {
    const ApplyStatus& a = s.standby->apply;
    for (const auto& [name, stop] : a.stopped_tables) {
      v1::TableState& t = Entry(tables, name.ToString());
      t.set_state("stopped");
      t.set_reason(stop.reason);
      t.set_stopped_at_seq(stop.seq);
      t.set_lag_seconds(RecordAgeSeconds(s, false, std::max(stop.seq, s.inbound.first_seq)));
      auto log = a.stopped_table_logs.find(name);
      if (log == a.stopped_table_logs.end()) continue;
      t.set_retained_log_bytes(log->second.retained_bytes);
      if (log->second.needs_resnapshot) {
        t.set_state("needs_resnapshot");
        t.set_resnapshot_cause(log->second.cause);
        t.set_resnapshot_reason(log->second.reason);
      }
    }
  }
  for (auto& [name, t] : tables) *r.add_tables() = std::move(t);
}

}  // namespace ferry
