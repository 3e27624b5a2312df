#include "engine/region/region_state.h"

#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "engine/base/durable_file.h"
#include "engine/base/status_macros.h"

namespace ferry {
namespace {

constexpr char kFileName[] = "region.state";
constexpr char kMagic[] = "ferry-region-state";
constexpr int kVersion = 2;

std::string Body(const std::string& region, const RegionRecord& r) {
  return absl::StrCat(kMagic, " ", kVersion, "\nregion=", region,
                      "\nrole=", std::string(RoleName(r.role)), "\nepoch=", r.epoch,
                      "\nstate=", std::string(RegionPhaseName(r.phase)),
                      "\npaused=", r.paused ? "1" : "0", "\noperation=", r.operation, "\n");
}

std::string Checksum(const std::string& body) {
  return absl::StrFormat("%016x", XXH3_64bits(body.data(), body.size()));
}

absl::Status ErrnoError(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

std::string_view RegionPhaseName(RegionPhase phase) {
  switch (phase) {
    case RegionPhase::kReplicating:
      return "replicating";
    case RegionPhase::kSwitching:
      return "switching";
    case RegionPhase::kPromoting:
      return "promoting";
    case RegionPhase::kFenced:
      return "fenced";
    case RegionPhase::kRejoining:
      return "rejoining";
  }
  return "unknown";
}

absl::StatusOr<RegionPhase> ParseRegionPhase(std::string_view name) {
  for (RegionPhase p : {RegionPhase::kReplicating, RegionPhase::kSwitching, RegionPhase::kPromoting,
                        RegionPhase::kFenced, RegionPhase::kRejoining}) {
    if (RegionPhaseName(p) == name) return p;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown state '", std::string(name), "'"));
}

bool IsTransitional(RegionPhase phase) {
  return phase == RegionPhase::kSwitching || phase == RegionPhase::kPromoting ||
         phase == RegionPhase::kRejoining;
}

absl::StatusOr<std::unique_ptr<RegionState>> RegionState::Open(const std::string& data_dir,
                                                               const std::string& region,
                                                               Role initial_role) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("create data_dir ", data_dir, ": ", ec.message()));
  }
  const std::string path = absl::StrCat(data_dir, "/", kFileName);
  std::unique_ptr<RegionState> state(new RegionState(path, region));
  absl::MutexLock lock(&state->mu_);

  std::ifstream in(path);
  if (!in) {
    if (std::filesystem::exists(path)) return ErrnoError(absl::StrCat("read ", path));
    FERRY_RETURN_IF_ERROR(state->WriteLocked({.role = initial_role, .epoch = 1}));
    return state;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  const size_t checksum_at = text.rfind("checksum=");
  auto corrupt = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat("region state ", path, " is corrupt: ", why));
  };
  if (checksum_at == std::string::npos) return corrupt("no checksum line");
  const std::string body = text.substr(0, checksum_at);
  std::string stored = text.substr(checksum_at + 9);
  while (!stored.empty() && stored.back() == '\n') stored.pop_back();
  if (stored != Checksum(body)) return corrupt("checksum mismatch");

  std::vector<std::string> lines = absl::StrSplit(body, '\n', absl::SkipEmpty());
  if (lines.empty()) return corrupt("empty");
  std::vector<std::string> header = absl::StrSplit(lines[0], ' ');
  int version = 0;
  if (header.size() != 2 || header[0] != kMagic || !absl::SimpleAtoi(header[1], &version)) {
    return corrupt("bad header");
  }
  if (version > kVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "region state ", path, " has version ", version, "; this ferryd reads up to ", kVersion));
  }
  std::string stored_region;
  std::optional<Role> stored_role;
  uint64_t epoch = 0;
  RegionRecord record;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::pair<std::string, std::string> kv = absl::StrSplit(lines[i], absl::MaxSplits('=', 1));
    if (kv.first == "region") {
      stored_region = kv.second;
    } else if (kv.first == "role") {
      auto r = ParseRole(kv.second);
      if (!r.ok()) return corrupt(std::string(r.status().message()));
      stored_role = *r;
    } else if (kv.first == "epoch") {
      if (!absl::SimpleAtoi(kv.second, &epoch) || epoch == 0) return corrupt("bad epoch");
    } else if (kv.first == "state") {
      auto phase = ParseRegionPhase(kv.second);
      if (!phase.ok()) return corrupt(std::string(phase.status().message()));
      record.phase = *phase;
    } else if (kv.first == "paused") {
      if (kv.second != "0" && kv.second != "1") return corrupt("paused must be 0 or 1");
      record.paused = kv.second == "1";
    } else if (kv.first == "operation") {
      record.operation = kv.second;
    }
  }
  if (!stored_role.has_value() || epoch == 0) return corrupt("missing role or epoch");
  if (record.operation.empty() == IsTransitional(record.phase)) {
    return corrupt("an operation id is set exactly while the state is transitional");
  }
  if (stored_region != region) {
    return absl::FailedPreconditionError(absl::StrCat("data_dir ", data_dir, " belongs to region '",
                                                      stored_region, "', not '", region,
                                                      "'; refusing to start"));
  }
  record.role = *stored_role;
  record.epoch = epoch;
  state->record_ = record;
  return state;
}

RegionRecord RegionState::Get() const {
  absl::MutexLock lock(&mu_);
  return record_;
}

absl::Status RegionState::Write(const RegionRecord& record) {
  absl::MutexLock lock(&mu_);
  if (record.epoch < record_.epoch) {
    return absl::FailedPreconditionError(
        absl::StrCat("epoch may not go back from ", record_.epoch, " to ", record.epoch));
  }
  if (record.operation.empty() == IsTransitional(record.phase)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "state ", std::string(RegionPhaseName(record.phase)),
        IsTransitional(record.phase) ? " needs an operation id" : " takes no operation id"));
  }
  if (record.operation.find('\n') != std::string::npos) {
    return absl::InvalidArgumentError("an operation id is one line");
  }
  return WriteLocked(record);
}

absl::Status RegionState::WriteLocked(const RegionRecord& record) {
  const std::string body = Body(region_, record);
  const std::string text = absl::StrCat(body, "checksum=", Checksum(body), "\n");
  FERRY_RETURN_IF_ERROR(ReplaceFileContents(path_, text));
  // From here the new record is what a restart reads, unless the directory's sync fails; then
  // nobody knows which one survives a crash, and a region must never act on a state it may not
  // be in (two primaries): stop, as Postgres does on a failed fsync, and let the restart read it.
  record_ = record;
  if (absl::Status s = SyncParentDirectory(path_); !s.ok()) {
    spdlog::critical("region state {}: {}; stopping so that a restart reads what is on disk", path_,
                     s.ToString());
    std::abort();
  }
  return absl::OkStatus();
}

}  // namespace ferry
