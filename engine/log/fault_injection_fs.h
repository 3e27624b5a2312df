// FaultInjectionFileSystem: a rocksdb::FileSystem wrapper for tests of the durable log. It
// simulates power loss (drops what was never synced), injects I/O errors and a full disk, and
// can hold syncs at a gate so that a test can arrange writers around a sync deterministically.
//
// What it models (everything else is forwarded to the wrapped file system unchanged):
//   - File data. For every file written through NewWritableFile / ReopenWritableFile it tracks
//     the logical size (bytes appended) and the size at the last completed Sync() or Fsync().
//     RangeSync() (sync_file_range) and Close() do not make data durable: neither flushes the
//     device cache nor the metadata, so neither counts as a sync.
//   - Directory entries. A file created through this wrapper has a durable name only once a
//     directory handle of its parent directory (NewDirectory) was fsynced after its creation.
//     RocksDB does exactly that before it relies on a new WAL, SST or MANIFEST.
//   - Power loss. After the database is closed, DropUnsyncedData() truncates each tracked file to
//     its last synced size and deletes the files whose directory entry was never synced.
//     SetFrozen(true) before closing stops the machine: from then on writes, syncs, creates,
//     renames and deletes fail and change nothing, so the database's own shutdown cannot make
//     more data durable than a crash would have.
// Simplifications (documented so tests do not rely on more): renames and deletions are durable
// the moment they return (real file systems need a directory fsync); a renamed file carries its
// tracked state to the new name and its entry counts as synced. Files that existed before the
// wrapper saw them are untracked and never touched by DropUnsyncedData().
//
// Faults:
//   - SetWriteError(true): every Append fails with IOStatus::IOError and writes nothing.
//   - SetSyncError(true): every Sync/Fsync of a file fails with IOStatus::IOError.
//   - SetFreeSpace(n): the disk holds n more bytes; an Append that does not fit writes the part
//     that fits (as write(2) does) and fails with IOStatus::NoSpace.
//   - PauseSyncs(): Sync/Fsync calls wait at a gate until ResumeSyncs(); WaitForPausedSyncs()
//     lets the test wait, without sleeping, until a given number of them are waiting.
//
// Thread safety: all methods are thread-safe. The file system must outlive every file it opened
// (keep the shared_ptr in LogOptions::file_system, which the DurableLog holds).
//
// Example:
//   auto fs = std::make_shared<FaultInjectionFileSystem>(rocksdb::FileSystem::Default());
//   auto log = *DurableLog::Open({.path = dir, .file_system = fs});
//   ... appends ...
//   fs->SetFrozen(true);
//   log.reset();                        // "power is cut": the shutdown writes nothing
//   ASSERT_TRUE(fs->DropUnsyncedData().ok());
//   fs->SetFrozen(false);
//   log = *DurableLog::Open({.path = dir, .file_system = fs});   // what a reboot finds
#pragma once

#include <rocksdb/file_system.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ferry {

class FaultInjectionFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultInjectionFileSystem(std::shared_ptr<rocksdb::FileSystem> base);
  ~FaultInjectionFileSystem() override;

  static const char* kClassName() { return "FerryFaultInjectionFileSystem"; }
  const char* Name() const override { return kClassName(); }

  // --- Power loss --------------------------------------------------------------------------

  // While frozen every mutating call (append, sync, create, rename, delete, directory fsync)
  // fails with IOStatus::IOError and changes nothing.
  void SetFrozen(bool frozen);
  // Truncates every tracked file to its last synced size and deletes files whose directory
  // entry was never synced; forgets all tracked state afterwards (what survives is now durable).
  // REQUIRES: no database has files of this file system open (close it first).
  [[nodiscard]] absl::Status DropUnsyncedData();

  // --- Faults ------------------------------------------------------------------------------

  void SetWriteError(bool fail);
  void SetSyncError(bool fail);
  // nullopt: unlimited (the default).
  void SetFreeSpace(std::optional<uint64_t> bytes);

  // Sync/Fsync calls of writable files wait at a gate from PauseSyncs() until ResumeSyncs().
  void PauseSyncs();
  void ResumeSyncs();
  // Blocks until at least `count` syncs are waiting at the gate or the deadline passes; returns
  // whether they are.
  bool WaitForPausedSyncs(int count, absl::Time deadline);

  // --- Counters ----------------------------------------------------------------------------

  // Completed (successful) Sync/Fsync calls of writable files since construction.
  uint64_t completed_syncs() const;
  // Number of files currently tracked (for tests of the wrapper itself).
  size_t tracked_files() const;

  // --- rocksdb::FileSystem -----------------------------------------------------------------

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  // Not supported: recycled WAL files (recycle_log_file_num) would defeat the size model.
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& opts,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& io_opts,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& dst,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;

 private:
  class TrackedFile;
  class TrackedDirectory;
  friend class TrackedFile;
  friend class TrackedDirectory;

  struct FileState {
    uint64_t size = 0;          // bytes appended (the logical end of the file)
    uint64_t synced_size = 0;   // size at the last completed Sync/Fsync
    bool entry_synced = false;  // the parent directory was fsynced after creation
  };

  // Hooks of TrackedFile / TrackedDirectory.
  rocksdb::IOStatus CheckAppend(size_t bytes, size_t* allowed);
  void RecordAppend(const std::string& fname, uint64_t end_offset);
  void RecordTruncate(const std::string& fname, uint64_t size);
  rocksdb::IOStatus BeforeSync();
  void RecordSync(const std::string& fname, uint64_t synced_size);
  uint64_t TrackedSize(const std::string& fname);
  rocksdb::IOStatus BeforeMutation(const char* what) const;
  rocksdb::IOStatus TruncateFile(const std::string& name, uint64_t size);
  void RecordDirectorySync(const std::string& dir);

  mutable absl::Mutex mu_;
  absl::CondVar sync_gate_changed_;
  std::map<std::string, FileState> files_ ABSL_GUARDED_BY(mu_);  // key: normalized path
  bool frozen_ ABSL_GUARDED_BY(mu_) = false;
  bool write_error_ ABSL_GUARDED_BY(mu_) = false;
  bool sync_error_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<uint64_t> free_space_ ABSL_GUARDED_BY(mu_);
  bool syncs_paused_ ABSL_GUARDED_BY(mu_) = false;
  int paused_syncs_ ABSL_GUARDED_BY(mu_) = 0;  // syncs waiting at the gate
  uint64_t completed_syncs_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ferry
