#include "engine/daemon/file_quarantine.h"

#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "engine/base/durable_file.h"
#include "engine/base/status_macros.h"

namespace ferry {
namespace {

constexpr char kHeader[] = "ferry-quarantine 1\n";
constexpr uint32_t kFormat = 1;

std::string Checksum(const std::string& payload) {
  return absl::StrFormat("%016x", XXH3_64bits(payload.data(), payload.size()));
}

absl::Status ErrnoError(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// A JSON object as text, as far as a file quarantine checks it: ferryctl prints it as JSON.
bool LooksLikeObject(const std::string& text) {
  return text.size() >= 2 && text.front() == '{' && text.back() == '}';
}

absl::Status CheckChange(const v1::QuarantinedChange& c) {
  if (!IsObjectOp(c.op())) {
    return absl::InvalidArgumentError(
        absl::StrCat("a region without a database keeps object entries only, not \"",
                     c.op().substr(0, 64), "\" changes"));
  }
  if (c.table_name().empty() || c.table_name().size() > 63 || c.table_schema().empty() ||
      c.table_schema().size() > 63) {
    return absl::InvalidArgumentError("a quarantined object names no bucket");
  }
  for (const std::string* t : {&c.key(), &c.after(), &c.old_primary_row()}) {
    if (t->size() > FileQuarantine::kMaxTextBytes) {
      return absl::InvalidArgumentError(absl::StrCat("a quarantined object's JSON exceeds ",
                                                     FileQuarantine::kMaxTextBytes, " bytes"));
    }
    if (!t->empty() && !LooksLikeObject(*t)) {
      return absl::InvalidArgumentError(
          "a quarantined object's key or version is not a JSON object");
    }
  }
  if (c.key().empty()) return absl::InvalidArgumentError("a quarantined object has no key");
  return absl::OkStatus();
}

std::string Now() {
  return absl::FormatTime("%Y-%m-%d %H:%M:%E6S+00", absl::Now(), absl::UTCTimeZone());
}

}  // namespace

absl::StatusOr<v1::QuarantineFile> FileQuarantine::Load() const {
  v1::QuarantineFile file;
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    if (!std::filesystem::exists(path_)) {
      file.set_format(kFormat);
      return file;
    }
    return ErrnoError(absl::StrCat("open ", path_));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  const std::string header = kHeader;
  auto corrupt = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat("the quarantine file ", path_, " ", why,
                                            ": kept as it is; move it aside to start anew"));
  };
  if (text.compare(0, header.size(), header) != 0) {
    return corrupt("does not start with \"ferry-quarantine 1\"");
  }
  if (text.size() < header.size() + 17 || text[header.size() + 16] != '\n') {
    return corrupt("has no checksum line");
  }
  const std::string sum = text.substr(header.size(), 16);
  const std::string payload = text.substr(header.size() + 17);
  if (Checksum(payload) != sum) return corrupt("fails its checksum");
  if (!file.ParseFromString(payload)) return corrupt("does not parse");
  if (file.format() > kFormat) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the quarantine file ", path_, " is of format ", file.format(), " (this ferryd reads 1)"));
  }
  return file;
}

absl::Status FileQuarantine::Save(const v1::QuarantineFile& file) const {
  std::string payload;
  if (!file.SerializeToString(&payload)) return absl::InternalError("serialising the quarantine");
  const std::string text = absl::StrCat(kHeader, Checksum(payload), "\n", payload);
  FERRY_RETURN_IF_ERROR(ReplaceFileContents(path_, text));
  // The caller reports the write failed: the change is kept again (idempotent) when retried.
  return SyncParentDirectory(path_);
}

absl::StatusOr<std::vector<std::optional<std::string>>> FileQuarantine::CurrentRows(
    const std::vector<v1::QuarantinedChange>& changes) {
  for (const v1::QuarantinedChange& c : changes) FERRY_RETURN_IF_ERROR(CheckChange(c));
  return std::vector<std::optional<std::string>>(changes.size());
}

absl::StatusOr<QuarantineStore::Kept> FileQuarantine::Keep(
    const std::string& source_region, const std::vector<v1::QuarantinedChange>& changes) {
  if (source_region.empty() || source_region.size() > 256) {
    return absl::InvalidArgumentError("a quarantined change needs its source region");
  }
  for (const v1::QuarantinedChange& c : changes) FERRY_RETURN_IF_ERROR(CheckChange(c));
  FERRY_ASSIGN_OR_RETURN(v1::QuarantineFile file, Load());
  Kept kept;
  // The highest id is taken before any entry is dropped, and the entries kept after a drop get
  // higher ones, so an id is never given twice.
  int64_t next_id = 0;
  // (source region, epoch, log seq, index): kept once.
  absl::flat_hash_set<std::tuple<std::string, uint64_t, uint64_t, uint32_t>> known;
  for (const v1::QuarantineFileEntry& e : file.entries()) {
    next_id = std::max(next_id, e.entry().id());
    known.insert({e.entry().source_region(), e.entry().epoch(), e.log_seq(), e.change_index()});
  }
  std::vector<const v1::QuarantinedChange*> fresh;
  for (const v1::QuarantinedChange& c : changes) {
    if (known.insert({source_region, c.epoch(), c.log_seq(), c.index()}).second) {
      fresh.push_back(&c);
    } else {
      ++kept.present;
    }
  }
  const size_t held = static_cast<size_t>(file.entries_size());
  if (held + fresh.size() > kMaxEntries) {
    FERRY_RETURN_IF_ERROR(DropDecided(held + fresh.size() - kMaxEntries, fresh.size(), file));
  }
  for (const v1::QuarantinedChange* change : fresh) {
    const v1::QuarantinedChange& c = *change;
    v1::QuarantineFileEntry* e = file.add_entries();
    e->set_log_seq(c.log_seq());
    e->set_change_index(c.index());
    v1::QuarantineEntry* q = e->mutable_entry();
    q->set_id(++next_id);
    q->set_source_region(source_region);
    q->set_epoch(c.epoch());
    q->set_xact("object");
    q->set_commit_position(absl::StrCat("seq ", c.log_seq()));
    if (c.commit_time_us() != 0) {
      q->set_committed_at(absl::FormatTime(
          "%Y-%m-%d %H:%M:%E6S+00", absl::FromUnixMicros(c.commit_time_us()), absl::UTCTimeZone()));
    }
    q->set_table_schema(c.table_schema());
    q->set_table_name(c.table_name());
    q->set_op(c.op());
    q->set_key(c.key());
    q->set_after(c.after());
    q->set_old_primary_row(c.old_primary_row());
    q->set_status("pending");
    ++kept.kept;
  }
  if (kept.kept > 0) FERRY_RETURN_IF_ERROR(Save(file));
  return kept;
}

