#include "engine/daemon/log_retention.h"

namespace ferry {

absl::Status LogRetention::Trim(DurableLog& log, uint64_t safe_below) {
  const absl::Time now = clock_->Now();
  if (marks_.empty() || marks_.back().first < safe_below) marks_.emplace_back(safe_below, now);
  uint64_t below = 0;
  while (!marks_.empty() && now - marks_.front().second >= keep_for_) {
    below = marks_.front().first;
    marks_.pop_front();
  }
  if (log.stats().approximate_disk_bytes > max_bytes_) below = safe_below;
  below = std::min(below, safe_below);
  if (below <= log.first_seq()) return absl::OkStatus();
  absl::Status s = log.TrimBelow(below);
  if (s.ok()) trimmed_below_ = below;
  return s;
}

}  // namespace ferry
