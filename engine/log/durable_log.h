// DurableLog: Ferry's durable, ordered log of change records, kept in RocksDB.
//
// Every change passes through one: the outbound log (source -> shipper) in the primary region and
// the inbound log (receiver -> apply) in the standby. Records are addressed by a 64-bit sequence
// number that starts at 1 and grows by one per record, with no gaps. Format: log_format.md.
//
// Durability contract: Append() returns OK only once the records (and the cursors given with
// them) are synced to disk. Concurrent Append() calls are grouped: one writer becomes the leader,
// writes everybody's records in one RocksDB write batch and syncs once for the group (group
// commit, as in leveldb's DBImpl::Write). Records of one Append() are contiguous and in order.
//
// Cursors are named 64-bit values (for example "captured", "shipped", "acked", "applied") stored
// beside the records and written in the same atomic batch as the records they describe.
//
// Thread safety: all methods are thread-safe.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(auto log, DurableLog::Open({.path = dir + "/outbound"}));
//   AppendRequest req;
//   req.records.push_back({RecordKind::kTransaction, payload});
//   req.cursors.push_back({"captured", lsn});
//   FERRY_ASSIGN_OR_RETURN(uint64_t first_seq, log->Append(std::move(req)));
//   FERRY_ASSIGN_OR_RETURN(auto records, log->Read(first_seq, 100, 1 << 20));
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/base/clock.h"
#include "engine/log/log_format.h"
#include "engine/log/record_size_index.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class Env;
class FileSystem;
}  // namespace rocksdb

namespace ferry {

struct LogOptions {
  // Directory of the RocksDB database; created when missing.
  std::string path;
  // Sync every group commit. Only benchmarks that measure the cost of syncing turn it off.
  bool sync = true;
  // The file system RocksDB writes through; null means the real one. Tests inject a
  // fault-injecting wrapper here (power loss, I/O errors).
  std::shared_ptr<rocksdb::FileSystem> file_system;
  // A group commit stops collecting writers once it holds this many payload bytes.
  size_t max_group_bytes = 16 << 20;
  // A single record's payload may not exceed this (protects readers and the wire).
  size_t max_record_bytes = 64 << 20;
};

// A record as stored and read back.
struct LogRecord {
  uint64_t seq = 0;
  RecordKind kind = RecordKind::kUnspecified;
  std::string payload;
};

// A record to append: the log assigns the sequence number.
struct NewRecord {
  RecordKind kind = RecordKind::kUnspecified;
  std::string payload;
};

struct AppendRequest {
  std::vector<NewRecord> records;
  // Cursor values written atomically with the records.
  std::vector<std::pair<std::string, uint64_t>> cursors;
  // Named opaque values (a source's snapshot progress, region state) written atomically with
  // the records.
  std::vector<std::pair<std::string, std::string>> state;
  // When set, the append fails with kFailedPrecondition (appending nothing) unless the first
  // record would get this sequence number. The receiver uses it to keep the inbound log an
  // exact copy of the outbound one.
  std::optional<uint64_t> expected_first_seq;
  // When set, the log must hold no record (first_seq == next_seq, nothing appended before this
  // request in its group) and `start_at` must be >= next_seq: the log then continues at
  // `start_at` (everything below counts as trimmed, written in the same batch), and the request's
  // records, if any, start there. Otherwise the append fails with kFailedPrecondition, appending
  // nothing. The receiver uses it to start a new inbound log where the target's progress is.
  std::optional<uint64_t> start_at;
};

struct LogStats {
  uint64_t first_seq = 1;         // lowest readable sequence (everything below is trimmed)
  uint64_t next_seq = 1;          // sequence the next appended record gets
  uint64_t appended_records = 0;  // since Open
  uint64_t appended_bytes = 0;    // payload bytes since Open
  uint64_t group_commits = 0;     // syncs since Open
  uint64_t approximate_disk_bytes = 0;
};

class DurableLog {
 public:
  // Opens (creating when missing) the log at options.path and recovers its state. Fails with
  // kDataLoss when the stored data is corrupt, kFailedPrecondition when it was written by a newer
  // format version, kUnavailable on I/O errors.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<DurableLog>> Open(const LogOptions& options);

