#include "engine/log/durable_log.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <limits>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "engine/base/status_macros.h"

namespace ferry {
namespace {

// Bytes a WriteBatch holds for a record beside its header and payload: the 8-byte key, a tag,
// the column family id and two length varints.
constexpr size_t kPerRecordOverhead = 8 + 16;

// Converts a RocksDB status at the module's edge; the code tells the caller what to do.
absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = absl::StrCat(std::string(what), ": ", s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  if (s.IsNotSupported()) return absl::FailedPreconditionError(msg);
  // I/O errors, busy, timeouts, a full disk: retry after the condition clears.
  return absl::UnavailableError(msg);
}

rocksdb::Options BaseOptions() {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.create_missing_column_families = true;
  o.paranoid_checks = true;
  // A damaged record in the middle of the WAL must surface as corruption: the default
  // point-in-time recovery would stop replaying there and open a silently shorter log, losing
  // acknowledged records (regression test: FlippedByteInTheWalIsDataLossNotASilentlyShorterLog).
  // A torn tail (the write a crash interrupted, never acknowledged) is still tolerated.
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  // One log holds records written once and read a few times in order: a large memtable and
  // few levels keep write amplification low. Memtables are most of a log's memory: at most
  // 3 x 32 MiB per column family (writes stall beyond that until a flush ends); only the
  // records family fills, the other two hold a few keys. With 4 x 64 MiB a ferryd's peak in
  // the side-by-side catch-ups was 40-80 MB higher at the same rate, close to the 256 MB
  // goal (bench/side_by_side/FINDINGS.md). A measured bound, not an enforced one.
  o.write_buffer_size = 32 << 20;
  o.max_write_buffer_number = 3;
  o.max_background_jobs = 2;
  o.max_total_wal_size = 256 << 20;
  // Records live briefly (trimmed once acknowledged or applied); compressing them costs CPU on
  // the hot path for little disk. The stream compresses on the wire instead.
  o.compression = rocksdb::kNoCompression;
  return o;
}

}  // namespace

struct DurableLog::Writer {
  explicit Writer(AppendRequest* r) : request(r) {}
  AppendRequest* request;
  bool done = false;
  absl::StatusOr<uint64_t> result = absl::UnknownError("not written");
  absl::CondVar cv;
};

DurableLog::DurableLog(const LogOptions& options) : options_(options) {}

absl::StatusOr<std::unique_ptr<DurableLog>> DurableLog::Open(const LogOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("log path is empty");
  std::unique_ptr<DurableLog> log(new DurableLog(options));
  rocksdb::Options db_options = BaseOptions();
  if (options.file_system != nullptr) {
    log->env_ = rocksdb::NewCompositeEnv(options.file_system);
    db_options.env = log->env_.get();
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions(db_options)},
      {log_format::kRecordsFamily, rocksdb::ColumnFamilyOptions(db_options)},
      {log_format::kMetaFamily, rocksdb::ColumnFamilyOptions(db_options)},
  };
  rocksdb::DB* db = nullptr;
  FERRY_RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(rocksdb::DBOptions(db_options), options.path,
                                                    families, &log->handles_, &db),
                                  absl::StrCat("open log ", options.path)));
  log->db_.reset(db);
  log->records_ = log->handles_[1];
  log->meta_ = log->handles_[2];
  FERRY_RETURN_IF_ERROR(log->Recover());
  return log;
}

