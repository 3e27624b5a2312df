#include "connectors/postgres/source/snapshot.h"

#include <atomic>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "connectors/postgres/common/identifiers.h"
#include "connectors/postgres/common/lsn.h"
#include "connectors/postgres/source/table_definition.h"
#include "engine/base/status_macros.h"
#include "engine/rows/copy_rows.h"

namespace ferry::pg {
namespace {

// Streams one table's rows into records (see snapshot.h).
class TableCopy {
 public:
  TableCopy(const SnapshotOptions& options, const SnapshotTable& table, CaptureTarget& target)
      : options_(options), table_(table), target_(target), keyed_(HasUpsertKey(table.relation)) {
    Start();
  }

  absl::Status Run(PgConnection& conn, const StopSignal& stop) {
    // The table's definition first (created on the target when missing), then a TRUNCATE.
    FERRY_ASSIGN_OR_RETURN(std::vector<v1::Change> definition,
                           DefinitionChanges(conn, table_.table));
    for (v1::Change& c : definition) *chunk_.add_changes() = std::move(c);
    v1::Change* truncate = chunk_.add_changes();
    truncate->set_op(v1::TRUNCATE);
    truncate->set_relation_id(table_.relation.relation_id());
    truncate->add_truncate_relation_ids(table_.relation.relation_id());
    std::vector<std::string> columns;
    for (const v1::Column& c : table_.relation.columns())
      columns.push_back(QuoteIdentifier(c.name()));
    std::string select =
        absl::StrCat("COPY (SELECT ", columns.empty() ? "" : absl::StrJoin(columns, ", "), " FROM ",
                     table_.table.partitioned ? "" : "ONLY ",
                     QualifiedName(table_.table.schema, table_.table.name), ") TO STDOUT");
    FERRY_ASSIGN_OR_RETURN(PgResult r, conn.Exec(select));
    if (r.status() != PGRES_COPY_OUT) return absl::InternalError("COPY did not start");
    // The rows travel as COPY gave them (engine/rows/copy_rows.h): one COPY change per chunk,
    // checked and inserted as they are by apply.
    while (true) {
      char* buf = nullptr;
      int n = PQgetCopyData(conn.raw(), &buf, /*async=*/0);
      if (n == -1) break;
      if (n == -2) {
        return absl::UnavailableError(conn.ConnectionError("copying a snapshot").message());
      }
      if (rows_ == nullptr) {
        rows_ = chunk_.add_changes();
        rows_->set_op(v1::COPY);
        rows_->set_relation_id(table_.relation.relation_id());
      }
      rows_->mutable_copy_rows()->append(buf, n);
      PQfreemem(buf);
      rows_->set_copy_row_count(rows_->copy_row_count() + 1);
      ++chunk_rows_;
      if (chunk_rows_ >= options_.max_chunk_rows ||
          rows_->copy_rows().size() >= options_.max_chunk_bytes) {
        if (stop.stopped()) return absl::CancelledError("stopped during the snapshot");
        FERRY_RETURN_IF_ERROR(Emit(/*last=*/false));
      }
    }
    PgResult end(PQgetResult(conn.raw()));
    if (end.get() == nullptr || end.status() != PGRES_COMMAND_OK) {
      return conn.ResultError(end.get(), absl::StrCat("copying ", Name()));
    }
    while (PGresult* extra = PQgetResult(conn.raw())) PQclear(extra);
    return Emit(/*last=*/true);
  }

 private:
  std::string Name() const { return absl::StrCat(table_.table.schema, ".", table_.table.name); }

  void Start() {
    chunk_.Clear();
    rows_ = nullptr;
    chunk_rows_ = 0;
    chunk_.set_origin_region(options_.origin_region);
    chunk_.set_source_position(options_.consistent_point);
    chunk_.set_end_position(options_.consistent_point);
    chunk_.set_commit_time_us(options_.snapshot_time_us);
    chunk_.set_source_xid(0);
    chunk_.set_snapshot(true);
    *chunk_.add_relations() = table_.relation;
  }

  absl::Status Emit(bool last) {
    // Level 1: the cheapest, and pgbench's rows shrink tenfold at it (FINDINGS.md, session 31).
    if (rows_ != nullptr) FERRY_RETURN_IF_ERROR(CompressCopyRows(rows_, /*level=*/1));
    if (keyed_) {
      chunk_.set_fragment(0);
      chunk_.set_last_fragment(true);
    } else {
      chunk_.set_fragment(next_fragment_++);
      chunk_.set_last_fragment(last);
    }
    std::vector<v1::Transaction> batch;
    batch.push_back(std::move(chunk_));
    FERRY_RETURN_IF_ERROR(target_.Append(std::move(batch), 0));
    if (options_.progress && chunk_rows_ > 0) options_.progress(table_.table, chunk_rows_, false);
    Start();
    return absl::OkStatus();
  }

