#include "engine/log/durable_log.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/listener.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
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

// RocksDB's diagnostics go to ferryd's own log, not to LOG files beside the data: those sit on
// the disk that fills, and RocksDB's file logger aborts the process (an assertion in the
// Debian build) on its next line after a write to it failed for lack of space
// (DiskSpaceTest.FullDiskRecoversOnceSpaceIsFreed found it). RocksDB's errors are warnings
// here; its warnings (a background I/O error among them, which the log reports itself through
// Append's status) and chatty info lines (flushes, compactions, statistics) are debug lines.
class RocksLogger final : public rocksdb::Logger {
 public:
  explicit RocksLogger(std::string path)
      : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL), path_(std::move(path)) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    const spdlog::level::level_enum to =
        level >= rocksdb::InfoLogLevel::ERROR_LEVEL ? spdlog::level::warn : spdlog::level::debug;
    if (level == rocksdb::InfoLogLevel::HEADER_LEVEL || !spdlog::should_log(to)) return;
    char line[1024];
    va_list copy;
    va_copy(copy, ap);
    const int n = std::vsnprintf(line, sizeof(line), format, copy);
    va_end(copy);
    if (n < 0) return;
    spdlog::log(to, "rocksdb {}: {}", path_, line);
  }

 private:
  const std::string path_;
};

// Turns RocksDB's own recovery from a full disk off: DurableLog::Append reopens the database
// instead (at most every resume_interval). RocksDB's recovery waits until write_buffer_size
// (8 MiB) is free, polls on a timer of its own, and its recovery flush can wait forever when it
// fails again (RocksDB 7.8, found by DiskFullE2ETest with DB::Resume()).
class ManualRecovery final : public rocksdb::EventListener {
 public:
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason, rocksdb::Status bg_error,
                            bool* auto_recovery) override {
    bg_error.PermitUncheckedError();
    *auto_recovery = false;
  }
};

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
  // One log holds records written once and read a few times in order (sequential keys: an
  // L0 file moves down without a rewrite). Memtables are most of a log's memory: at most
  // 3 x 8 MiB per column family (writes stall beyond that until a flush ends); only the records
  // family fills, the other two hold a few keys. The appends' fdatasync waits behind a flush's
  // writes, so a flush is a stall of the lag: small memtables keep each one short (8 MiB: 12-37
  // ms; 32 MiB held the lag up for 40-60 ms every ~14 s at 2,000 tps, FINDINGS.md, session
  // 17), and the SST is written back in 1 MiB steps, each waiting for the one before, so no
  // more than that is queued ahead of an append's sync (sync_file_range: not a durability
  // point; the SST is still synced before it counts).
  o.write_buffer_size = 8 << 20;
  o.max_write_buffer_number = 3;
  o.max_background_jobs = 2;
  o.bytes_per_sync = 1 << 20;
  o.strict_bytes_per_sync = true;
  o.max_total_wal_size = 256 << 20;
  // Records live briefly (trimmed once acknowledged or applied); compressing them costs CPU on
  // the hot path for little disk. The stream compresses on the wire instead.
  o.compression = rocksdb::kNoCompression;
  // Opening after a crash or a full disk must not need more disk than the log had: the WAL's
  // records are replayed into memtables that are flushed later instead of at once (which
  // needed as much free space as the unflushed records take, more than a full disk left).
  // See also DurableLog::Open: the memtables may exceed write_buffer_size while replaying. The
  // OPTIONS file written at open may fail (fail_if_options_file_error is false); the new
  // MANIFEST and WAL need a few KiB.
  o.avoid_flush_during_recovery = true;
  return o;
}

// The WAL files in `dir` (none for a new log).
std::vector<std::filesystem::path> WalFiles(const std::string& dir) {
  std::vector<std::filesystem::path> wals;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code type_ec;
    if (it->path().extension() == ".log" && it->is_regular_file(type_ec)) {
      wals.push_back(it->path());
    }
  }
  return wals;
}

