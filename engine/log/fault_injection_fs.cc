#include "engine/log/fault_injection_fs.h"

#include <algorithm>
#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace ferry {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

// One spelling per path, so that "dir//f" and "dir/f" are the same file.
std::string Normalize(const std::string& path) {
  std::string s = std::filesystem::path(path).lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::string ParentOf(const std::string& normalized) {
  return std::filesystem::path(normalized).parent_path().string();
}

}  // namespace

// FileSystem::Truncate is optional (the POSIX file system lacks it); every writable file has it.
rocksdb::IOStatus FaultInjectionFileSystem::TruncateFile(const std::string& name, uint64_t size) {
  const IOOptions io;
  if (target()->FileExists(name, io, nullptr).IsNotFound()) return IOStatus::OK();  // deleted
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->ReopenWritableFile(name, rocksdb::FileOptions(), &file, nullptr);
  if (!s.ok()) return s;
  s = file->Truncate(size, io, nullptr);
  if (s.ok()) s = file->Fsync(io, nullptr);
  IOStatus closed = file->Close(io, nullptr);
  return s.ok() ? closed : s;
}

// A writable file whose appends and syncs are reported to the file system's model. It never
// buffers: data reaches the wrapped file at once (as it reaches the page cache on a real
// system), and DropUnsyncedData() later cuts what was not synced.
class FaultInjectionFileSystem::TrackedFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  TrackedFile(FaultInjectionFileSystem* fs, std::string fname,
              std::unique_ptr<rocksdb::FSWritableFile> target)
      : FSWritableFileOwnerWrapper(std::move(target)), fs_(fs), fname_(std::move(fname)) {}

  IOStatus Append(const Slice& data, const IOOptions& options, IODebugContext* dbg) override {
    return AppendAt(std::nullopt, data, [&](const Slice& d) {
      return FSWritableFileOwnerWrapper::Append(d, options, dbg);
    });
  }
  IOStatus Append(const Slice& data, const IOOptions& options,
                  const rocksdb::DataVerificationInfo& info, IODebugContext* dbg) override {
    return AppendAt(std::nullopt, data, [&](const Slice& d) {
      // A partial append cannot carry the checksum of the whole buffer.
      if (d.size() != data.size()) return FSWritableFileOwnerWrapper::Append(d, options, dbg);
      return FSWritableFileOwnerWrapper::Append(d, options, info, dbg);
    });
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            IODebugContext* dbg) override {
    return AppendAt(offset, data, [&](const Slice& d) {
      return FSWritableFileOwnerWrapper::PositionedAppend(d, offset, options, dbg);
    });
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            const rocksdb::DataVerificationInfo& info,
                            IODebugContext* dbg) override {
    return AppendAt(offset, data, [&](const Slice& d) {
      if (d.size() != data.size()) {
        return FSWritableFileOwnerWrapper::PositionedAppend(d, offset, options, dbg);
      }
      return FSWritableFileOwnerWrapper::PositionedAppend(d, offset, options, info, dbg);
    });
  }

  IOStatus Truncate(uint64_t size, const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = fs_->BeforeMutation("truncate");
    if (!s.ok()) return s;
    s = FSWritableFileOwnerWrapper::Truncate(size, options, dbg);
    if (s.ok()) fs_->RecordTruncate(fname_, size);
    return s;
  }

  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    return SyncWith([&] { return FSWritableFileOwnerWrapper::Sync(options, dbg); });
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    return SyncWith([&] { return FSWritableFileOwnerWrapper::Fsync(options, dbg); });
  }
  // sync_file_range(2) neither flushes metadata nor the device cache: not durable, not counted.
  IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const IOOptions& options,
                     IODebugContext* dbg) override {
    IOStatus s = fs_->BeforeMutation("range sync");
    if (!s.ok()) return s;
    return FSWritableFileOwnerWrapper::RangeSync(offset, nbytes, options, dbg);
  }

  // Closing releases the descriptor even when frozen (a crashed process's descriptors go away
  // too); it does not make anything durable.
  IOStatus Close(const IOOptions& options, IODebugContext* dbg) override {
    return FSWritableFileOwnerWrapper::Close(options, dbg);
  }

 private:
  template <typename Write>
  IOStatus AppendAt(std::optional<uint64_t> offset, const Slice& data, Write write) {
    size_t allowed = data.size();
    IOStatus fault = fs_->CheckAppend(data.size(), &allowed);
    if (allowed > 0) {
      const uint64_t start = offset.has_value() ? *offset : fs_->TrackedSize(fname_);
      IOStatus s = write(Slice(data.data(), allowed));
      if (!s.ok()) return s;
      fs_->RecordAppend(fname_, start + allowed);
    }
    return fault;
  }

  template <typename SyncCall>
  IOStatus SyncWith(SyncCall sync) {
    IOStatus s = fs_->BeforeSync();
    if (!s.ok()) return s;
    // Only what was appended before the sync started is covered by it.
    const uint64_t size = fs_->TrackedSize(fname_);
    s = sync();
    if (s.ok()) fs_->RecordSync(fname_, size);
    return s;
  }

  FaultInjectionFileSystem* const fs_;
  const std::string fname_;
};