absl::Status DurableLog::Recover() {
  std::string value;
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  rocksdb::Status s = db_->Get(ro, meta_, log_format::kFormatKey, &value);
  if (s.IsNotFound()) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    FERRY_RETURN_IF_ERROR(FromRocks(db_->Put(wo, meta_, log_format::kFormatKey,
                                             log_format::EncodeU64(log_format::kFormatVersion)),
                                    "write log format version"));
  } else {
    FERRY_RETURN_IF_ERROR(FromRocks(s, "read log format version"));
    FERRY_ASSIGN_OR_RETURN(uint64_t version, log_format::DecodeU64(value));
    if (version > log_format::kFormatVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("log ", options_.path, " has format version ", version,
                       "; this ferryd reads up to ", log_format::kFormatVersion));
    }
  }

  uint64_t trimmed_below = 1;
  s = db_->Get(ro, meta_, log_format::kTrimmedBelowKey, &value);
  if (!s.IsNotFound()) {
    FERRY_RETURN_IF_ERROR(FromRocks(s, "read trim position"));
    FERRY_ASSIGN_OR_RETURN(trimmed_below, log_format::DecodeU64(value));
  }

  // The last record decides the next sequence number; the first one the low end.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, records_));
  uint64_t first = trimmed_below, next = trimmed_below;
  it->SeekToLast();
  if (it->Valid()) {
    FERRY_ASSIGN_OR_RETURN(uint64_t last, log_format::DecodeKey(it->key().ToStringView()));
    next = std::max(next, last + 1);
    // Verify the tail record now, so a torn or corrupt tail shows at open, not at first read.
    FERRY_RETURN_IF_ERROR(log_format::DecodeRecord(last, it->value().ToStringView()).status());
  }
  FERRY_RETURN_IF_ERROR(FromRocks(it->status(), "scan log"));
  it->Seek(log_format::EncodeKey(trimmed_below));
  if (it->Valid()) {
    FERRY_ASSIGN_OR_RETURN(uint64_t lowest, log_format::DecodeKey(it->key().ToStringView()));
    first = std::max(first, std::min(lowest, next));
  }
  FERRY_RETURN_IF_ERROR(FromRocks(it->status(), "scan log"));

  // The size index: every retained record's payload size, read once (the values' length;
  // checksums are verified when a record is read). A missing or truncated record counts 0
  // here; reading it reports the data loss, as before.
  RecordSizeIndex sizes(first);
  for (it->Seek(log_format::EncodeKey(first)); it->Valid(); it->Next()) {
    FERRY_ASSIGN_OR_RETURN(uint64_t seq, log_format::DecodeKey(it->key().ToStringView()));
    if (seq >= next) break;
    if (seq != sizes.next_seq()) sizes.SkipTo(seq);
    const size_t size = it->value().size();
    sizes.Add(seq, size >= log_format::kHeaderSize ? size - log_format::kHeaderSize : 0);
  }
  FERRY_RETURN_IF_ERROR(FromRocks(it->status(), "scan log"));
  if (sizes.next_seq() != next) sizes.SkipTo(next);

  absl::MutexLock lock(&mu_);
  first_seq_ = first;
  next_seq_ = next;
  sizes_ = sizes;
  return absl::OkStatus();
}

DurableLog::~DurableLog() {
  Close();
  if (db_ != nullptr) {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    (void)db_->Close();
  }
}

void DurableLog::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  appended_.SignalAll();
}