absl::Status FileQuarantine::DropDecided(size_t n, size_t batch, v1::QuarantineFile& file) const {
  size_t decided = 0;
  for (const v1::QuarantineFileEntry& e : file.entries()) {
    if (e.entry().status() != "pending") ++decided;
  }
  if (decided < n) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the quarantine file holds ", file.entries_size() - decided, " pending entries and ",
        decided, " decided ones, and this batch brings ", batch, " more: at most ", kMaxEntries,
        " are kept. Discard pending entries (ferryctl quarantine discard); nothing of this "
        "batch was kept"));
  }
  google::protobuf::RepeatedPtrField<v1::QuarantineFileEntry> entries;
  entries.Reserve(file.entries_size() - static_cast<int>(n));
  size_t drop = n;
  for (v1::QuarantineFileEntry& e : *file.mutable_entries()) {
    if (drop > 0 && e.entry().status() != "pending") {
      --drop;  // the oldest decided ones first: entries are in the order they were kept
      continue;
    }
    *entries.Add() = std::move(e);
  }
  file.mutable_entries()->Swap(&entries);
  spdlog::info("quarantine: dropped the {} oldest decided entries of {} to make room", n, path_);
  return absl::OkStatus();
}

absl::StatusOr<v1::QuarantineReply> FileQuarantine::Decide(const v1::QuarantineRequest& request) {
  const std::string& verb = request.verb();
  FERRY_ASSIGN_OR_RETURN(const uint32_t limit, CheckQuarantineRequest(request));
  FERRY_ASSIGN_OR_RETURN(v1::QuarantineFile file, Load());
  v1::QuarantineReply reply;
  uint64_t pending = 0;
  for (const v1::QuarantineFileEntry& e : file.entries()) {
    if (e.entry().status() == "pending") ++pending;
  }
  reply.set_pending(pending);
  if (verb == "list") {
    const std::string& status = request.status();
    uint64_t total = 0;
    for (const v1::QuarantineFileEntry& e : file.entries()) {
      if (!status.empty() && e.entry().status() != status) continue;
      if (++total <= limit) *reply.add_entries() = e.entry();
    }
    reply.set_total(total);
    return reply;
  }
  v1::QuarantineFileEntry* found = nullptr;
  for (v1::QuarantineFileEntry& e : *file.mutable_entries()) {
    if (e.entry().id() == request.id()) found = &e;
  }
  if (found == nullptr)
    return absl::NotFoundError(absl::StrCat("quarantine: no entry ", request.id()));
  v1::QuarantineEntry& entry = *found->mutable_entry();
  if (verb == "show") {
    *reply.add_entries() = entry;
    return reply;
  }
  if (entry.status() != "pending") {
    return absl::FailedPreconditionError(absl::StrCat("quarantine: entry ", entry.id(), " was ",
                                                      entry.status(), " at ", entry.decided_at(),
                                                      ": its transaction is decided"));
  }
  if (verb == "reapply") {
    return absl::FailedPreconditionError(absl::StrCat(
        "quarantine: entry ", entry.id(), " (", entry.op(), " of bucket ", entry.table_name(),
        " key ", entry.key(),
        "): an object version is not reapplied by Ferry: it stays in the old primary's bucket "
        "(the entry names its version); copy it to the primary's bucket if wanted, then discard "
        "the entry"));
  }
  entry.set_status("discarded");
  entry.set_decided_at(Now());
  if (!request.note().empty()) {
    entry.set_note(entry.note().empty() ? request.note()
                                        : absl::StrCat(entry.note(), " | ", request.note()));
  }
  *reply.add_entries() = entry;
  FERRY_RETURN_IF_ERROR(Save(file));
  reply.set_decided(1);
  reply.set_pending(pending - 1);
  reply.set_outcome(absl::StrCat("discarded 1 object entry of ", entry.source_region()));
  return reply;
}

absl::StatusOr<std::vector<bool>> FileQuarantine::Explains(
    const std::string&, const std::vector<v1::QuarantinedChange>& keys) {
  return std::vector<bool>(keys.size(), false);
}

absl::StatusOr<uint64_t> FileQuarantine::Pending() {
  FERRY_ASSIGN_OR_RETURN(v1::QuarantineFile file, Load());
  uint64_t pending = 0;
  for (const v1::QuarantineFileEntry& e : file.entries()) {
    if (e.entry().status() == "pending") ++pending;
  }
  return pending;
}

}  // namespace ferry