  ~DurableLog();
  DurableLog(const DurableLog&) = delete;
  DurableLog& operator=(const DurableLog&) = delete;

  // Durably appends the records and cursors; returns the sequence number of the first record
  // (or the next sequence number when there are none). On error nothing of the request is
  // visible. After an I/O error the log refuses further appends (kUnavailable) until reopened:
  // RocksDB may have lost the unsynced tail, and appending past it would leave a gap.
  [[nodiscard]] absl::StatusOr<uint64_t> Append(AppendRequest request);

  // Shorthand for an Append() with cursors only.
  [[nodiscard]] absl::Status SetCursor(const std::string& name, uint64_t value);

  // The cursor's value, or nullopt when it was never set.
  [[nodiscard]] absl::StatusOr<std::optional<uint64_t>> GetCursor(const std::string& name) const;

  // The named state value, or nullopt when it was never set.
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> GetState(const std::string& name) const;

  // Reads records with sequence numbers in [from, next_seq), in order, stopping after
  // max_records records or once max_bytes payload bytes have been read (at least one record is
  // returned when any is available). kOutOfRange when `from` is below first_seq (trimmed);
  // kDataLoss when a stored record fails its checksum (never returned as data).
  [[nodiscard]] absl::StatusOr<std::vector<LogRecord>> Read(uint64_t from, size_t max_records,
                                                            size_t max_bytes) const;

  // Payload bytes of the records in [from, next_seq), `from` clamped to [first_seq, next_seq]:
  // exact, from the size index (record_size_index.h) and at most 63 records (< 1 MiB) read
  // back. Errors as Read's. What status and metrics report as the bytes of the RPO and of the
  // apply lag.
  [[nodiscard]] absl::StatusOr<uint64_t> PayloadBytesFrom(uint64_t from) const;

  // Removes every record below `seq` (clamped to next_seq). Idempotent.
  [[nodiscard]] absl::Status TrimBelow(uint64_t seq);

  // Blocks until a record with sequence >= `seq` exists, the deadline passes, or Close() is
  // called. Returns true when such a record exists.
  bool WaitForRecord(uint64_t seq, absl::Time deadline) const;
  // The same with `deadline` on `clock` (the caller's injected clock). A clock other than
  // Clock::Real() (a test's ManualClock) moves without waking anyone, so on it the wait also
  // ends after at most kClockPollInterval of real time, like a spurious wake-up: callers loop,
  // re-check what they wait for and wait again. On the real clock it is WaitForRecord above.
  bool WaitForRecord(uint64_t seq, absl::Time deadline, const Clock& clock) const;
  static constexpr absl::Duration kClockPollInterval = absl::Milliseconds(5);

  // Wakes every waiter and refuses further appends. Idempotent; the destructor calls it.
  void Close();

  uint64_t next_seq() const;
  uint64_t first_seq() const;
  LogStats stats() const;
  const LogOptions& options() const { return options_; }

 private:
  struct Writer;
  explicit DurableLog(const LogOptions& options);
  absl::Status Recover();
  // Payload bytes of every record below `seq` since the size index's origin.
  absl::StatusOr<uint64_t> BytesBefore(uint64_t seq) const;

  // Constant after Open.
  const LogOptions options_;
  std::unique_ptr<rocksdb::Env> env_;  // wraps options_.file_system when given
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* records_ = nullptr;  // owned by db_ handles_
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;

  mutable absl::Mutex mu_;
  mutable absl::CondVar appended_;                    // signalled when next_seq_ grows or on Close
  std::deque<Writer*> writers_ ABSL_GUARDED_BY(mu_);  // front is the current leader
  uint64_t first_seq_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  absl::Status write_error_ ABSL_GUARDED_BY(mu_);  // sticky after an I/O error
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t appended_records_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t appended_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t group_commits_ ABSL_GUARDED_BY(mu_) = 0;
  RecordSizeIndex sizes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry
