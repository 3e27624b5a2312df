#include "engine/base/log_limiter.h"

#include "absl/strings/str_cat.h"

namespace ferry {

std::optional<uint64_t> LogLimiter::Due(const std::string& key) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  if (key == last_key_ && now - last_time_ < interval_) {
    ++held_;
    return std::nullopt;
  }
  const uint64_t held = held_;
  held_ = 0;
  last_key_ = key;
  last_time_ = now;
  return held;
}

std::string HeldBackNote(uint64_t held) {
  if (held == 0) return "";
  return absl::StrCat(" (", held, " more like it not logged)");
}

}  // namespace ferry