// Makes what the WAL files hold durable before RocksDB replays them. RocksDB used to flush the
// replayed records to SST files at open (avoid_flush_during_recovery now keeps them in the WAL);
// without this sync, records a crashed process had written but not synced would be served (and
// appended after, and synced) while a power loss could still take them back: a gap
// (PowerLossTest.RandomizedWorkloadsKeepEveryAcknowledgedAppend found it).
absl::Status SyncWalFiles(rocksdb::FileSystem& fs, const std::vector<std::filesystem::path>& wals,
                          uint64_t* bytes) {
  *bytes = 0;
  const rocksdb::IOOptions io;
  for (const auto& wal : wals) {
    uint64_t size = 0;
    FERRY_RETURN_IF_ERROR(FromRocks(fs.GetFileSize(wal.string(), io, &size, nullptr),
                                    absl::StrCat("size of WAL ", wal.string())));
    *bytes += size;
    std::unique_ptr<rocksdb::FSWritableFile> file;
    FERRY_RETURN_IF_ERROR(
        FromRocks(fs.ReopenWritableFile(wal.string(), rocksdb::FileOptions(), &file, nullptr),
                  absl::StrCat("open WAL ", wal.string())));
    rocksdb::IOStatus synced = file->Sync(io, nullptr);
    rocksdb::IOStatus closed = file->Close(io, nullptr);
    FERRY_RETURN_IF_ERROR(FromRocks(synced, absl::StrCat("sync WAL ", wal.string())));
    FERRY_RETURN_IF_ERROR(FromRocks(closed, absl::StrCat("close WAL ", wal.string())));
  }
  return absl::OkStatus();
}

// Adds to `sizes` the records from its next_seq() up to `next`, as `it` (over the records family)
// finds them: each one's payload size (the value's length; checksums are verified when a record
// is read), a missing or truncated one as 0 bytes (reading it reports the data loss).
absl::Status IndexSizes(rocksdb::Iterator& it, uint64_t next, RecordSizeIndex& sizes) {
  for (it.Seek(log_format::EncodeKey(sizes.next_seq())); it.Valid(); it.Next()) {
    FERRY_ASSIGN_OR_RETURN(uint64_t seq, log_format::DecodeKey(it.key().ToStringView()));
    if (seq >= next) break;
    if (seq != sizes.next_seq()) sizes.SkipTo(seq);
    const size_t size = it.value().size();
    sizes.Add(seq, size >= log_format::kHeaderSize ? size - log_format::kHeaderSize : 0);
  }
  FERRY_RETURN_IF_ERROR(FromRocks(it.status(), "scan log"));
  if (sizes.next_seq() != next) sizes.SkipTo(next);
  return absl::OkStatus();
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
  if (options.file_system != nullptr) log->env_ = rocksdb::NewCompositeEnv(options.file_system);
  {
    absl::MutexLock db(&log->db_mu_);
    FERRY_RETURN_IF_ERROR(log->OpenDb());
  }
  FERRY_RETURN_IF_ERROR(log->Recover());
  return log;
}

