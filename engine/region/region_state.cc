#include "engine/region/region_state.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "engine/base/status_macros.h"

namespace ferry {
namespace {

constexpr char kFileName[] = "region.state";
constexpr char kMagic[] = "ferry-region-state";
constexpr int kVersion = 1;

std::string Body(const std::string& region, Role role, uint64_t epoch) {
  return absl::StrCat(kMagic, " ", kVersion, "\nregion=", region,
                      "\nrole=", std::string(RoleName(role)), "\nepoch=", epoch, "\n");
}

std::string Checksum(const std::string& body) {
  return absl::StrFormat("%016x", XXH3_64bits(body.data(), body.size()));
}

absl::Status ErrnoError(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::Status SyncPath(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) return ErrnoError(absl::StrCat("open ", path));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoError(absl::StrCat("fsync ", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Role> ParseRole(std::string_view name) {
  if (name == "primary") return Role::kPrimary;
  if (name == "standby") return Role::kStandby;
  return absl::InvalidArgumentError(
      absl::StrCat("role must be primary or standby, got '", std::string(name), "'"));
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
    FERRY_RETURN_IF_ERROR(state->WriteLocked(initial_role, 1));
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
    }
  }
  if (!stored_role.has_value() || epoch == 0) return corrupt("missing role or epoch");
  if (stored_region != region) {
    return absl::FailedPreconditionError(absl::StrCat("data_dir ", data_dir, " belongs to region '",
                                                      stored_region, "', not '", region,
                                                      "'; refusing to start"));
  }
  state->role_ = *stored_role;
  state->epoch_ = epoch;
  return state;
}

Role RegionState::role() const {
  absl::MutexLock lock(&mu_);
  return role_;
}

uint64_t RegionState::epoch() const {
  absl::MutexLock lock(&mu_);
  return epoch_;
}

absl::Status RegionState::Set(Role role, uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  if (epoch < epoch_) {
    return absl::FailedPreconditionError(
        absl::StrCat("epoch may not go back from ", epoch_, " to ", epoch));
  }
  return WriteLocked(role, epoch);
}

absl::Status RegionState::AdoptEpoch(uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  if (epoch <= epoch_) return absl::OkStatus();
  return WriteLocked(role_, epoch);
}

absl::Status RegionState::WriteLocked(Role role, uint64_t epoch) {
  const std::string body = Body(region_, role, epoch);
  const std::string text = absl::StrCat(body, "checksum=", Checksum(body), "\n");
  const std::string tmp = path_ + ".tmp";
  {
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return ErrnoError(absl::StrCat("create ", tmp));
    const ssize_t n = ::write(fd, text.data(), text.size());
    const int sync_rc = ::fsync(fd);
    ::close(fd);
    if (n != static_cast<ssize_t>(text.size()) || sync_rc != 0) {
      return ErrnoError(absl::StrCat("write ", tmp));
    }
  }
  if (::rename(tmp.c_str(), path_.c_str()) != 0) return ErrnoError(absl::StrCat("rename ", tmp));
  FERRY_RETURN_IF_ERROR(
      SyncPath(std::filesystem::path(path_).parent_path().string(), O_RDONLY | O_DIRECTORY));
  role_ = role;
  epoch_ = epoch;
  return absl::OkStatus();
}

}  // namespace ferry
