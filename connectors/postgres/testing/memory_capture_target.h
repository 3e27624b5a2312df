// Test double: a CaptureTarget that keeps everything in memory. Thread-safe. Appends are
// "durable" at once; a test may make the next Append fail. Test-only (ferry::postgres_testing).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "engine/api/source.h"
#include "engine/base/status_macros.h"

namespace ferry::pg::testing {

class MemoryCaptureTarget final : public CaptureTarget {
 public:
  struct AppendCall {
    std::vector<v1::Transaction> fragments;
    uint64_t captured_position = 0;
  };

  absl::Status Append(std::vector<v1::Transaction> fragments, uint64_t captured_position) override {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](bool* held) { return !*held; }, &hold_appends_));
    if (fail_next_append_) {
      fail_next_append_ = false;
      return absl::UnavailableError("injected append failure");
    }
    for (const auto& f : fragments) fragments_.push_back(f);
    appends_.push_back({std::move(fragments), captured_position});
    if (captured_position > captured_) captured_ = captured_position;
    return absl::OkStatus();
  }
  // Records which SharedRelation each fragment referred to, then appends them copied in.
  absl::Status AppendShared(std::vector<SharedRelationsFragment> fragments,
                            uint64_t captured_position) override {
    std::vector<std::vector<const SharedRelation*>> shared;
    std::vector<v1::Transaction> copied;
    for (SharedRelationsFragment& f : fragments) {
      shared.emplace_back();
      for (const SharedRelationPtr& r : f.relations) shared.back().push_back(r.get());
      copied.push_back(std::move(f).Materialize());
    }
    FERRY_RETURN_IF_ERROR(Append(std::move(copied), captured_position));
    absl::MutexLock lock(&mu_);
    for (auto& s : shared) shared_relations_.push_back(std::move(s));
    return absl::OkStatus();
  }
  absl::Status AdvanceTo(uint64_t position) override {
    absl::MutexLock lock(&mu_);
    advances_.push_back(position);
    if (position > captured_) captured_ = position;
    return absl::OkStatus();
  }
  uint64_t CapturedPosition() const override {
    absl::MutexLock lock(&mu_);
    return captured_;
  }
  absl::Status PutSourceState(const std::string& key, const std::string& value) override {
    absl::MutexLock lock(&mu_);
    if (key == held_key_) {
      held_key_reached_ = true;
      mu_.Await(absl::Condition(
          +[](std::string* held) { return held->empty(); }, &held_key_));
    }
    state_[key] = value;
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> GetSourceState(const std::string& key) const override {
    absl::MutexLock lock(&mu_);
    auto it = state_.find(key);
    return it == state_.end() ? std::string() : it->second;
  }

  // While held, Append blocks (capture stalls, as behind a full disk); AdvanceTo goes on.
  void HoldAppends(bool hold) {
    absl::MutexLock lock(&mu_);
    hold_appends_ = hold;
  }
  // A PutSourceState of `key` blocks (before storing) until ReleaseStateKey(): a test acts at
  // that step of the source. WaitForStateKey() returns once a put of it is waiting.
  void HoldStateKey(std::string key) {
    absl::MutexLock lock(&mu_);
    held_key_ = std::move(key);
    held_key_reached_ = false;
  }
  bool WaitForStateKey(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&held_key_reached_), timeout);
  }
  void ReleaseStateKey() {
    absl::MutexLock lock(&mu_);
    held_key_.clear();
  }
  void FailNextAppend() {
    absl::MutexLock lock(&mu_);
    fail_next_append_ = true;
  }
  void SetCaptured(uint64_t p) {
    absl::MutexLock lock(&mu_);
    captured_ = p;
  }
  std::vector<v1::Transaction> fragments() const {
    absl::MutexLock lock(&mu_);
    return fragments_;
  }
  size_t fragment_count() const {
    absl::MutexLock lock(&mu_);
    return fragments_.size();
  }
  // Per fragment appended through AppendShared, the descriptions it referred to.
  std::vector<std::vector<const SharedRelation*>> shared_relations() const {
    absl::MutexLock lock(&mu_);
    return shared_relations_;
  }
  std::vector<AppendCall> appends() const {
    absl::MutexLock lock(&mu_);
    return appends_;
  }
  std::vector<uint64_t> advances() const {
    absl::MutexLock lock(&mu_);
    return advances_;
  }
  std::map<std::string, std::string> state() const {
    absl::MutexLock lock(&mu_);
    return state_;
  }
  void ClearFragments() {
    absl::MutexLock lock(&mu_);
    fragments_.clear();
    shared_relations_.clear();
    appends_.clear();
    advances_.clear();
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<v1::Transaction> fragments_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<const SharedRelation*>> shared_relations_ ABSL_GUARDED_BY(mu_);
  std::vector<AppendCall> appends_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> advances_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> state_ ABSL_GUARDED_BY(mu_);
  uint64_t captured_ ABSL_GUARDED_BY(mu_) = 0;
  bool fail_next_append_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_appends_ ABSL_GUARDED_BY(mu_) = false;
  std::string held_key_ ABSL_GUARDED_BY(mu_);
  bool held_key_reached_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::pg::testing
