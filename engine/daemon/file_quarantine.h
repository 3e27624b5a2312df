// FileQuarantine: the quarantine of a region without a database (an `objects:` section and no
// `postgres:` one; docs/objects.md, "Rejoin"). A bucket-only pair has no ferry.quarantine, so the
// object entries a rejoin keeps (connectors/s3/kept_object.h) live in the new primary's data
// dir, and `ferryctl quarantine list | show | discard` read and decide them there.
//
// Differences from ferry.quarantine (connectors/postgres/source/pg_quarantine.h):
//   - it is this region's alone: it is not replicated to the peer (the database's table is,
//     with the data). An operator decides on the region that kept the entry.
//   - it keeps object entries only (IsObjectOp): kInvalidArgument for a row change.
//   - reapply is refused (kFailedPrecondition), as for every object entry: the version stays in
//     the old primary's bucket and the operator copies it if wanted, then discards the entry.
//   - decisions are taken on the region that holds it, primary or not.
//
// File format (data_dir/quarantine.pb, written atomically: temp file, fsync, rename, fsync dir):
//   ferry-quarantine 1\n
//   <16 hex digits: XXH3-64 of the payload>\n
//   <payload: ferry.v1.QuarantineFile, binary>
// A missing file is an empty quarantine; a bad header, checksum or payload is kDataLoss (the
// file is kept as it is: nothing is overwritten over a quarantine that cannot be read).
//
// Budgets against a hostile peer (RegionControl.Quarantine is authenticated, but a bug is a
// bug): at most 100,000 entries in all; a key or `after` of at most 64 KiB; a source region of at
// most 256 bytes; a bucket name of at most 63. Decided (discarded) entries stay listed until a
// batch needs their room: then the oldest decided ones are dropped, as many as it needs (logged).
// Only when pending entries alone would pass the limit is a batch refused (kResourceExhausted,
// nothing of it kept): the operator discards some, and a rejoin run again keeps it. A change
// whose decided entry was dropped is kept again if a rejoin sends it again. Ids are never reused.
//
// Thread-compatible (the daemon calls it under quarantine_mu_).
#pragma once

#include <memory>
#include <string>

#include "engine/api/quarantine.h"

namespace ferry {

class FileQuarantine final : public QuarantineStore {
 public:
  // `path`: the file (created at the first Keep). Nothing is read until the first call.
  explicit FileQuarantine(std::string path) : path_(std::move(path)) {}

  // nullopt for each change (no database rows here); kInvalidArgument for a row change.
  [[nodiscard]] absl::StatusOr<std::vector<std::optional<std::string>>> CurrentRows(
      const std::vector<v1::QuarantinedChange>& changes) override;
  [[nodiscard]] absl::StatusOr<Kept> Keep(
      const std::string& source_region, const std::vector<v1::QuarantinedChange>& changes) override;
  [[nodiscard]] absl::StatusOr<v1::QuarantineReply> Decide(
      const v1::QuarantineRequest& request) override;
  // No database keys: nothing is explained (every one false).
  [[nodiscard]] absl::StatusOr<std::vector<bool>> Explains(
      const std::string& source_region, const std::vector<v1::QuarantinedChange>& keys) override;
  [[nodiscard]] absl::StatusOr<uint64_t> Pending() override;

  static constexpr size_t kMaxEntries = 100000;
  static constexpr size_t kMaxTextBytes = 64 << 10;

 private:
  [[nodiscard]] absl::StatusOr<v1::QuarantineFile> Load() const;
  [[nodiscard]] absl::Status Save(const v1::QuarantineFile& file) const;
  // Drops the `n` oldest decided entries of `file` to make room for a batch of `batch` new ones,
  // or says that pending entries fill it (kResourceExhausted; `file` unchanged).
  [[nodiscard]] absl::Status DropDecided(size_t n, size_t batch, v1::QuarantineFile& file) const;

  const std::string path_;
};

}  // namespace ferry