absl::StatusOr<uint64_t> DurableLog::Append(AppendRequest request) {
  for (const auto& r : request.records) {
    if (r.payload.size() > options_.max_record_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("log record of ", r.payload.size(),
                                                     " bytes exceeds the limit of ",
                                                     options_.max_record_bytes));
    }
    if (static_cast<uint8_t>(r.kind) == 0 || static_cast<uint8_t>(r.kind) > log_format::kMaxKind) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown log record kind ", static_cast<int>(r.kind)));
    }
  }

  Writer w(&request);
  absl::MutexLock lock(&mu_);
  writers_.push_back(&w);
  while (!w.done && &w != writers_.front()) w.cv.Wait(&mu_);
  if (w.done) return w.result;

  // This writer leads a group: everyone queued behind it, up to the byte budget.
  if (closed_ || !write_error_.ok()) {
    absl::Status err =
        closed_ ? absl::UnavailableError("log is closed")
                : absl::UnavailableError(absl::StrCat(
                      "log refuses appends after an earlier error: ", write_error_.message()));
    // Fail the whole queue: no one can write.
    for (Writer* x : writers_) {
      x->result = err;
      x->done = true;
      if (x != &w) x->cv.Signal();
    }
    writers_.clear();
    return err;
  }

  // The group: everyone queued behind the leader, up to the byte budget. Its size is known
  // before the batch is built, so the batch is allocated once (growing a 16 MiB batch by
  // doubling copied it several times and faulted in fresh pages each time).
  std::vector<Writer*> group;
  size_t queued_bytes = 0, reserve = 0;
  for (Writer* x : writers_) {
    if (!group.empty() && queued_bytes >= options_.max_group_bytes) break;
    group.push_back(x);
    for (const auto& r : x->request->records) {
      queued_bytes += r.payload.size();
      reserve += r.payload.size() + log_format::kHeaderSize + kPerRecordOverhead;
    }
    for (const auto& [name, value] : x->request->cursors) reserve += name.size() + 64;
    for (const auto& [name, value] : x->request->state) reserve += name.size() + value.size() + 64;
  }

  // What is written: the group less the writers whose expected_first_seq does not hold.
  size_t group_bytes = 0, group_records = 0;
  rocksdb::WriteBatch batch(reserve);
  uint64_t seq = next_seq_;
  std::optional<uint64_t> new_first;  // set by a request's start_at
  for (Writer* x : group) {
    AppendRequest& req = *x->request;
    if (req.start_at.has_value()) {
      if (seq != first_seq_ || new_first.has_value() || *req.start_at < seq) {
        x->result = absl::FailedPreconditionError(
            absl::StrCat("cannot start log ", options_.path, " at sequence ", *req.start_at,
                         ": it is at ", seq, " and holds records from ", first_seq_));
        continue;
      }
    }
    const uint64_t at = req.start_at.value_or(seq);
    if (req.expected_first_seq.has_value() && *req.expected_first_seq != at) {
      x->result = absl::FailedPreconditionError(
          absl::StrCat("append expected to start at sequence ", *req.expected_first_seq,
                       " but the log is at ", at));
      continue;
    }
    if (req.start_at.has_value()) {
      batch.Put(meta_, log_format::kTrimmedBelowKey, log_format::EncodeU64(at));
      seq = at;
      new_first = at;
    }
    x->result = seq;
    for (const auto& r : req.records) {
      // Key, header and payload go into the batch as parts: the payload is copied once.
      const std::string key = log_format::EncodeKey(seq);
      const std::array<char, log_format::kHeaderSize> header =
          log_format::EncodeHeader(seq, r.kind, r.payload);
      const rocksdb::Slice key_slice(key);
      const rocksdb::Slice value_parts[2] = {rocksdb::Slice(header.data(), header.size()),
                                             rocksdb::Slice(r.payload)};
      batch.Put(records_, rocksdb::SliceParts(&key_slice, 1), rocksdb::SliceParts(value_parts, 2));
      group_bytes += r.payload.size();
      ++group_records;
      ++seq;
    }
    for (const auto& [name, value] : req.cursors) {
      batch.Put(meta_, absl::StrCat(log_format::kCursorPrefix, name), log_format::EncodeU64(value));
    }
    for (const auto& [name, value] : req.state) {
      batch.Put(meta_, absl::StrCat(log_format::kStatePrefix, name), value);
    }
  }

  absl::Status status;
  if (batch.Count() > 0) {
    mu_.Unlock();
    rocksdb::WriteOptions wo;
    wo.sync = options_.sync;
    status = FromRocks(db_->Write(wo, &batch), absl::StrCat("append to log ", options_.path));
    mu_.Lock();
  }

  if (status.ok()) {
    // A log started further on: its size index starts there too (trimming and byte figures
    // read it from first_seq_ on).
    if (new_first.has_value()) sizes_.Reset(*new_first);
    for (Writer* x : group) {
      if (!x->result.ok()) continue;
      uint64_t s = *x->result;
      for (const auto& r : x->request->records) sizes_.Add(s++, r.payload.size());
    }
    next_seq_ = seq;
    if (new_first.has_value()) first_seq_ = *new_first;
    appended_records_ += group_records;
    appended_bytes_ += group_bytes;
    if (batch.Count() > 0) ++group_commits_;
    if (group_records > 0) appended_.SignalAll();
  } else {
    write_error_ = status;
  }
  for (Writer* x : group) {
    if (!status.ok() && x->result.ok()) x->result = status;
    x->done = true;
    if (x != &w) x->cv.Signal();
  }
  writers_.erase(writers_.begin(), writers_.begin() + group.size());
  if (!writers_.empty()) writers_.front()->cv.Signal();
  return w.result;
}

