#include "engine/apply/inbound_reader.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/rows/copy_rows.h"

namespace ferry {
namespace {

// Records of one streamed or replayed batch. A streamed fragment is parsed only when its turn
// comes, so a worker holds at most one batch of raw fragments and one parsed fragment.
constexpr size_t kStreamBatchRecords = 64;
constexpr size_t kReplayBatchRecords = 256;

}  // namespace

InboundReader::InboundReader(const DurableLog* log, const InboundReaderOptions& options)
    : log_(log), options_(options) {}

absl::StatusOr<std::vector<LogRecord>> InboundReader::Read(uint64_t from, Batch batch,
                                                           uint64_t until) const {
  if (from > until) return std::vector<LogRecord>();
  size_t records = options_.batch_records;
  if (batch == Batch::kStream) records = kStreamBatchRecords;
  if (batch == Batch::kReplay) records = kReplayBatchRecords;
  // Never past `until` (a replay stops at the applied progress).
  if (until - from < records) records = static_cast<size_t>(until - from) + 1;
  absl::StatusOr<std::vector<LogRecord>> read = log_->Read(from, records, options_.batch_bytes);
  if (!read.ok() && read.status().code() == absl::StatusCode::kOutOfRange) {
    return absl::DataLossError(
        absl::StrCat("apply: inbound log trimmed past seq ", from, ": ", read.status().message()));
  }
  return read;
}

absl::StatusOr<InboundRecord> InboundReader::Decode(const LogRecord& record,
                                                    RelationCatalog* catalog) {
  InboundRecord decoded;
  decoded.seq = record.seq;
  decoded.bytes = record.payload.size();
  switch (record.kind) {
    case RecordKind::kHeartbeat:
      decoded.heartbeat = true;
      return decoded;
    case RecordKind::kSourceEvent:
      // Not a transaction: the daemon's event pipeline applies it (engine/daemon/
      // event_pipeline.h); for the database apply it is passed over like a heartbeat.
      decoded.heartbeat = true;
      return decoded;
    case RecordKind::kTransaction:
    case RecordKind::kSnapshotRows:
      break;
    default:
      return absl::DataLossError(absl::StrCat("apply: inbound record ", record.seq,
                                              " has unknown kind ", static_cast<int>(record.kind)));
  }
  const bool parsed = catalog != nullptr
                          ? catalog->Parse(record.payload, &decoded.txn, &decoded.lent)
                          : decoded.txn.ParseFromString(record.payload);
  if (!parsed) {
    return absl::DataLossError(
        absl::StrCat("apply: inbound record ", record.seq, " is not a valid Transaction"));
  }
  // Only an initial copy's records carry compressed rows (a frame anywhere else leaves its
  // change without rows, which apply refuses as malformed): the stream's records skip this.
  if (record.kind == RecordKind::kSnapshotRows) {
    size_t compressed = 0;
    for (const v1::Change& c : decoded.txn.changes()) compressed += c.copy_rows_zstd().size();
    absl::StatusOr<size_t> inflated = InflateCopyRows(&decoded.txn);
    if (!inflated.ok()) {
      return absl::DataLossError(
          absl::StrCat("apply: inbound record ", record.seq, ": ", inflated.status().message()));
    }
    // Groups are bounded by what their transactions hold in memory, the rows inflated.
    decoded.bytes += *inflated - std::min(*inflated, compressed);
  }
  return decoded;
}

bool InboundReader::WaitForRecord(uint64_t seq, absl::Duration wait,
                                  std::optional<uint64_t> wakeups_seen) const {
  return log_->WaitForRecord(seq, options_.clock->Now() + wait, *options_.clock, wakeups_seen);
}

}  // namespace ferry