// A directory handle whose fsync makes the names of the files created in it durable.
class FaultInjectionFileSystem::TrackedDirectory : public rocksdb::FSDirectoryWrapper {
 public:
  TrackedDirectory(FaultInjectionFileSystem* fs, std::string name,
                   std::unique_ptr<rocksdb::FSDirectory> target)
      : FSDirectoryWrapper(std::move(target)), fs_(fs), name_(std::move(name)) {}

  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = fs_->BeforeMutation("directory fsync");
    if (!s.ok()) return s;
    s = FSDirectoryWrapper::Fsync(options, dbg);
    if (s.ok()) fs_->RecordDirectorySync(name_);
    return s;
  }
  IOStatus FsyncWithDirOptions(const IOOptions& options, IODebugContext* dbg,
                               const rocksdb::DirFsyncOptions& dir_options) override {
    IOStatus s = fs_->BeforeMutation("directory fsync");
    if (!s.ok()) return s;
    s = FSDirectoryWrapper::FsyncWithDirOptions(options, dbg, dir_options);
    if (s.ok()) fs_->RecordDirectorySync(name_);
    return s;
  }

 private:
  FaultInjectionFileSystem* const fs_;
  const std::string name_;
};

FaultInjectionFileSystem::FaultInjectionFileSystem(std::shared_ptr<rocksdb::FileSystem> base)
    : rocksdb::FileSystemWrapper(base) {}

FaultInjectionFileSystem::~FaultInjectionFileSystem() = default;

void FaultInjectionFileSystem::SetFrozen(bool frozen) {
  absl::MutexLock lock(&mu_);
  frozen_ = frozen;
}

absl::Status FaultInjectionFileSystem::DropUnsyncedData() {
  std::map<std::string, FileState> files;
  {
    absl::MutexLock lock(&mu_);
    files.swap(files_);
  }
  const IOOptions io;
  for (const auto& [name, state] : files) {
    IOStatus s;
    if (!state.entry_synced) {
      s = target()->DeleteFile(name, io, nullptr);
      if (s.IsNotFound()) s = IOStatus::OK();
    } else {
      s = TruncateFile(name, state.synced_size);
    }
    if (!s.ok()) {
      return absl::InternalError(absl::StrCat("drop unsynced data of ", name, ": ", s.ToString()));
    }
  }
  return absl::OkStatus();
}

void FaultInjectionFileSystem::SetWriteError(bool fail) {
  absl::MutexLock lock(&mu_);
  write_error_ = fail;
}

void FaultInjectionFileSystem::SetSyncError(bool fail) {
  absl::MutexLock lock(&mu_);
  sync_error_ = fail;
}

void FaultInjectionFileSystem::SetFreeSpace(std::optional<uint64_t> bytes) {
  absl::MutexLock lock(&mu_);
  free_space_ = bytes;
}

void FaultInjectionFileSystem::PauseSyncs() {
  absl::MutexLock lock(&mu_);
  syncs_paused_ = true;
}

