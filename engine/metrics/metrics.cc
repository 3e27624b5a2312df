#include "engine/metrics/metrics.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include "absl/strings/str_cat.h"

namespace ferry {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

class StatusCollector final : public prometheus::Collectable {
 public:
  StatusCollector(std::function<v1::StatusReply()> status, std::function<EngineCounters()> counters)
      : status_(std::move(status)), counters_(std::move(counters)) {}

  std::vector<MetricFamily> Collect() const override {
    const v1::StatusReply s = status_();
    const EngineCounters c = counters_();
    std::vector<MetricFamily> out;
    auto add = [&](const std::string& name, const std::string& help, MetricType type, double value,
                   std::vector<ClientMetric::Label> labels = {}) {
      MetricFamily* family = nullptr;
      for (auto& f : out) {
        if (f.name == name) family = &f;
      }
      if (family == nullptr) {
        out.push_back(MetricFamily{name, help, type, {}});
        family = &out.back();
      }
      ClientMetric m;
      m.label = std::move(labels);
      if (type == MetricType::Counter) {
        m.counter.value = value;
      } else {
        m.gauge.value = value;
      }
      family->metric.push_back(std::move(m));
    };
    const auto G = MetricType::Gauge;
    const auto C = MetricType::Counter;
    const auto& p = s.positions();
    add("ferry_up", "1 while ferryd runs; labels name the region and its role", G, 1,
        {{"region", s.region()}, {"role", s.role()}});
    add("ferry_is_primary", "1 when this region is the primary", G, s.role() == "primary");
    add("ferry_epoch", "Fencing epoch of this region", G, static_cast<double>(s.epoch()));
    add("ferry_paused", "1 while shipping and applying are paused", G, s.paused());
    // DR at a glance (issue #20).
    add("ferry_fenced", "1 while this region's database refuses application writes", G, s.fenced());
    add("ferry_writable_primary",
        "1 while this region is the replicating, unfenced primary (what /primary answers 200 to)",
        G, s.role() == "primary" && s.state() == "replicating" && !s.fenced());
    add("ferry_diverged",
        "1 while this fenced old primary holds changes the new primary never applied", G,
        s.state() == "diverged");
    add("ferry_quarantine_pending",
        "Changes in ferry.quarantine awaiting an operator's decision; -1 unknown", G,
        static_cast<double>(s.quarantine_pending()));
    const v1::DrEvent& change = s.last_change();
    add("ferry_last_change_timestamp_seconds",
        "When the last switchover or promote this region took part in ended (0: none)", G,
        static_cast<double>(change.finished_at_us()) / 1e6);
    add("ferry_last_change_duration_seconds", "How long the last switchover or promote took", G,
        change.duration_seconds());
    add("ferry_last_change_loss_records",
        "Records the last promote's loss bound counted (0 for a switchover)", G,
        static_cast<double>(change.loss().records()));
    const v1::VerifyOutcome& verify = s.last_verify();
    add("ferry_verify_last_timestamp_seconds", "When the last verify ended (unix time; 0: none)", G,
        static_cast<double>(verify.finished_at_us()) / 1e6);
    add("ferry_verify_last_equal",
        "1 when the last verify left the regions equal (equal or repaired), else 0", G,
        verify.result() == "equal" || verify.result() == "repaired");
    add("ferry_verify_last_differences", "Differences the last verify left (after any repair)", G,
        static_cast<double>(verify.remaining()));
    add("ferry_captured_source_position", "Highest source position durable in the outbound log", G,
        static_cast<double>(p.captured_source_position()));
    add("ferry_captured_transactions_total", "Source transactions captured", C,
        static_cast<double>(c.captured_transactions));
    for (const auto& [log, records, bytes, disk, next, first] :
         {std::tuple{"outbound", c.outbound_appended_records, c.outbound_appended_bytes,
                     c.outbound_disk_bytes, p.outbound_next_seq(), p.outbound_first_seq()},
          std::tuple{"inbound", c.inbound_appended_records, c.inbound_appended_bytes,
                     c.inbound_disk_bytes, p.inbound_next_seq(), uint64_t{0}}}) {
      add("ferry_log_appended_records_total", "Records appended durably to a log", C,
          static_cast<double>(records), {{"log", log}});
      add("ferry_log_appended_bytes_total", "Payload bytes appended durably to a log", C,
          static_cast<double>(bytes), {{"log", log}});
      add("ferry_log_size_bytes", "Approximate size of a log on disk", G, static_cast<double>(disk),
          {{"log", log}});
      add("ferry_log_next_seq", "Sequence number the next record of a log gets", G,
          static_cast<double>(next), {{"log", log}});
      (void)first;
    }
    add("ferry_shipped_seq", "Highest outbound sequence sent to the peer", G,
        static_cast<double>(p.shipped_seq()));
    add("ferry_acked_seq", "Highest outbound sequence durable at the peer", G,
        static_cast<double>(p.acked_seq()));
    add("ferry_applied_seq", "Highest inbound sequence applied to the local database", G,
        static_cast<double>(p.applied_seq()));
    add("ferry_rpo_records", "Records the peer has not made durable yet (current RPO)", G,
        static_cast<double>(s.rpo().records()));
    add("ferry_rpo_bytes", "Bytes the peer has not made durable yet (current RPO)", G,
        static_cast<double>(s.rpo().bytes()));
    add("ferry_rpo_seconds", "Age of the oldest record the peer has not made durable", G,
        s.rpo().seconds());
    add("ferry_lag_records", "Records captured or received but not applied yet", G,
        static_cast<double>(s.apply_lag().records()));
    add("ferry_lag_bytes", "Bytes captured or received but not applied yet", G,
        static_cast<double>(s.apply_lag().bytes()));
    add("ferry_lag_seconds", "Source commit to target apply delay of the oldest pending change", G,
        s.apply_lag().seconds());
    // Beside the RPO, never in it: committed on the source, not captured yet (primary only; -1
    // while the source's position is unknown).
    add("ferry_uncaptured_bytes",
        "Source bytes committed but not captured yet (Postgres: WAL between the captured LSN "
        "and pg_current_wal_lsn()); -1 unknown",
        G,
        s.uncaptured().known() ? static_cast<double>(s.uncaptured().bytes())
                               : (s.role() == "primary" ? -1.0 : 0.0));
    add("ferry_uncaptured_seconds", "How long capture has been behind the source", G,
        s.uncaptured().seconds());
    add("ferry_source_unreplicated_objects",
        "Objects in the source database Ferry does not replicate (Postgres: large objects); -1 "
        "unknown",
        G, static_cast<double>(s.source().unreplicated_objects()));
    add("ferry_source_blocked_tables",
        "Published tables whose application UPDATE/DELETE fail on the source (no replica "
        "identity)",
        G, static_cast<double>(s.source().blocked_tables_size()));
    add("ferry_slot_retained_wal_bytes", "WAL the source database retains for Ferry's slot", G,
        static_cast<double>(s.source().slot_retained_wal_bytes()));
    add("ferry_source_connected", "1 while the source database connection is up", G,
        s.source().connected());
    add("ferry_peer_connected", "1 while the replication stream to/from the peer is up", G,
        s.peer().connected());
    add("ferry_stream_wire_bytes_total", "Bytes sent on the replication stream (compressed)", C,
        static_cast<double>(c.stream_wire_bytes));
    add("ferry_stream_raw_bytes_total", "Record bytes sent on the replication stream", C,
        static_cast<double>(c.stream_raw_bytes));
    add("ferry_stream_batches_total", "Batches sent on the replication stream", C,
        static_cast<double>(c.stream_batches));
    add("ferry_applied_transactions_total", "Source transactions applied to the local database", C,
        static_cast<double>(c.applied_transactions));
    add("ferry_conflicts_total", "Apply conflicts recorded", C, static_cast<double>(s.conflicts()));
    if (s.has_objects()) {
      add("ferry_objects_connected", "1 while the region's bucket answers (capture)", G,
          s.objects().connected());
      add("ferry_objects_events_applied_total", "Object events applied since ferryd started", C,
          static_cast<double>(s.objects().events_applied()));
      add("ferry_objects_records_pending",
          "Inbound log records the object apply has not looked at (bounds the events pending)", G,
          static_cast<double>(s.objects().records_pending()));
      // As S3 replication reports them (OperationsPendingReplication, BytesPendingReplication).
      add("ferry_objects_pending", "Objects the standby's bucket apply has still to make equal", G,
          static_cast<double>(s.objects().objects_pending()));
      add("ferry_objects_pending_bytes",
          "Body bytes of the objects pending, as the source reported them at capture", G,
          static_cast<double>(s.objects().bytes_pending()));
      add("ferry_objects_dead_letters_total",
          "Bucket notification records kept as dead letters (unreadable) since ferryd started", C,
          static_cast<double>(s.objects().dead_letters()));
    }
    int stopped = 0;
    // The family is declared even while no table is stopped, so dashboards and alert rules
    // always find it; it has one series per stopped table.
    out.push_back(MetricFamily{"ferry_table_stopped",
                               "1 when apply stopped the table (reason in ferryctl status)",
                               MetricType::Gauge,
                               {}});
    // A table that needs a re-snapshot is a stopped table too (ferry_table_stopped 1); its own
    // family says why its log is gone, and what each stopped table keeps of the inbound log.
    int resnapshot = 0;
    out.push_back(MetricFamily{"ferry_table_needs_resnapshot",
                               "1 when a stopped table's inbound log is gone: resume-table "
                               "refuses it, it needs a re-snapshot (reason: retention_bytes or "
                               "log_trimmed)",
                               MetricType::Gauge,
                               {}});
    out.push_back(MetricFamily{"ferry_table_retained_log_bytes",
                               "Inbound log bytes a stopped table keeps from being trimmed "
                               "(bounded by apply.stopped_table_retention_bytes)",
                               MetricType::Gauge,
                               {}});
    // One series per replicated table (never per key: bounded by the number of tables), from
    // the moment the region knows the table (docs/operations.md, "Metrics"). The families are
    // declared even while no table is known.
    for (const auto& [name, help, type] :
         {std::tuple{"ferry_table_snapshotting", "1 while the table's initial copy runs (primary)",
                     G},
          std::tuple{"ferry_table_changes_total",
                     "Row changes of the table captured (primary) or applied (standby) since "
                     "ferryd started",
                     C},
          std::tuple{"ferry_table_lag_seconds",
                     "How far the table is behind its source (a stopped table: since the change "
                     "that stopped it)",
                     G},
          std::tuple{"ferry_table_rows_copied", "Rows of the table's snapshot captured or applied",
                     G},
          std::tuple{"ferry_table_last_commit_timestamp_seconds",
                     "Source commit time of the latest change of the table captured or applied "
                     "(0: none)",
                     G}}) {
      out.push_back(MetricFamily{name, help, type, {}});
    }
    const bool primary = s.role() == "primary";
    for (const auto& t : s.tables()) {
      const bool needs_resnapshot = t.state() == "needs_resnapshot";
      const bool is_stopped = t.state() == "stopped" || needs_resnapshot;
      stopped += is_stopped;
      add("ferry_table_stopped", "1 when apply stopped the table (reason in ferryctl status)", G,
          is_stopped, {{"table", t.table()}});
      add("ferry_table_snapshotting", "1 while the table's initial copy runs (primary)", G,
          t.state() == "snapshotting", {{"table", t.table()}});
      add("ferry_table_changes_total",
          "Row changes of the table captured (primary) or applied (standby) since ferryd started",
          C, static_cast<double>(primary ? t.changes_captured() : t.changes_applied()),
          {{"table", t.table()}});
      add("ferry_table_lag_seconds",
          "How far the table is behind its source (a stopped table: since the change that stopped "
          "it)",
          G, t.lag_seconds(), {{"table", t.table()}});
      add("ferry_table_rows_copied", "Rows of the table's snapshot captured or applied", G,
          static_cast<double>(t.rows_copied()), {{"table", t.table()}});
      add("ferry_table_last_commit_timestamp_seconds",
          "Source commit time of the latest change of the table captured or applied (0: none)", G,
          static_cast<double>(t.last_commit_time_us()) / 1e6, {{"table", t.table()}});
      if (!is_stopped) continue;
      add("ferry_table_retained_log_bytes",
          "Inbound log bytes a stopped table keeps from being trimmed (bounded by "
          "apply.stopped_table_retention_bytes)",
          G, static_cast<double>(t.retained_log_bytes()), {{"table", t.table()}});
      if (needs_resnapshot) {
        ++resnapshot;
        add("ferry_table_needs_resnapshot",
            "1 when a stopped table's inbound log is gone: resume-table refuses it, it needs a "
            "re-snapshot (reason: retention_bytes or log_trimmed)",
            G, 1, {{"table", t.table()}, {"reason", t.resnapshot_cause()}});
      }
    }
    add("ferry_tables_stopped", "Tables whose apply is stopped", G, stopped);
    // Primary: the standby's trouble, as its receiver reports it (0 on a standby: its own
    // series above say it).
    add("ferry_peer_tables_stopped", "Tables the peer's apply has stopped (primary)", G,
        static_cast<double>(s.peer().stopped_tables_total()));
    add("ferry_peer_conflicts", "Apply conflicts recorded by the peer (primary)", G,
        static_cast<double>(s.peer().conflicts()));
    add("ferry_peer_apply_failed", "1 when the peer's apply stopped for good (primary)", G,
        s.peer().apply_failed());
    add("ferry_peer_applied_beyond_log_end",
        "1 when the peer applied beyond the end of this region's outbound log (primary)", G,
        s.peer().applied_beyond_log_end());
    add("ferry_lag_stopped_tables", "Stopped tables counted in the apply lag", G,
        static_cast<double>(s.apply_lag().stopped_tables()));
    add("ferry_apply_identity_mismatch",
        "1 while apply refuses to run: the target's progress counts another upstream log "
        "(ferryctl status; docs/operations.md, Re-seeding a region)",
        G, s.log_identity().mismatch());
    add("ferry_tables_needing_resnapshot", "Stopped tables whose inbound log is gone", G,
        resnapshot);
    return out;
  }

