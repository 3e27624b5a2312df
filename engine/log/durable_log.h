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

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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
  // Trimmed records are deleted with one range tombstone, and RocksDB gives their disk space
  // back only when it compacts that range, which a log that is trimmed but little written never
  // triggers. TrimBelow() therefore compacts everything below the trim position once the trims
  // since the last compaction removed at least this many bytes (RocksDB's estimate): the disk
  // held by trimmed records stays near this bound, and a trimmed byte is compacted about once.
  // 0 compacts after every trim (tests).
  uint64_t compact_trimmed_bytes = 64 << 20;
  // After a write error (a full disk, an I/O error), an Append() tries to bring the log back
  // (a reopen of the database) at most this often on `clock`; in between it fails fast. Zero
  // tries on every Append().
  absl::Duration resume_interval = absl::Seconds(1);
  const Clock* clock = Clock::Real();
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
  // When set, the record's bytes are these and `payload` is ignored: bytes that its maker keeps
  // valid until Append() returns (a copy of the record borrows the same bytes). The receiver
  // appends a batch's records from the batch's own buffer this way, without a string for each.
  std::optional<std::string_view> borrowed;

  std::string_view bytes() const { return borrowed.has_value() ? *borrowed : payload; }
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
  uint64_t compactions = 0;                // compactions of trimmed ranges since Open
  uint64_t trimmed_uncompacted_bytes = 0;  // trimmed since the last compaction (estimate)
  uint64_t resumes = 0;                    // times the log was reopened after a write error
  std::string write_error;                 // the write error appends fail with now ("" when none)
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
  // (or the next sequence number when there are none). On error (kUnavailable) nothing of the
  // request is visible; its outcome on disk is unknown (it may be there after a reopen, in
  // full, never in part). After a write error (a full disk, an I/O error) the log refuses
  // appends until it has recovered: an Append() at most every resume_interval checks that the
  // disk has room for what the WAL holds and, if so, closes and reopens the database (what a
  // restart did: the WAL is replayed, a torn tail dropped), re-reads its end from disk and
  // appends again. Reads go on meanwhile (except during the reopen itself, and after a reopen
  // failed: kUnavailable until the next one works). Nothing acknowledged is lost; a restart is
  // never needed for this. kDataLoss (for good) when the log comes back without records it had
  // acknowledged. RocksDB's own Resume() is not used: in RocksDB 7.8 it can wait forever when
  // its recovery flush fails again (DiskFullE2ETest found that).
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

  // Removes every record below `seq` (clamped to next_seq). Idempotent. Compacts the trimmed
  // range once enough was trimmed (LogOptions::compact_trimmed_bytes), giving its disk space
  // back; that happens on the calling thread. A failed compaction is not an error of the trim
  // (the records are trimmed; the next trim tries again).
  [[nodiscard]] absl::Status TrimBelow(uint64_t seq);

  // Removes every record from `seq` on, durably: the next append gets `seq`. For a rejoin
  // (docs/operations.md, "Rejoin"): a former primary's records its peer never received, once
  // they are kept elsewhere, so that they are never shipped. kOutOfRange when `seq` is below
  // first_seq() (trimmed). REQUIRES: nothing appends meanwhile. Idempotent.
  [[nodiscard]] absl::Status DropFrom(uint64_t seq);

  // Compacts every trimmed record away now, whatever compact_trimmed_bytes says.
  [[nodiscard]] absl::Status CompactTrimmed();

  // RocksDB's estimate of the bytes the records [from, to) take (on disk and in memory).
  uint64_t ApproximateBytes(uint64_t from, uint64_t to) const;

  // Blocks until a record with sequence >= `seq` exists, the deadline passes, WakeWaiters() or
  // Close() is called. Returns true when such a record exists.
  bool WaitForRecord(uint64_t seq, absl::Time deadline) const;
  // The same with `deadline` on `clock` (the caller's injected clock). A clock other than
  // Clock::Real() (a test's ManualClock) moves without waking anyone, so on it the wait also
  // ends after at most kClockPollInterval of real time, like a spurious wake-up: callers loop,
  // re-check what they wait for and wait again. On the real clock it is WaitForRecord above.
  // With `wakeups_seen` (wakeups() read before the caller last checked its own reason to stop),
  // the wait also ends at once when WakeWaiters() was called since that read: a stop that came
  // between the caller's check and this wait is not waited out.
  bool WaitForRecord(uint64_t seq, absl::Time deadline, const Clock& clock,
                     std::optional<uint64_t> wakeups_seen = std::nullopt) const;
  static constexpr absl::Duration kClockPollInterval = absl::Milliseconds(5);

  // Ends every WaitForRecord in progress now, as a spurious wake-up would (callers loop and
  // re-check what they wait for), and those whose `wakeups_seen` it passed: for readers told
  // to stop, which need not wait out their wait.
  void WakeWaiters() const;
  uint64_t wakeups() const;  // WakeWaiters calls so far
  // Wakes every waiter and refuses further appends. Idempotent; the destructor calls it.
  void Close();

  uint64_t next_seq() const;
  uint64_t first_seq() const;
  LogStats stats() const;
  const LogOptions& options() const { return options_; }

 private:
  struct Writer;
  explicit DurableLog(const LogOptions& options);
  // Opens db_ (and closes it) at options_.path.
  absl::Status OpenDb() ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  void CloseDb() ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  // The records and meta families, for the Append leader building its batch without db_mu_:
  // only the leader reopens the database, and it builds a batch only while the database is
  // open (write_error_ clear), so the handles cannot change or be null meanwhile.
  std::pair<rocksdb::ColumnFamilyHandle*, rocksdb::ColumnFamilyHandle*> LeaderFamilies() const
      ABSL_NO_THREAD_SAFETY_ANALYSIS;
  // kUnavailable while db_ is null.
  absl::Status CheckOpen() const ABSL_SHARED_LOCKS_REQUIRED(db_mu_);
  absl::Status Recover() ABSL_LOCKS_EXCLUDED(db_mu_, mu_);
  // The sequence after the last record on disk (1 when there is none).
  absl::StatusOr<uint64_t> ReadNextSeq() const ABSL_SHARED_LOCKS_REQUIRED(db_mu_);
  // Closes and reopens the database after write_error_ (once the disk has room for what the
  // WAL holds) and re-reads the log's end. Called by an Append() leader without mu_ held (no
  // one else writes records meanwhile).
  absl::Status Reopen(uint64_t expected_next) ABSL_LOCKS_EXCLUDED(db_mu_, mu_);
  absl::Status CompactBelow(uint64_t seq) ABSL_LOCKS_EXCLUDED(compact_mu_, db_mu_, mu_);
  uint64_t ApproximateBytesLocked(uint64_t from, uint64_t to) const
      ABSL_SHARED_LOCKS_REQUIRED(db_mu_);
  // Payload bytes of every record below `seq` since the size index's origin.
  absl::StatusOr<uint64_t> BytesBefore(uint64_t seq) const;

  // Constant after Open.
  const LogOptions options_;
  std::unique_ptr<rocksdb::Env> env_;  // wraps options_.file_system when given

  // The RocksDB database. Every use holds db_mu_ shared; a reopen after a write error holds it
  // exclusively. db_ is null only after a reopen failed (then everything answers kUnavailable
  // until the next attempt succeeds).
  mutable absl::Mutex db_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::unique_ptr<rocksdb::DB> db_ ABSL_GUARDED_BY(db_mu_);
  rocksdb::ColumnFamilyHandle* records_ ABSL_GUARDED_BY(db_mu_) = nullptr;  // in handles_
  rocksdb::ColumnFamilyHandle* meta_ ABSL_GUARDED_BY(db_mu_) = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_ ABSL_GUARDED_BY(db_mu_);

  mutable absl::Mutex mu_;
  mutable absl::CondVar appended_;                    // signalled when next_seq_ grows or on Close
  std::deque<Writer*> writers_ ABSL_GUARDED_BY(mu_);  // front is the current leader
  uint64_t first_seq_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  absl::Status write_error_ ABSL_GUARDED_BY(mu_);  // until a reopen clears it
  absl::Time resume_tried_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::string resume_error_ ABSL_GUARDED_BY(mu_);  // why the last reopen failed (or waits)
  uint64_t resumes_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // WakeWaiters calls: counted under mu_ (with the wake-up), read without it by wakeups(), which
  // the shipper's and apply's loops call on every pass.
  mutable std::atomic<uint64_t> wakeups_{0};
  uint64_t appended_records_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t appended_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t group_commits_ ABSL_GUARDED_BY(mu_) = 0;
  RecordSizeIndex sizes_ ABSL_GUARDED_BY(mu_);

  // Held while a trimmed range is compacted (one compaction at a time); never while mu_ is.
  absl::Mutex compact_mu_ ABSL_ACQUIRED_BEFORE(db_mu_, mu_);
  std::atomic<uint64_t> uncompacted_bytes_{0};  // trimmed since the last compaction (estimate)
  std::atomic<uint64_t> compactions_{0};
};

}  // namespace ferry
