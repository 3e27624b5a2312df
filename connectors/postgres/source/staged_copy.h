// StagedCopy: the file in which a table's re-snapshot (resnapshot.h) hands its copy to the
// capture (transaction_assembler.h), in <data_dir>/resnapshot/<id>, id = 32 lowercase hex.
//
// Format (version 1), little-endian:
//   "FERRYRS1"                                  8 bytes, magic and version
//   frames: u32 body length, u64 XXH64(body), body
//     first frame  'R' + u64 the copying transaction's id (pg_current_xact_id())
//                      + serialized v1::Relation (the table as pgoutput would announce it)
//     then         'T' + serialized v1::Tuple, one frame per row (COPY text values)
//     last frame   'E' + u64 number of 'T' frames
// A file without its 'E' frame, with a frame whose hash or kind is wrong, or with bytes after
// the 'E' frame is corrupt (a writer that died part-way never committed its marker). The
// writer syncs the file and its directory before the marker's transaction commits.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(auto w, StagedCopyWriter::Create(path, xid, relation));
//   FERRY_RETURN_IF_ERROR(w->Add(tuple));  // per row
//   FERRY_RETURN_IF_ERROR(w->Finish());
//   ...
//   FERRY_ASSIGN_OR_RETURN(auto r, StagedCopyReader::Open(path));  // checks the whole file
//   while (true) { FERRY_ASSIGN_OR_RETURN(bool more, r->Next(&tuple)); if (!more) break; ... }
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/change.pb.h"

namespace ferry::pg {

// True for a copy id as Resnapshot makes it (32 lowercase hex digits): the only names a staged
// copy may have, so that an id from a message never names another path.
bool IsValidCopyId(const std::string& id);

class StagedCopyWriter {
 public:
  // Creates (truncates) `path` and writes the header and the relation. kUnavailable on I/O
  // errors.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<StagedCopyWriter>> Create(
      const std::string& path, uint64_t xid, const v1::Relation& relation);
  ~StagedCopyWriter();
  StagedCopyWriter(const StagedCopyWriter&) = delete;
  StagedCopyWriter& operator=(const StagedCopyWriter&) = delete;

  [[nodiscard]] absl::Status Add(const v1::Tuple& row);
  // Writes the end frame, syncs the file and its directory, closes it.
  [[nodiscard]] absl::Status Finish();
  uint64_t rows() const { return rows_; }

 private:
  StagedCopyWriter(std::string path, FILE* file) : path_(std::move(path)), file_(file) {}
  absl::Status Frame(char kind, const std::string& payload);

  const std::string path_;
  FILE* file_;
  uint64_t rows_ = 0;
};

class StagedCopyReader {
 public:
  // Reads the whole file once to check it (kDataLoss naming what is wrong; kNotFound when it
  // does not exist), then positions at the first row.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<StagedCopyReader>> Open(
      const std::string& path);
  ~StagedCopyReader();
  StagedCopyReader(const StagedCopyReader&) = delete;
  StagedCopyReader& operator=(const StagedCopyReader&) = delete;

  const v1::Relation& relation() const { return relation_; }
  uint64_t xid() const { return xid_; }
  uint64_t rows() const { return rows_; }
  // The next row into *row; false after the last one. kDataLoss when the file changed since
  // Open.
  [[nodiscard]] absl::StatusOr<bool> Next(v1::Tuple* row);

 private:
  explicit StagedCopyReader(FILE* file) : file_(file) {}

  FILE* file_;
  v1::Relation relation_;
  uint64_t xid_ = 0;
  uint64_t rows_ = 0;
  uint64_t read_ = 0;
};

}  // namespace ferry::pg