absl::Status DurableLog::SetCursor(const std::string& name, uint64_t value) {
  AppendRequest req;
  req.cursors.emplace_back(name, value);
  return Append(std::move(req)).status();
}

absl::StatusOr<std::optional<uint64_t>> DurableLog::GetCursor(const std::string& name) const {
  std::string value;
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  rocksdb::Status s = db_->Get(ro, meta_, absl::StrCat(log_format::kCursorPrefix, name), &value);
  if (s.IsNotFound()) return std::optional<uint64_t>();
  FERRY_RETURN_IF_ERROR(FromRocks(s, absl::StrCat("read cursor ", name)));
  FERRY_ASSIGN_OR_RETURN(uint64_t v, log_format::DecodeU64(value));
  return std::optional<uint64_t>(v);
}

absl::StatusOr<std::optional<std::string>> DurableLog::GetState(const std::string& name) const {
  std::string value;
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  rocksdb::Status s = db_->Get(ro, meta_, absl::StrCat(log_format::kStatePrefix, name), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  FERRY_RETURN_IF_ERROR(FromRocks(s, absl::StrCat("read state ", name)));
  return std::optional<std::string>(std::move(value));
}

absl::StatusOr<std::vector<LogRecord>> DurableLog::Read(uint64_t from, size_t max_records,
                                                        size_t max_bytes) const {
  uint64_t first, next;
  {
    absl::MutexLock lock(&mu_);
    first = first_seq_;
    next = next_seq_;
  }
  if (from < first) {
    return absl::OutOfRangeError(
        absl::StrCat("log position ", from, " was trimmed; the log starts at ", first));
  }
  std::vector<LogRecord> out;
  if (from >= next || max_records == 0) return out;

  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  const std::string upper = log_format::EncodeKey(next);
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, records_));
  size_t bytes = 0;
  uint64_t expect = from;
  for (it->Seek(log_format::EncodeKey(from)); it->Valid(); it->Next()) {
    FERRY_ASSIGN_OR_RETURN(uint64_t seq, log_format::DecodeKey(it->key().ToStringView()));
    if (seq != expect) {
      return absl::DataLossError(absl::StrCat("log ", options_.path, " has a gap: expected record ",
                                              expect, ", found ", seq));
    }
    FERRY_ASSIGN_OR_RETURN(auto decoded, log_format::DecodeRecord(seq, it->value().ToStringView()));
    out.push_back(LogRecord{seq, decoded.kind, std::string(decoded.payload)});
    bytes += decoded.payload.size();
    ++expect;
    if (out.size() >= max_records || bytes >= max_bytes) break;
  }
  FERRY_RETURN_IF_ERROR(FromRocks(it->status(), absl::StrCat("read log ", options_.path)));
  // Records below next_seq must all exist; a missing one is data loss, never a silent skip.
  const bool stopped_by_limit = out.size() >= max_records || bytes >= max_bytes;
  if (!stopped_by_limit && expect < next) {
    return absl::DataLossError(absl::StrCat("log ", options_.path, " is missing record ", expect));
  }
  return out;
}

