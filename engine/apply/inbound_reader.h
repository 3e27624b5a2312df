// InboundReader: the one place where apply reads the inbound log. The scheduler's reader thread
// (cutting the log into groups), a worker streaming a large transaction, and ResumeTable's replay
// all read through it, so they share its batch limits, its decoding and its errors:
//   - a read below the log's first seq (trimmed) is kDataLoss: apply needs every record from the
//     target's progress on, and one it can no longer read is lost for it;
//   - a record is a heartbeat, a source event (passed over like a heartbeat: the daemon's event
//     pipeline applies it) or one fragment of a source transaction (kTransaction,
//     kSnapshotRows); any other kind, or a transaction payload that does not parse, is kDataLoss.
// Waits for new records are on the injected clock.
//
// Thread safety: const and thread-safe (the log is); one reader is shared by every thread of an
// ApplyScheduler.
//
// Example:
//   InboundReader inbound(log, {.batch_records = 2048, .batch_bytes = 16 << 20});
//   FERRY_ASSIGN_OR_RETURN(std::vector<LogRecord> batch,
//                          inbound.Read(next, InboundReader::Batch::kGroups));
//   for (const LogRecord& raw : batch) {
//     FERRY_ASSIGN_OR_RETURN(InboundRecord record, InboundReader::Decode(raw));
//     ...
//   }
//   if (batch.empty()) inbound.WaitForRecord(next, absl::Milliseconds(100));
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/apply/relation_catalog.h"
#include "engine/base/clock.h"
#include "engine/log/durable_log.h"
#include "proto/change.pb.h"

namespace ferry {

// One decoded inbound record. Move `txn` and `lent` together or not at all (a moved-from
// record returns what it still holds).
struct InboundRecord {
  InboundRecord() = default;
  InboundRecord(InboundRecord&& other) noexcept = default;
  InboundRecord& operator=(InboundRecord&& other) = delete;
  ~InboundRecord() { lent.Return(&txn); }

  uint64_t seq = 0;
  // A heartbeat, or a source event (applied by the daemon's event pipeline, not here): no
  // transaction, the progress passes it.
  bool heartbeat = false;
  v1::Transaction txn;  // one fragment of a source transaction, unless heartbeat
  // txn's relations lent by a RelationCatalog (engine/apply/relation_catalog.h), if any.
  LentRelations lent;
  size_t bytes = 0;  // payload bytes in the log, compressed rows counted inflated
};

struct InboundReaderOptions {
  // A batch of the scheduler's reader (Batch::kGroups) holds at most this many records...
  size_t batch_records = 2048;
  // ...and every batch at most this many payload bytes (at least one record).
  size_t batch_bytes = 16 << 20;
  // The clock of WaitForRecord; not owned.
  Clock* clock = Clock::Real();
};

class InboundReader {
 public:
  // What a read is for; each reader reads batches of its own size.
  enum class Batch {
    kGroups,  // the scheduler's reader: options.batch_records
    kStream,  // a worker streaming a large transaction: 64 fragments, parsed one at a time
    kReplay,  // ResumeTable replaying a stopped table: 256
  };

  // `log` must outlive the reader.
  InboundReader(const DurableLog* log, const InboundReaderOptions& options);

  // The raw records from `from` on, at most up to `until` and one batch of `batch`; empty when
  // the log holds none yet. kDataLoss when `from` was trimmed, other errors as DurableLog::Read.
  [[nodiscard]] absl::StatusOr<std::vector<LogRecord>> Read(
      uint64_t from, Batch batch, uint64_t until = std::numeric_limits<uint64_t>::max()) const;

  // Decodes one record read above, inflating compressed snapshot rows (InflateCopyRows).
  // kDataLoss for an unknown kind, a payload that is not a Transaction, or compressed rows that
  // do not inflate (such a record cannot be read whole, so nothing narrower than apply can
  // stop). With a catalog, the transaction's relations are lent by it (`lent`).
  [[nodiscard]] static absl::StatusOr<InboundRecord> Decode(const LogRecord& record,
                                                            RelationCatalog* catalog = nullptr);

  // Waits until the log holds a record at or after `seq`, at most `wait` on the clock (it may
  // return earlier: wake-up granularity only), or a wake-up of the log's waiters since
  // `wakeups_seen` (DurableLog::WaitForRecord). True when there is such a record.
  bool WaitForRecord(uint64_t seq, absl::Duration wait,
                     std::optional<uint64_t> wakeups_seen = std::nullopt) const;
  uint64_t wakeups() const { return log_->wakeups(); }

  // The seq the next appended record gets.
  uint64_t next_seq() const { return log_->next_seq(); }

 private:
  // Constant after construction.
  const DurableLog* const log_;
  const InboundReaderOptions options_;
};

}  // namespace ferry