void FaultInjectionFileSystem::ResumeSyncs() {
  absl::MutexLock lock(&mu_);
  syncs_paused_ = false;
  sync_gate_changed_.SignalAll();
}

bool FaultInjectionFileSystem::WaitForPausedSyncs(int count, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  while (paused_syncs_ < count) {
    if (sync_gate_changed_.WaitWithDeadline(&mu_, deadline)) break;
  }
  return paused_syncs_ >= count;
}

uint64_t FaultInjectionFileSystem::completed_syncs() const {
  absl::MutexLock lock(&mu_);
  return completed_syncs_;
}

size_t FaultInjectionFileSystem::tracked_files() const {
  absl::MutexLock lock(&mu_);
  return files_.size();
}

IOStatus FaultInjectionFileSystem::NewWritableFile(const std::string& fname,
                                                   const rocksdb::FileOptions& opts,
                                                   std::unique_ptr<rocksdb::FSWritableFile>* result,
                                                   IODebugContext* dbg) {
  IOStatus s = BeforeMutation("create file");
  if (!s.ok()) return s;
  const std::string name = Normalize(fname);
  bool existed = false;
  {
    // NewWritableFile truncates an existing file: its old data is gone (as far as the model
    // goes, a crash may not bring it back), but its name stays as durable as it was.
    absl::MutexLock lock(&mu_);
    auto it = files_.find(name);
    existed = it != files_.end() ? it->second.entry_synced : false;
  }
  if (!existed) existed = target()->FileExists(name, IOOptions(), nullptr).ok();
  std::unique_ptr<rocksdb::FSWritableFile> file;
  s = target()->NewWritableFile(fname, opts, &file, dbg);
  if (!s.ok()) return s;
  {
    absl::MutexLock lock(&mu_);
    files_[name] = FileState{.size = 0, .synced_size = 0, .entry_synced = existed};
  }
  *result = std::make_unique<TrackedFile>(this, name, std::move(file));
  return IOStatus::OK();
}

IOStatus FaultInjectionFileSystem::ReopenWritableFile(
    const std::string& fname, const rocksdb::FileOptions& opts,
    std::unique_ptr<rocksdb::FSWritableFile>* result, IODebugContext* dbg) {
  IOStatus s = BeforeMutation("reopen file");
  if (!s.ok()) return s;
  const std::string name = Normalize(fname);
  uint64_t size = 0;
  const bool existed = target()->GetFileSize(name, IOOptions(), &size, nullptr).ok();
  std::unique_ptr<rocksdb::FSWritableFile> file;
  s = target()->ReopenWritableFile(fname, opts, &file, dbg);
  if (!s.ok()) return s;
  {
    absl::MutexLock lock(&mu_);
    auto it = files_.find(name);
    if (it == files_.end()) {
      // Data that was there before we saw the file counts as durable.
      files_[name] = FileState{.size = size, .synced_size = size, .entry_synced = existed};
    } else {
      it->second.size = size;
    }
  }
  *result = std::make_unique<TrackedFile>(this, name, std::move(file));
  return IOStatus::OK();
}

IOStatus FaultInjectionFileSystem::ReuseWritableFile(const std::string& /*fname*/,
                                                     const std::string& /*old_fname*/,
                                                     const rocksdb::FileOptions& /*opts*/,
                                                     std::unique_ptr<rocksdb::FSWritableFile>*,
                                                     IODebugContext* /*dbg*/) {
  return IOStatus::NotSupported("FaultInjectionFileSystem does not model recycled files");
}

IOStatus FaultInjectionFileSystem::NewDirectory(const std::string& name, const IOOptions& io_opts,
                                                std::unique_ptr<rocksdb::FSDirectory>* result,
                                                IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSDirectory> dir;
  IOStatus s = target()->NewDirectory(name, io_opts, &dir, dbg);
  if (!s.ok()) return s;
  *result = std::make_unique<TrackedDirectory>(this, Normalize(name), std::move(dir));
  return IOStatus::OK();
}