absl::StatusOr<uint64_t> DurableLog::BytesBefore(uint64_t seq) const {
  // A trim between taking the floor and reading from it moves the floor up: take it again.
  for (int attempt = 0;; ++attempt) {
    uint64_t checkpoint, before;
    {
      absl::MutexLock lock(&mu_);
      seq = std::clamp(seq, sizes_.first_seq(), next_seq_);
      std::tie(checkpoint, before) = sizes_.Floor(seq);
    }
    if (checkpoint == seq) return before;
    absl::StatusOr<std::vector<LogRecord>> records =
        Read(checkpoint, seq - checkpoint, std::numeric_limits<size_t>::max());
    if (records.status().code() == absl::StatusCode::kOutOfRange && attempt < 3) continue;
    if (!records.ok()) return records.status();
    for (const LogRecord& r : *records) before += r.payload.size();
    return before;
  }
}

absl::StatusOr<uint64_t> DurableLog::PayloadBytesFrom(uint64_t from) const {
  uint64_t total;
  {
    absl::MutexLock lock(&mu_);
    if (from >= next_seq_) return 0;
    total = sizes_.total();
  }
  FERRY_ASSIGN_OR_RETURN(uint64_t before, BytesBefore(from));
  return total > before ? total - before : 0;
}

absl::Status DurableLog::TrimBelow(uint64_t seq) {
  uint64_t first;
  {
    absl::MutexLock lock(&mu_);
    seq = std::min(seq, next_seq_);
    first = first_seq_;
    if (seq <= first) return absl::OkStatus();
  }
  // Trims run on one thread: nothing else moves first_seq_ meanwhile.
  FERRY_ASSIGN_OR_RETURN(const uint64_t bytes_before, BytesBefore(seq));
  rocksdb::WriteBatch batch;
  batch.DeleteRange(records_, log_format::EncodeKey(first), log_format::EncodeKey(seq));
  batch.Put(meta_, log_format::kTrimmedBelowKey, log_format::EncodeU64(seq));
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  FERRY_RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch), "trim log"));
  absl::MutexLock lock(&mu_);
  if (seq > first_seq_) sizes_.TrimTo(seq, bytes_before);
  first_seq_ = std::max(first_seq_, seq);
  return absl::OkStatus();
}

bool DurableLog::WaitForRecord(uint64_t seq, absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  while (next_seq_ <= seq && !closed_) {
    if (appended_.WaitWithDeadline(&mu_, deadline)) break;
  }
  return next_seq_ > seq;
}

bool DurableLog::WaitForRecord(uint64_t seq, absl::Time deadline, const Clock& clock) const {
  if (&clock == Clock::Real()) return WaitForRecord(seq, deadline);
  absl::MutexLock lock(&mu_);
  if (next_seq_ <= seq && !closed_) {
    const absl::Duration left = deadline - clock.Now();
    if (left > absl::ZeroDuration()) {
      appended_.WaitWithTimeout(&mu_, std::min(left, kClockPollInterval));
    }
  }
  return next_seq_ > seq;
}

uint64_t DurableLog::next_seq() const {
  absl::MutexLock lock(&mu_);
  return next_seq_;
}

uint64_t DurableLog::first_seq() const {
  absl::MutexLock lock(&mu_);
  return first_seq_;
}

LogStats DurableLog::stats() const {
  LogStats s;
  {
    absl::MutexLock lock(&mu_);
    s.first_seq = first_seq_;
    s.next_seq = next_seq_;
    s.appended_records = appended_records_;
    s.appended_bytes = appended_bytes_;
    s.group_commits = group_commits_;
  }
  uint64_t size = 0;
  if (db_->GetIntProperty(records_, rocksdb::DB::Properties::kTotalSstFilesSize, &size)) {
    s.approximate_disk_bytes += size;
  }
  if (db_->GetIntProperty(records_, rocksdb::DB::Properties::kCurSizeAllMemTables, &size)) {
    s.approximate_disk_bytes += size;
  }
  return s;
}

}  // namespace ferry