 private:
  const std::function<v1::StatusReply()> status_;
  const std::function<EngineCounters()> counters_;
};

}  // namespace

std::unique_ptr<Metrics> Metrics::Create(std::function<v1::StatusReply()> status,
                                         std::function<EngineCounters()> counters) {
  std::unique_ptr<Metrics> m(new Metrics());
  m->registry_ = std::make_shared<prometheus::Registry>();
  m->apply_latency_ = &prometheus::BuildHistogram()
                           .Name("ferry_apply_latency_seconds")
                           .Help("Source commit to target commit, per applied transaction group")
                           .Register(*m->registry_)
                           .Add({}, prometheus::Histogram::BucketBoundaries{
                                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25,
                                        0.5, 1, 2.5, 5, 10, 30, 60});
  m->batch_records_ =
      &prometheus::BuildHistogram()
           .Name("ferry_batch_records")
           .Help("Records per shipped batch or applied group")
           .Register(*m->registry_)
           .Add({}, prometheus::Histogram::BucketBoundaries{1, 4, 16, 64, 256, 1024, 4096, 16384});
  m->errors_ = &prometheus::BuildCounter()
                    .Name("ferry_errors_total")
                    .Help("Errors by kind (source, stream, apply, log, admin)")
                    .Register(*m->registry_);
  for (const char* kind : {"source", "stream", "apply", "log", "admin"}) {
    m->errors_->Add({{"kind", kind}});  // present from the start, so rate() works
  }
  m->object_latency_ = &prometheus::BuildHistogram()
                            .Name("ferry_objects_apply_latency_seconds")
                            .Help("Object event captured on the primary to applied on the standby")
                            .Register(*m->registry_)
                            .Add({}, prometheus::Histogram::BucketBoundaries{
                                         0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300});
  m->object_errors_ = &prometheus::BuildCounter()
                           .Name("ferry_objects_errors_total")
                           .Help("Object path failures by kind (the status code's name)")
                           .Register(*m->registry_);
  m->verify_runs_ = &prometheus::BuildCounter()
                         .Name("ferry_verify_runs_total")
                         .Help("Verifies run here (as coordinator), by result")
                         .Register(*m->registry_);
  for (const char* result : {"equal", "different", "error"})
    m->verify_runs_->Add({{"result", result}});
  // The last verify's gauges come from the status (kept in the data_dir across restarts).
  auto counter = [&](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(*m->registry_).Add({});
  };
  m->verify_rows_ = counter("ferry_verify_rows_compared_total", "Rows verifies compared");
  m->verify_bytes_ =
      counter("ferry_verify_bytes_compared_total", "Bytes of values verifies compared");
  m->status_collector_ = std::make_shared<StatusCollector>(std::move(status), std::move(counters));
  return m;
}

void Metrics::CountObjectError(const std::string& kind) {
  object_errors_->Add({{"kind", kind}}).Increment();
}

void Metrics::RecordVerify(const std::string& result, uint64_t rows, uint64_t bytes) {
  verify_runs_->Add({{"result", result}}).Increment();
  verify_rows_->Increment(static_cast<double>(rows));
  verify_bytes_->Increment(static_cast<double>(bytes));
}

std::string Metrics::Scrape() const {
  std::vector<MetricFamily> families = registry_->Collect();
  std::vector<MetricFamily> status = status_collector_->Collect();
  families.insert(families.end(), std::make_move_iterator(status.begin()),
                  std::make_move_iterator(status.end()));
  return prometheus::TextSerializer().Serialize(families);
}

void Metrics::CountError(const std::string& kind) { errors_->Add({{"kind", kind}}).Increment(); }

}  // namespace ferry