IOStatus FaultInjectionFileSystem::DeleteFile(const std::string& fname, const IOOptions& options,
                                              IODebugContext* dbg) {
  IOStatus s = BeforeMutation("delete file");
  if (!s.ok()) return s;
  s = target()->DeleteFile(fname, options, dbg);
  if (s.ok()) {
    absl::MutexLock lock(&mu_);
    files_.erase(Normalize(fname));
  }
  return s;
}

IOStatus FaultInjectionFileSystem::RenameFile(const std::string& src, const std::string& dst,
                                              const IOOptions& options, IODebugContext* dbg) {
  IOStatus s = BeforeMutation("rename file");
  if (!s.ok()) return s;
  s = FileSystemWrapper::RenameFile(src, dst, options, dbg);
  if (s.ok()) {
    absl::MutexLock lock(&mu_);
    const std::string from = Normalize(src), to = Normalize(dst);
    auto it = files_.find(from);
    if (it == files_.end()) {
      files_.erase(to);  // an untracked file replaced it
    } else {
      FileState state = it->second;
      state.entry_synced = true;  // renames are modelled as durable at once
      files_.erase(it);
      files_[to] = state;
    }
  }
  return s;
}

IOStatus FaultInjectionFileSystem::CheckAppend(size_t bytes, size_t* allowed) {
  absl::MutexLock lock(&mu_);
  if (frozen_) {
    *allowed = 0;
    return IOStatus::IOError("fault injection: file system is frozen (power lost)");
  }
  if (write_error_) {
    *allowed = 0;
    return IOStatus::IOError("fault injection: write error");
  }
  if (free_space_.has_value() && bytes > *free_space_) {
    *allowed = static_cast<size_t>(*free_space_);
    *free_space_ = 0;
    return IOStatus::NoSpace("fault injection: disk full");
  }
  if (free_space_.has_value()) *free_space_ -= bytes;
  *allowed = bytes;
  return IOStatus::OK();
}

void FaultInjectionFileSystem::RecordAppend(const std::string& fname, uint64_t end_offset) {
  absl::MutexLock lock(&mu_);
  auto it = files_.find(fname);
  if (it != files_.end()) it->second.size = std::max(it->second.size, end_offset);
}

void FaultInjectionFileSystem::RecordTruncate(const std::string& fname, uint64_t size) {
  absl::MutexLock lock(&mu_);
  auto it = files_.find(fname);
  if (it == files_.end()) return;
  it->second.size = size;
  it->second.synced_size = std::min(it->second.synced_size, size);
}

IOStatus FaultInjectionFileSystem::BeforeSync() {
  absl::MutexLock lock(&mu_);
  if (syncs_paused_) {
    ++paused_syncs_;
    sync_gate_changed_.SignalAll();
    while (syncs_paused_) sync_gate_changed_.Wait(&mu_);
    --paused_syncs_;
  }
  if (frozen_) return IOStatus::IOError("fault injection: file system is frozen (power lost)");
  if (sync_error_) return IOStatus::IOError("fault injection: sync error");
  return IOStatus::OK();
}

void FaultInjectionFileSystem::RecordSync(const std::string& fname, uint64_t synced_size) {
  absl::MutexLock lock(&mu_);
  ++completed_syncs_;
  auto it = files_.find(fname);
  if (it != files_.end()) {
    it->second.synced_size = std::max(it->second.synced_size, synced_size);
  }
}

uint64_t FaultInjectionFileSystem::TrackedSize(const std::string& fname) {
  absl::MutexLock lock(&mu_);
  auto it = files_.find(fname);
  return it == files_.end() ? 0 : it->second.size;
}

IOStatus FaultInjectionFileSystem::BeforeMutation(const char* what) const {
  absl::MutexLock lock(&mu_);
  if (frozen_) {
    return IOStatus::IOError(absl::StrCat("fault injection: ", what, " while frozen (power lost)"));
  }
  return IOStatus::OK();
}

void FaultInjectionFileSystem::RecordDirectorySync(const std::string& dir) {
  absl::MutexLock lock(&mu_);
  for (auto& [name, state] : files_) {
    if (ParentOf(name) == dir) state.entry_synced = true;
  }
}

}  // namespace ferry
