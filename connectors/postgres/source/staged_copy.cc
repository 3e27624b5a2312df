#include "connectors/postgres/source/staged_copy.h"

#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/base/durable_file.h"
#include "engine/base/status_macros.h"

namespace ferry::pg {
namespace {

constexpr char kMagic[] = "FERRYRS1";
constexpr size_t kMagicSize = 8;
constexpr uint32_t kMaxFrame = 256u << 20;  // a row is at most 1 GB in Postgres; ours far less

absl::Status IoError(const std::string& what, const std::string& path) {
  return absl::UnavailableError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

void PutFixed(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetFixed(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

// Reads one frame: false at a clean end of file; kDataLoss for anything malformed.
absl::StatusOr<bool> ReadFrame(FILE* f, const std::string& path, std::string* body) {
  unsigned char head[12];
  const size_t n = std::fread(head, 1, sizeof(head), f);
  if (n == 0 && std::feof(f)) return false;
  if (n != sizeof(head)) {
    return absl::DataLossError(absl::StrCat("staged copy ", path, ": truncated frame header"));
  }
  const uint32_t len = static_cast<uint32_t>(GetFixed(head, 4));
  const uint64_t hash = GetFixed(head + 4, 8);
  if (len == 0 || len > kMaxFrame) {
    return absl::DataLossError(absl::StrCat("staged copy ", path, ": frame of ", len, " bytes"));
  }
  body->resize(len);
  if (std::fread(body->data(), 1, len, f) != len) {
    return absl::DataLossError(absl::StrCat("staged copy ", path, ": truncated frame"));
  }
  if (XXH64(body->data(), body->size(), 0) != hash) {
    return absl::DataLossError(absl::StrCat("staged copy ", path, ": frame checksum mismatch"));
  }
  return true;
}

}  // namespace

bool IsValidCopyId(const std::string& id) {
  if (id.size() != 32) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<StagedCopyWriter>> StagedCopyWriter::Create(
    const std::string& path, uint64_t xid, const v1::Relation& relation) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return IoError("cannot create", path);
  std::unique_ptr<StagedCopyWriter> w(new StagedCopyWriter(path, f));
  if (std::fwrite(kMagic, 1, kMagicSize, f) != kMagicSize) return IoError("cannot write", path);
  std::string head;
  PutFixed(&head, xid, 8);
  FERRY_RETURN_IF_ERROR(w->Frame('R', head + relation.SerializeAsString()));
  return w;
}

StagedCopyWriter::~StagedCopyWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

absl::Status StagedCopyWriter::Frame(char kind, const std::string& payload) {
  if (file_ == nullptr) return absl::FailedPreconditionError("staged copy already finished");
  std::string body;
  body.reserve(payload.size() + 1);
  body.push_back(kind);
  body.append(payload);
  if (body.size() > kMaxFrame) {
    return absl::ResourceExhaustedError(
        absl::StrCat("a row of ", body.size(), " bytes is too large for a staged copy"));
  }
  std::string head;
  PutFixed(&head, body.size(), 4);
  PutFixed(&head, XXH64(body.data(), body.size(), 0), 8);
  if (std::fwrite(head.data(), 1, head.size(), file_) != head.size() ||
      std::fwrite(body.data(), 1, body.size(), file_) != body.size()) {
    return IoError("cannot write", path_);
  }
  return absl::OkStatus();
}

absl::Status StagedCopyWriter::Add(const v1::Tuple& row) {
  FERRY_RETURN_IF_ERROR(Frame('T', row.SerializeAsString()));
  ++rows_;
  return absl::OkStatus();
}

absl::Status StagedCopyWriter::Finish() {
  std::string count;
  PutFixed(&count, rows_, 8);
  FERRY_RETURN_IF_ERROR(Frame('E', count));
  FILE* f = file_;
  file_ = nullptr;
  if (std::fflush(f) != 0 || ::fsync(fileno(f)) != 0) {
    std::fclose(f);
    return IoError("cannot sync", path_);
  }
  if (std::fclose(f) != 0) return IoError("cannot close", path_);
  return SyncParentDirectory(path_);
}

absl::StatusOr<std::unique_ptr<StagedCopyReader>> StagedCopyReader::Open(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no staged copy ", path));
    return IoError("cannot open", path);
  }
  std::unique_ptr<StagedCopyReader> r(new StagedCopyReader(f));
  char magic[kMagicSize];
  if (std::fread(magic, 1, kMagicSize, f) != kMagicSize ||
      std::memcmp(magic, kMagic, kMagicSize) != 0) {
    return absl::DataLossError(absl::StrCat("staged copy ", path, ": not a version 1 copy"));
  }
  std::string body;
  FERRY_ASSIGN_OR_RETURN(bool got, ReadFrame(f, path, &body));
  if (!got || body[0] != 'R' || body.size() < 9 ||
      !r->relation_.ParseFromArray(body.data() + 9, body.size() - 9)) {
    return absl::DataLossError(absl::StrCat("staged copy ", path, ": no relation"));
  }
  r->xid_ = GetFixed(reinterpret_cast<const unsigned char*>(body.data() + 1), 8);
  const long first_row = std::ftell(f);
  // Check every frame and the end count before anything is used.
  uint64_t rows = 0;
  bool ended = false;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(got, ReadFrame(f, path, &body));
    if (!got) break;
    if (ended) return absl::DataLossError(absl::StrCat("staged copy ", path, ": bytes after end"));
    if (body[0] == 'T') {
      ++rows;
    } else if (body[0] == 'E' && body.size() == 9) {
      if (GetFixed(reinterpret_cast<const unsigned char*>(body.data() + 1), 8) != rows) {
        return absl::DataLossError(absl::StrCat("staged copy ", path, ": row count mismatch"));
      }
      ended = true;
    } else {
      return absl::DataLossError(absl::StrCat("staged copy ", path, ": unknown frame"));
    }
  }
  if (!ended) return absl::DataLossError(absl::StrCat("staged copy ", path, ": incomplete"));
  r->rows_ = rows;
  if (first_row < 0 || std::fseek(f, first_row, SEEK_SET) != 0) return IoError("cannot seek", path);
  return r;
}

StagedCopyReader::~StagedCopyReader() {
  if (file_ != nullptr) std::fclose(file_);
}

absl::StatusOr<bool> StagedCopyReader::Next(v1::Tuple* row) {
  if (read_ == rows_) return false;
  std::string body;
  FERRY_ASSIGN_OR_RETURN(bool got, ReadFrame(file_, "", &body));
  row->Clear();
  if (!got || body[0] != 'T' || !row->ParseFromArray(body.data() + 1, body.size() - 1)) {
    return absl::DataLossError("staged copy changed while it was read");
  }
  ++read_;
  return true;
}

}  // namespace ferry::pg
