#include "consistency/postgres/coordinator.h"

#include <chrono>
#include <future>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "consistency/postgres/repair.h"
#include "engine/base/kill_point.h"
#include "engine/base/status_macros.h"

namespace ferry::consistency {

absl::Status LocalStandbyPeer::CheckCancelled() const {
  return cancelled_.load() ? absl::CancelledError("verify: the scan was cancelled")
                           : absl::OkStatus();
}

void LocalStandbyPeer::CancelScan() {
  cancelled_ = true;   // between batches
  session_->Cancel();  // inside a statement (a sort, a lock wait)
}

absl::StatusOr<TableSide*> LocalStandbyPeer::OpenTable(const TableSpec& spec) {
  if (table_ != nullptr) rows_read_ += table_->rows_read();
  table_.reset();
  FERRY_RETURN_IF_ERROR(CheckCancelled());
  FERRY_ASSIGN_OR_RETURN(table_, PgTableSide::Create(*session_, spec));
  table_->set_between_batches([this] { return CheckCancelled(); });
  absl::Status scanned = table_->BuildIndex(spec.leaf_bits);
  if (!scanned.ok()) {
    table_.reset();
    FERRY_RETURN_IF_ERROR(CheckCancelled());  // the cancel, not the statement's error
    return scanned;
  }
  return table_.get();
}

absl::StatusOr<RepairCounts> LocalStandbyPeer::Repair(const TableSpec& spec,
                                                      const std::vector<RepairRow>& rows) {
  if (repair_dsn_.empty()) return absl::UnimplementedError("this standby cannot repair");
  return RepairOnStandby(repair_dsn_, spec, rows);
}

namespace {

// --repair of one compared table (docs/verify.md): tables whose schemas agree, keyed or
// keyless (multisets: copies of each differing row).
absl::Status RepairOne(VerifySession& primary, StandbyPeer& standby, const TableSpec& spec,
                       TableDifferences* out) {
  if (out->equal()) return absl::OkStatus();
  if (!out->schema.empty()) {
    // Refused (docs/verify.md): DDL on the standby is the operator's decision (a dropped column
    // loses data), and rows written before it would be compared on the wrong columns.
    out->repair_note = absl::StrCat(
        "not repaired: the schemas differ; run on the standby (the primary is the reference), "
        "then verify --repair again: ",
        absl::StrJoin(out->standby_ddl, "; "));
    return absl::OkStatus();
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<RepairRow> rows,
                         ReadRepairRows(primary, spec, out->repair_targets));
  absl::StatusOr<RepairCounts> repaired = standby.Repair(spec, rows);
  if (absl::IsFailedPrecondition(repaired.status())) {
    // The standby cannot write this table as it stands (e.g. a keyless table it publishes
    // without a replica identity): this table is left aside with the reason, not the verify.
    out->repair_note = absl::StrCat("not repaired: ", repaired.status().message());
    return absl::OkStatus();
  }
  FERRY_RETURN_IF_ERROR(repaired.status());
  out->repaired = *repaired;
  out->repair_attempted = true;
  if (out->truncated) {
    out->repair_note = out->keyless ? "only --max-keys differing rows were repaired: run verify "
                                      "--repair again"
                                    : "only the keys listed were repaired (--max-keys): run "
                                      "verify --repair again";
  }
  return absl::OkStatus();
}

absl::Status VerifyOne(VerifySession& primary, StandbyPeer& standby, const TableName& name,
                       const VerifyOptions& options, VerifyReport* report, TableDifferences* out) {
  auto mine = primary.ReadSchema(name);
  auto theirs = standby.ReadSchema(name);
  if (!mine.ok() && !absl::IsNotFound(mine.status())) return mine.status();
  if (!theirs.ok() && !absl::IsNotFound(theirs.status())) return theirs.status();
  if (!mine.ok() && !theirs.ok()) {
    if (options.listed_before) {
      out->notes.push_back("dropped in both regions during the verify");
      return absl::OkStatus();
    }
    return absl::NotFoundError(
        absl::StrCat("no table ", name.schema, ".", name.name, " in either region"));
  }
  if (!theirs.ok()) {
    out->schema.push_back("table missing on the standby");
    if (options.repair) {
      out->repair_note = absl::StrCat(
          "not repaired: create the table on the standby as on the primary (pg_dump "
          "--schema-only --table ",
          out->table, " of the primary), then verify --repair again");
    }
    return absl::OkStatus();
  }
  if (!mine.ok()) {
    out->schema.push_back("table extra on the standby");
    if (options.repair) {
      out->repair_note = absl::StrCat(
          "not repaired: the primary has no such table; drop it on "
          "the standby (DROP TABLE ",
          out->table, ") if the primary is right");
    }
    return absl::OkStatus();
  }
  TablePlan plan = PlanTable(*mine, *theirs, options.leaf_bits);
  out->schema = plan.schema_differences;
  out->notes = plan.notes;
  out->keyless = plan.spec.keyless();
  out->key_columns = plan.spec.key_columns;
  out->standby_ddl = plan.standby_ddl;
  if (!plan.compare_rows) {
    if (options.repair) return RepairOne(primary, standby, plan.spec, out);  // the refusal
    return absl::OkStatus();
  }

  plan.spec.max_rows_per_second = options.max_rows_per_second;
  FERRY_ASSIGN_OR_RETURN(auto side, PgTableSide::Create(primary, plan.spec));
  // Ctrl-C or --timeout stops the primary's scan within a batch.
  if (options.compare.check_cancelled) side->set_between_batches(options.compare.check_cancelled);
  // Both regions scan at once, each on its own thread; this one watches for a cancel, which
  // stops both scans inside their statements (a sort or a lock wait can be long): the
  // primary's in Postgres, the standby's by cancelling its call (it cancels its own).
  auto local =
      std::async(std::launch::async, [&] { return side->BuildIndex(plan.spec.leaf_bits); });
  auto remote = std::async(std::launch::async, [&] { return standby.OpenTable(plan.spec); });
  absl::Status cancelled;
  auto ready = [](auto& f) {
    return f.wait_for(std::chrono::milliseconds(25)) == std::future_status::ready;
  };
  while (!(ready(local) && ready(remote))) {
    if (cancelled.ok() && options.compare.check_cancelled) {
      cancelled = options.compare.check_cancelled();
    }
    if (!cancelled.ok()) {
      // Again each round: a cancel sent before a statement starts is lost.
      primary.Cancel();
      standby.CancelScan();
    }
  }
  absl::Status scanned = local.get();
  absl::StatusOr<TableSide*> standby_side = remote.get();
  FERRY_RETURN_IF_ERROR(cancelled);
  FERRY_RETURN_IF_ERROR(scanned);
  FERRY_RETURN_IF_ERROR(standby_side.status());
  KillPoint("verify.tables_scanned");
  FERRY_RETURN_IF_ERROR(CompareTable(*side, **standby_side, options.compare, out, &report->stats));
  if (options.repair) FERRY_RETURN_IF_ERROR(RepairOne(primary, standby, plan.spec, out));
  report->primary_rows_read += side->rows_read();
  report->primary_bytes_read += side->bytes_read();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<VerifyReport> RunVerify(VerifySession& primary, StandbyPeer& standby,
                                       const VerifyOptions& options) {
  std::vector<TableName> tables = options.tables;
  if (tables.empty()) {
    FERRY_ASSIGN_OR_RETURN(auto mine, primary.ListTables());
    FERRY_ASSIGN_OR_RETURN(auto theirs, standby.ListTables());
    std::set<TableName> all(mine.begin(), mine.end());
    all.insert(theirs.begin(), theirs.end());
    tables.assign(all.begin(), all.end());
  }
  VerifyReport report;
  for (size_t i = 0; i < tables.size(); ++i) {
    const TableName& name = tables[i];
    if (i > 0 && options.cut_expired && options.cut_expired()) {
      report.remaining.assign(tables.begin() + static_cast<std::ptrdiff_t>(i), tables.end());
      break;
    }
    if (options.compare.check_cancelled) FERRY_RETURN_IF_ERROR(options.compare.check_cancelled());
    TableDifferences diff;
    diff.table = absl::StrCat(name.schema, ".", name.name);
    if (options.on_step) options.on_step(absl::StrCat("comparing ", diff.table));
    FERRY_RETURN_IF_ERROR(
        Annotate(VerifyOne(primary, standby, name, options, &report, &diff), diff.table));
    if (options.on_table) options.on_table(diff);
    report.tables.push_back(std::move(diff));
  }
  return report;
}

}  // namespace ferry::consistency