absl::Status DurableLog::OpenDb() {
  rocksdb::Options db_options = BaseOptions();
  db_options.info_log = std::make_shared<RocksLogger>(options_.path);
  db_options.listeners.push_back(std::make_shared<ManualRecovery>());
  if (env_ != nullptr) db_options.env = env_.get();
  // Created here, not by RocksDB: it reports a directory it has to create as an error line.
  std::error_code mkdir_error;
  std::filesystem::create_directories(options_.path, mkdir_error);
  if (mkdir_error) {
    return absl::UnavailableError(
        absl::StrCat("create log directory ", options_.path, ": ", mkdir_error.message()));
  }
  // While the WAL is replayed, a memtable that reaches write_buffer_size is flushed, which
  // needs as much free disk as it holds: after a full disk (flushes failed, memtables piled up
  // in the WAL) that is more than the failure left. So the memtables may hold the whole WAL
  // during the replay (memory: at most max_total_wal_size, usually far less), and go back to
  // the normal size once open: the next write flushes them, when there is space for it.
  const size_t normal_buffer = db_options.write_buffer_size;
  uint64_t wal_bytes = 0;
  FERRY_RETURN_IF_ERROR(SyncWalFiles(
      options_.file_system != nullptr ? *options_.file_system : *rocksdb::FileSystem::Default(),
      WalFiles(options_.path), &wal_bytes));
  rocksdb::ColumnFamilyOptions family_options(db_options);
  // Twice the WAL on top of the normal size: a memtable flushes somewhat before it reaches
  // write_buffer_size, and a single flush during the replay makes RocksDB flush everything at
  // its end. No more than that: RocksDB preallocates the WAL it makes at the open by the
  // largest size it was given (1.1 times), so a fixed extra would cost every open disk
  // (test: AReopenWithLittleToReplayTakesLittleDisk). The arena blocks keep their normal size
  // (the default is write_buffer_size / 8).
  family_options.write_buffer_size = normal_buffer + 2 * static_cast<size_t>(wal_bytes);
  family_options.arena_block_size = normal_buffer / 8;
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, family_options},
      {log_format::kRecordsFamily, family_options},
      {log_format::kMetaFamily, family_options},
  };
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  FERRY_RETURN_IF_ERROR(FromRocks(
      rocksdb::DB::Open(rocksdb::DBOptions(db_options), options_.path, families, &handles, &db),
      absl::StrCat("open log ", options_.path)));
  db_.reset(db);
  handles_ = std::move(handles);
  records_ = handles_[1];
  meta_ = handles_[2];
  if (family_options.write_buffer_size != normal_buffer) {
    for (rocksdb::ColumnFamilyHandle* h : handles_) {
      absl::Status s =
          FromRocks(db->SetOptions(h, {{"write_buffer_size", std::to_string(normal_buffer)}}),
                    absl::StrCat("open log ", options_.path));
      if (!s.ok()) {
        CloseDb();
        return s;
      }
    }
  }
  return absl::OkStatus();
}

void DurableLog::CloseDb() {
  if (db_ == nullptr) return;
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  handles_.clear();
  records_ = meta_ = nullptr;
  (void)db_->Close();
  db_.reset();
}

std::pair<rocksdb::ColumnFamilyHandle*, rocksdb::ColumnFamilyHandle*> DurableLog::LeaderFamilies()
    const {
  return {records_, meta_};
}

absl::Status DurableLog::CheckOpen() const {
  if (db_ != nullptr) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("log ", options_.path, " is closed for a reopen after a write error"));
}

absl::Status DurableLog::Recover() {
  absl::ReaderMutexLock db(&db_mu_);
  FERRY_RETURN_IF_ERROR(CheckOpen());
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

  // The size index: every retained record's payload size, read once.
  RecordSizeIndex sizes(first);
  FERRY_RETURN_IF_ERROR(IndexSizes(*it, next, sizes));

  absl::MutexLock lock(&mu_);
  first_seq_ = first;
  next_seq_ = next;
  sizes_ = sizes;
  return absl::OkStatus();
}

DurableLog::~DurableLog() {
  Close();
  absl::MutexLock db(&db_mu_);
  CloseDb();
}

void DurableLog::WakeWaiters() const {
  absl::MutexLock lock(&mu_);
  ++wakeups_;
  appended_.SignalAll();
}

uint64_t DurableLog::wakeups() const { return wakeups_.load(); }

void DurableLog::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  appended_.SignalAll();
}

absl::StatusOr<uint64_t> DurableLog::Append(AppendRequest request) {
  for (const auto& r : request.records) {
    if (r.bytes().size() > options_.max_record_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("log record of ", r.bytes().size(),
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

  // This writer leads a group. After a write error, try to bring the log back first (a reopen,
  // at most every resume_interval): the condition (a full disk) may have cleared.
  if (!closed_ && !write_error_.ok() && write_error_.code() != absl::StatusCode::kDataLoss &&
      options_.clock->Now() - resume_tried_ >= options_.resume_interval) {
    resume_tried_ = options_.clock->Now();
    const uint64_t expected = next_seq_;
    mu_.Unlock();
    absl::Status resumed = Reopen(expected);
    mu_.Lock();
    if (resumed.ok()) {
      write_error_ = absl::OkStatus();
      resume_error_.clear();
      ++resumes_;
    } else if (resumed.code() == absl::StatusCode::kDataLoss) {
      write_error_ = resumed;
    } else {
      resume_error_ = std::string(resumed.message());
    }
  }
  if (closed_ || !write_error_.ok()) {
    absl::Status err =
        closed_ ? absl::UnavailableError("log is closed")
                : absl::UnavailableError(absl::StrCat(
                      "log refuses appends after an earlier error: ", write_error_.message(),
                      resume_error_.empty() ? "" : "; reopening: ", resume_error_));
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
      queued_bytes += r.bytes().size();
      reserve += r.bytes().size() + log_format::kHeaderSize + kPerRecordOverhead;
    }
    for (const auto& [name, value] : x->request->cursors) reserve += name.size() + 64;
    for (const auto& [name, value] : x->request->state) reserve += name.size() + value.size() + 64;
  }

  // What is written: the group less the writers whose expected_first_seq does not hold.
  const auto families = LeaderFamilies();
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
      batch.Put(families.second, log_format::kTrimmedBelowKey, log_format::EncodeU64(at));
      seq = at;
      new_first = at;
    }
    x->result = seq;
    for (const auto& r : req.records) {
      // Key, header and payload go into the batch as parts: the payload is copied once.
      const std::string_view payload = r.bytes();
      const std::string key = log_format::EncodeKey(seq);
      const std::array<char, log_format::kHeaderSize> header =
          log_format::EncodeHeader(seq, r.kind, payload);
      const rocksdb::Slice key_slice(key);
      const rocksdb::Slice value_parts[2] = {rocksdb::Slice(header.data(), header.size()),
                                             rocksdb::Slice(payload.data(), payload.size())};
      batch.Put(families.first, rocksdb::SliceParts(&key_slice, 1),
                rocksdb::SliceParts(value_parts, 2));
      group_bytes += payload.size();
      ++group_records;
      ++seq;
    }
    for (const auto& [name, value] : req.cursors) {
      batch.Put(families.second, absl::StrCat(log_format::kCursorPrefix, name),
                log_format::EncodeU64(value));
    }
    for (const auto& [name, value] : req.state) {
      batch.Put(families.second, absl::StrCat(log_format::kStatePrefix, name), value);
    }
  }

  absl::Status status;
  if (batch.Count() > 0) {
    mu_.Unlock();
    {
      absl::ReaderMutexLock db(&db_mu_);
      status = CheckOpen();
      if (status.ok()) {
        rocksdb::WriteOptions wo;
        wo.sync = options_.sync;
        status = FromRocks(db_->Write(wo, &batch), absl::StrCat("append to log ", options_.path));
      }
    }
    mu_.Lock();
  }

  if (status.ok()) {
    // A log started further on: its size index starts there too (trimming and byte figures
    // read it from first_seq_ on).
    if (new_first.has_value()) sizes_.Reset(*new_first);
    for (Writer* x : group) {
      if (!x->result.ok()) continue;
      uint64_t s = *x->result;
      for (const auto& r : x->request->records) sizes_.Add(s++, r.bytes().size());
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

absl::StatusOr<uint64_t> DurableLog::ReadNextSeq() const {
  FERRY_RETURN_IF_ERROR(CheckOpen());
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, records_));
  it->SeekToLast();
  uint64_t next = 1;
  if (it->Valid()) {
    FERRY_ASSIGN_OR_RETURN(uint64_t last, log_format::DecodeKey(it->key().ToStringView()));
    FERRY_RETURN_IF_ERROR(log_format::DecodeRecord(last, it->value().ToStringView()).status());
    next = last + 1;
  }
  FERRY_RETURN_IF_ERROR(FromRocks(it->status(), "scan log"));
  return next;
}

absl::Status DurableLog::Reopen(uint64_t expected_next) {
  // Reopening replays the WAL into memory and the first write flushes it: wait until the disk
  // has room for that (and a margin), so a log on a disk that is still full stays open for reads.
  uint64_t wal_bytes = 0;
  for (const auto& wal : WalFiles(options_.path)) {
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(wal, ec);
    if (!ec) wal_bytes += size;
  }
  const uint64_t needed = wal_bytes + (16 << 20);
  rocksdb::Env* env = env_ != nullptr ? env_.get() : rocksdb::Env::Default();
  uint64_t free_bytes = 0;
  if (env->GetFreeSpace(options_.path, &free_bytes).ok() && free_bytes < needed) {
    return absl::UnavailableError(absl::StrCat("waiting for free disk space: ", free_bytes,
                                               " bytes free, ", needed, " needed to reopen"));
  }
  absl::MutexLock db(&db_mu_);
  CloseDb();
  FERRY_RETURN_IF_ERROR(
      Annotate(OpenDb(), absl::StrCat("reopening log ", options_.path, " after a write error")));
  // The failed write may have reached the WAL in full (a failed sync): then it is back, which
  // is an allowed outcome of a failed append. Fewer records than acknowledged is data loss.
  FERRY_ASSIGN_OR_RETURN(uint64_t next, ReadNextSeq());
  uint64_t first;
  {
    absl::MutexLock lock(&mu_);
    first = first_seq_;
  }
  if (next < expected_next && expected_next > first) {
    return absl::DataLossError(absl::StrCat("log ", options_.path, " reopened after a write error ",
                                            "without records it had acknowledged: it ends at ",
                                            next, ", acknowledged up to ", expected_next - 1));
  }
  absl::MutexLock lock(&mu_);
  if (next > next_seq_) {
    // The records that came back go into the size index too (status and metrics count bytes
    // from it; without them every figure past them was short, and the index behind the log).
    RecordSizeIndex sizes = sizes_;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), records_));
    FERRY_RETURN_IF_ERROR(IndexSizes(*it, next, sizes));
    sizes_ = std::move(sizes);
    next_seq_ = next;
    appended_.SignalAll();
  }
  return absl::OkStatus();
}

absl::Status DurableLog::SetCursor(const std::string& name, uint64_t value) {
  AppendRequest req;
  req.cursors.emplace_back(name, value);
  return Append(std::move(req)).status();
}

absl::StatusOr<std::optional<uint64_t>> DurableLog::GetCursor(const std::string& name) const {
  absl::ReaderMutexLock db(&db_mu_);
  FERRY_RETURN_IF_ERROR(CheckOpen());
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
  absl::ReaderMutexLock db(&db_mu_);
  FERRY_RETURN_IF_ERROR(CheckOpen());
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

  absl::ReaderMutexLock db(&db_mu_);
  FERRY_RETURN_IF_ERROR(CheckOpen());
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
  uint64_t trimmed_bytes;
  {
    absl::ReaderMutexLock db(&db_mu_);
    FERRY_RETURN_IF_ERROR(CheckOpen());
    rocksdb::WriteBatch batch;
    batch.DeleteRange(records_, log_format::EncodeKey(first), log_format::EncodeKey(seq));
    batch.Put(meta_, log_format::kTrimmedBelowKey, log_format::EncodeU64(seq));
    rocksdb::WriteOptions wo;
    wo.sync = options_.sync;
    // What the trim frees, estimated before the records go (afterwards RocksDB still counts
    // them).
    trimmed_bytes = ApproximateBytesLocked(first, seq);
    FERRY_RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch), "trim log"));
  }
  {
    absl::MutexLock lock(&mu_);
    if (seq > first_seq_) sizes_.TrimTo(seq, bytes_before);
    first_seq_ = std::max(first_seq_, seq);
  }
  const uint64_t pending = uncompacted_bytes_.fetch_add(trimmed_bytes) + trimmed_bytes;
  if (pending >= options_.compact_trimmed_bytes) {
    // The trim stands either way; a compaction that fails (a full disk) is tried at the next.
    (void)CompactBelow(seq);
  }
  return absl::OkStatus();
}

absl::Status DurableLog::DropFrom(uint64_t seq) {
  uint64_t first, next;
  {
    absl::MutexLock lock(&mu_);
    first = first_seq_;
    next = next_seq_;
  }
  if (seq >= next) return absl::OkStatus();
  if (seq < first) {
    return absl::OutOfRangeError(absl::StrCat("cannot drop the records from ", seq, " of log ",
                                              options_.path, ": it starts at ", first));
  }
  {
    absl::ReaderMutexLock db(&db_mu_);
    FERRY_RETURN_IF_ERROR(CheckOpen());
    rocksdb::WriteBatch batch;
    batch.DeleteRange(records_, log_format::EncodeKey(seq), log_format::EncodeKey(next));
    // With no record left below `seq`, the trim position keeps the next sequence at `seq`.
    if (seq == first) batch.Put(meta_, log_format::kTrimmedBelowKey, log_format::EncodeU64(seq));
    rocksdb::WriteOptions wo;
    wo.sync = true;
    FERRY_RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch), "drop the log's tail"));
  }
  return Recover();  // the ends and the size index, as an open reads them
}

absl::Status DurableLog::CompactTrimmed() { return CompactBelow(first_seq()); }

// Compacts the records family below `seq` (everything there is trimmed) down to the last
// level, so the range tombstone and the records it covers are dropped, then flushes the meta
// family: the WAL files that only its small memtable kept alive can go too.
absl::Status DurableLog::CompactBelow(uint64_t seq) {
  absl::MutexLock compacting(&compact_mu_);
  const uint64_t pending = uncompacted_bytes_.load();
  const std::string end = log_format::EncodeKey(seq);
  const rocksdb::Slice end_slice(end);
  rocksdb::CompactRangeOptions co;
  co.exclusive_manual_compaction = false;  // background compactions go on meanwhile
  // Files of the last level too (a tombstone there covers nothing below it, but the records it
  // covers in the same file are only dropped by rewriting it); kForceOptimized skips the files
  // this very compaction wrote.
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  absl::ReaderMutexLock db(&db_mu_);
  FERRY_RETURN_IF_ERROR(CheckOpen());
  FERRY_RETURN_IF_ERROR(FromRocks(db_->CompactRange(co, records_, nullptr, &end_slice),
                                  absl::StrCat("compact trimmed log ", options_.path)));
  rocksdb::FlushOptions fo;
  fo.allow_write_stall = true;
  FERRY_RETURN_IF_ERROR(
      FromRocks(db_->Flush(fo, meta_), absl::StrCat("flush log ", options_.path)));
  uncompacted_bytes_.fetch_sub(pending);  // trims meanwhile stay counted
  compactions_.fetch_add(1);
  return absl::OkStatus();
}

uint64_t DurableLog::ApproximateBytes(uint64_t from, uint64_t to) const {
  absl::ReaderMutexLock db(&db_mu_);
  return ApproximateBytesLocked(from, to);
}

uint64_t DurableLog::ApproximateBytesLocked(uint64_t from, uint64_t to) const {
  if (to <= from || db_ == nullptr) return 0;
  const std::string start = log_format::EncodeKey(from), limit = log_format::EncodeKey(to);
  const rocksdb::Range range(start, limit);
  rocksdb::SizeApproximationOptions so;
  so.include_memtables = true;
  so.include_files = true;
  uint64_t size = 0;
  if (!db_->GetApproximateSizes(so, records_, &range, 1, &size).ok()) return 0;
  return size;
}

bool DurableLog::WaitForRecord(uint64_t seq, absl::Time deadline) const {
  return WaitForRecord(seq, deadline, *Clock::Real());
}

bool DurableLog::WaitForRecord(uint64_t seq, absl::Time deadline, const Clock& clock,
                               std::optional<uint64_t> wakeups_seen) const {
  absl::MutexLock lock(&mu_);
  const uint64_t wakeups = wakeups_seen.value_or(wakeups_.load());
  if (&clock == Clock::Real()) {
    while (next_seq_ <= seq && !closed_ && wakeups_ == wakeups) {
      if (appended_.WaitWithDeadline(&mu_, deadline)) break;
    }
  } else if (next_seq_ <= seq && !closed_ && wakeups_ == wakeups) {
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
    s.resumes = resumes_;
    if (!write_error_.ok()) s.write_error = std::string(write_error_.message());
  }
  s.compactions = compactions_.load();
  s.trimmed_uncompacted_bytes = uncompacted_bytes_.load();
  absl::ReaderMutexLock db(&db_mu_);
  if (db_ == nullptr) return s;
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
