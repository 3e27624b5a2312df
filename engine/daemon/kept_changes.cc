#include "engine/daemon/kept_changes.h"

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/base/json_text.h"
#include "engine/base/status_macros.h"

namespace ferry {
namespace {

constexpr size_t kBatchChanges = 500;
constexpr size_t kBatchBytes = 1 << 20;

// {"column": "value as text" | null, ...} of `tuple`: the key's columns only, or every column
// the tuple carries (an unchanged TOAST value is left out: the row keeps it).
std::string RowJson(const v1::Relation& rel, const v1::Tuple& tuple, bool key_only) {
  std::vector<std::string> fields;
  for (int i = 0; i < rel.columns_size() && i < tuple.values_size(); ++i) {
    if (key_only && !rel.columns(i).part_of_key()) continue;
    const v1::Value& v = tuple.values(i);
    std::string value;
    switch (v.kind_case()) {
      case v1::Value::kUnchangedToast:
        continue;
      case v1::Value::kText:
        value = JsonString(v.text());
        break;
      case v1::Value::kBinary:
        value = JsonString(absl::StrCat("\\x", absl::BytesToHexString(v.binary())));
        break;
      default:
        value = "null";
    }
    fields.push_back(absl::StrCat(JsonString(rel.columns(i).name()), ": ", value));
  }
  if (fields.empty()) return "";
  return absl::StrCat("{", absl::StrJoin(fields, ", "), "}");
}

const char* OpName(v1::Operation op) {
  switch (op) {
    case v1::INSERT:
      return "insert";
    case v1::UPDATE:
      return "update";
    case v1::DELETE:
      return "delete";
    case v1::TRUNCATE:
      return "truncate";
    default:
      return nullptr;
  }
}

}  // namespace

absl::StatusOr<KeptCount> CollectKeptChanges(
    const DurableLog& log, uint64_t from,
    const std::function<bool(const v1::Relation&, uint64_t seq)>& wanted,
    const std::function<absl::Status(v1::QuarantineBatch&)>& keep, const KeptEventFn& event) {
  KeptCount done;
  v1::QuarantineBatch batch;
  size_t batch_bytes = 0;
  std::set<std::pair<uint32_t, uint64_t>> transactions;
  auto flush = [&]() -> absl::Status {
    if (batch.changes_size() == 0) return absl::OkStatus();
    FERRY_RETURN_IF_ERROR(keep(batch));
    done.changes += batch.changes_size();
    batch.clear_changes();
    batch_bytes = 0;
    return absl::OkStatus();
  };
  // The transaction being read: its fragments' changes wait for its last fragment, because a
  // capture that restarted captures a transaction again from its first fragment, and the
  // partial copy before must not be kept too (as apply's reader drops it).
  std::vector<v1::QuarantinedChange> open;
  bool in_transaction = false;
  for (uint64_t seq = from; seq < log.next_seq();) {
    FERRY_ASSIGN_OR_RETURN(std::vector<LogRecord> records, log.Read(seq, 256, 8 << 20));
    if (records.empty()) break;
    for (const LogRecord& record : records) {
      seq = record.seq + 1;
      if (record.kind == RecordKind::kSourceEvent && event) {
        v1::SourceEvent source_event;
        if (!source_event.ParseFromString(record.payload)) {
          return absl::DataLossError(
              absl::StrCat("log record ", record.seq, " is not a source event"));
        }
        FERRY_ASSIGN_OR_RETURN(std::optional<v1::QuarantinedChange> kept, event(source_event));
        if (!kept.has_value()) {
          ++done.other_records;
          continue;
        }
        kept->set_epoch(source_event.epoch());
        kept->set_log_seq(record.seq);
        kept->set_index(0);
        batch_bytes += kept->ByteSizeLong();
        *batch.add_changes() = *std::move(kept);
        ++done.objects;
        if (static_cast<size_t>(batch.changes_size()) >= kBatchChanges ||
            batch_bytes >= kBatchBytes) {
          FERRY_RETURN_IF_ERROR(flush());
        }
        continue;
      }
      // Snapshot rows (an initial copy or a table's re-seed) are not changes: they copy rows the
      // region still holds. Kept here they would be one quarantine transaction per copy (every
      // chunk has xid 0 and the copy's consistent point), with a TRUNCATE per table, never
      // reapplicable. A rejoin's comparison finds the rows the peer lacks, and keeps each as an
      // anomaly with this region's row before the repair (docs/operations.md, "Rejoin").
      if (record.kind == RecordKind::kSnapshotRows) {
        ++done.snapshot_records;
        continue;
      }
      if (record.kind != RecordKind::kTransaction) {
        ++done.other_records;  // heartbeats; a bucket's events nobody converts
        continue;
      }
      v1::Transaction txn;
      if (!txn.ParseFromString(record.payload)) {
        return absl::DataLossError(
            absl::StrCat("log record ", record.seq, " is not a transaction"));
      }
      if (txn.fragment() == 0 && in_transaction) {
        done.partial += open.size();  // captured again from its start: this copy is incomplete
        open.clear();
      }
      in_transaction = true;
      uint32_t index = 0;  // every row change's place in its record (kept or not: one numbering)
      absl::flat_hash_map<uint32_t, const v1::Relation*> relations;
      for (const v1::Relation& r : txn.relations()) relations[r.relation_id()] = &r;
      for (const v1::Change& change : txn.changes()) {
        const char* op = OpName(change.op());
        if (op == nullptr || !relations.contains(change.relation_id())) {
          ++done.skipped;  // a message (a schema change, sequences): not a row
          continue;
        }
        std::vector<uint32_t> targets = {change.relation_id()};
        if (change.op() == v1::TRUNCATE) {
          targets.assign(change.truncate_relation_ids().begin(),
                         change.truncate_relation_ids().end());
        }
        for (uint32_t id : targets) {
          auto target = relations.find(id);
          const uint32_t at = index++;
          if (target == relations.end()) continue;
          const v1::Relation& rel = *target->second;
          if (wanted && !wanted(rel, record.seq)) continue;
          v1::QuarantinedChange& q = open.emplace_back();
          q.set_epoch(txn.epoch());
          q.set_log_seq(record.seq);
          q.set_index(at);
          q.set_source_xid(txn.source_xid());
          q.set_commit_position(txn.source_position());
          q.set_commit_time_us(txn.commit_time_us());
          q.set_table_schema(rel.schema());
          q.set_table_name(rel.name());
          q.set_op(op);
          if (change.op() != v1::TRUNCATE) {
            const bool old_key = change.old_tuple().values_size() > 0;
            q.set_key(RowJson(rel, old_key ? change.old_tuple() : change.new_tuple(),
                              /*key_only=*/true));
            if (change.op() != v1::DELETE) {
              q.set_after(RowJson(rel, change.new_tuple(), /*key_only=*/false));
            }
          }
        }
      }
      if (!txn.last_fragment()) continue;
      in_transaction = false;
      if (!open.empty()) transactions.insert({txn.source_xid(), txn.source_position()});
      for (v1::QuarantinedChange& q : open) {
        batch_bytes += q.ByteSizeLong();
        *batch.add_changes() = std::move(q);
      }
      open.clear();
      if (static_cast<size_t>(batch.changes_size()) >= kBatchChanges ||
          batch_bytes >= kBatchBytes) {
        FERRY_RETURN_IF_ERROR(flush());
      }
    }
  }
  done.partial += open.size();  // a transaction whose last fragment the log does not hold
  FERRY_RETURN_IF_ERROR(flush());
  done.transactions = transactions.size();
  return done;
}

}  // namespace ferry
