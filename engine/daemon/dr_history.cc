#include "engine/daemon/dr_history.h"

#include <spdlog/spdlog.h>

#include <string>
#include <utility>

namespace ferry {
namespace {

void Read(const DurableLog& log, const char* name, google::protobuf::Message& into) {
  absl::StatusOr<std::optional<std::string>> value = log.GetState(name);
  if (!value.ok()) {
    spdlog::warn("dr history: cannot read {}: {}", name, value.status().ToString());
    return;
  }
  if (value->has_value() && !into.ParseFromString(**value)) {
    into.Clear();
    spdlog::warn("dr history: {} does not parse; ignored", name);
  }
}

}  // namespace

void DrHistory::Load() {
  v1::DrEvent change;
  v1::VerifyOutcome verify;
  Read(*log_, kDrLastChangeState, change);
  Read(*log_, kDrLastVerifyState, verify);
  absl::MutexLock lock(&mu_);
  last_change_ = std::move(change);
  last_verify_ = std::move(verify);
}

void DrHistory::Persist(const char* name, const google::protobuf::Message& value) {
  AppendRequest request;
  request.state.emplace_back(name, value.SerializeAsString());
  absl::StatusOr<uint64_t> done = log_->Append(std::move(request));
  if (!done.ok()) {
    spdlog::warn("dr history: cannot persist {} (shown until ferryd restarts): {}", name,
                 done.status().ToString());
  }
}

void DrHistory::RecordChange(const v1::DrEvent& event) {
  {
    absl::MutexLock lock(&mu_);
    last_change_ = event;
  }
  Persist(kDrLastChangeState, event);
}

void DrHistory::RecordVerify(const v1::VerifyOutcome& outcome) {
  {
    absl::MutexLock lock(&mu_);
    last_verify_ = outcome;
  }
  Persist(kDrLastVerifyState, outcome);
}

v1::DrEvent DrHistory::last_change() const {
  absl::MutexLock lock(&mu_);
  return last_change_;
}

v1::VerifyOutcome DrHistory::last_verify() const {
  absl::MutexLock lock(&mu_);
  return last_verify_;
}

}  // namespace ferry