  const SnapshotOptions& options_;
  const SnapshotTable& table_;
  CaptureTarget& target_;
  const bool keyed_;
  v1::Transaction chunk_;
  v1::Change* rows_ = nullptr;  // the chunk's COPY change, once it has a row
  uint64_t chunk_rows_ = 0;
  uint32_t next_fragment_ = 0;
};

// Copies tables[i] for every index the shared cursor hands out, until done or failed.
class CopyWorkers {
 public:
  CopyWorkers(const SnapshotOptions& options, std::vector<const SnapshotTable*> tables,
              CaptureTarget& target, const StopSignal& stop)
      : options_(options), tables_(std::move(tables)), target_(target), stop_(stop) {}

  absl::Status Run(int threads) {
    if (tables_.empty()) return absl::OkStatus();
    threads = std::max(1, std::min<int>(threads, static_cast<int>(tables_.size())));
    std::vector<std::thread> workers;
    for (int i = 0; i < threads; ++i) workers.emplace_back([this] { Work(); });
    for (auto& w : workers) w.join();
    absl::MutexLock lock(&mu_);
    return first_error_;
  }

 private:
  void Work() {
    auto conn = OpenSnapshotConnection(options_);
    if (!conn.ok()) return Fail(conn.status());
    while (!failed_.load() && !stop_.stopped()) {
      size_t i = next_.fetch_add(1);
      if (i >= tables_.size()) return;
      const SnapshotTable& t = *tables_[i];
      TableCopy copy(options_, t, target_);
      absl::Status s = copy.Run(**conn, stop_);
      if (s.ok()) {
        s = target_.PutSourceState(SnapshotTableStateKey(options_.state_prefix, t.table),
                                   absl::StrCat("done ", FormatLsn(options_.consistent_point)));
      }
      if (!s.ok()) return Fail(s);
      if (options_.progress) options_.progress(t.table, 0, true);
    }
    if (stop_.stopped()) Fail(absl::CancelledError("stopped during the snapshot"));
  }

  void Fail(const absl::Status& s) {
    failed_.store(true);
    absl::MutexLock lock(&mu_);
    if (first_error_.ok()) first_error_ = s;
  }

  const SnapshotOptions& options_;
  const std::vector<const SnapshotTable*> tables_;
  CaptureTarget& target_;
  const StopSignal& stop_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> failed_{false};
  absl::Mutex mu_;
  absl::Status first_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<PgConnection>> OpenSnapshotConnection(
    const SnapshotOptions& options) {
  FERRY_ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(options.dsn));
  FERRY_RETURN_IF_ERROR(conn->Exec(absl::StrCat("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
                                                "SET TRANSACTION SNAPSHOT ",
                                                QuoteLiteral(options.snapshot_name)))
                            .status());
  return conn;
}

bool HasUpsertKey(const v1::Relation& relation) {
  if (relation.primary_key_size() > 0) return true;
  if (relation.replica_identity() != v1::REPLICA_IDENTITY_INDEX) return false;
  for (const v1::Column& c : relation.columns()) {
    if (c.part_of_key()) return true;
  }
  return false;
}

std::string SnapshotTableStateKey(const std::string& prefix, const PublishedTable& table) {
  return absl::StrCat(prefix, "table/", QualifiedName(table.schema, table.name));
}

absl::Status CopyTables(const SnapshotOptions& options, const std::vector<SnapshotTable>& tables,
                        CaptureTarget& target, const StopSignal& stop) {
  std::string done = absl::StrCat("done ", FormatLsn(options.consistent_point));
  std::vector<const SnapshotTable*> keyed, keyless;
  for (const SnapshotTable& t : tables) {
    FERRY_ASSIGN_OR_RETURN(std::string state, target.GetSourceState(SnapshotTableStateKey(
                                                  options.state_prefix, t.table)));
    if (state == done) {
      if (options.progress) options.progress(t.table, 0, true);
      continue;
    }
    (HasUpsertKey(t.relation) ? keyed : keyless).push_back(&t);
  }
  FERRY_RETURN_IF_ERROR(CopyWorkers(options, keyed, target, stop).Run(options.parallelism));
  // Keyless tables are one fragmented transaction each: one at a time, so their fragments
  // are contiguous in the log.
  FERRY_RETURN_IF_ERROR(CopyWorkers(options, keyless, target, stop).Run(1));
  // Foreign keys last, once every table is filled (each is added only when missing).
  FERRY_ASSIGN_OR_RETURN(auto conn, OpenSnapshotConnection(options));
  v1::Transaction keys;
  keys.set_origin_region(options.origin_region);
  keys.set_source_position(options.consistent_point);
  keys.set_end_position(options.consistent_point);
  keys.set_commit_time_us(options.snapshot_time_us);
  keys.set_snapshot(true);
  keys.set_last_fragment(true);
  for (const SnapshotTable& t : tables) {
    FERRY_ASSIGN_OR_RETURN(std::vector<v1::Change> fks, ForeignKeyChanges(*conn, t.table));
    for (v1::Change& c : fks) *keys.add_changes() = std::move(c);
  }
  if (keys.changes_size() == 0) return absl::OkStatus();
  std::vector<v1::Transaction> batch;
  batch.push_back(std::move(keys));
  return target.Append(std::move(batch), 0);
}

}  // namespace ferry::pg
