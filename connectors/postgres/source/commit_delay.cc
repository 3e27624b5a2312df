#include "connectors/postgres/source/commit_delay.h"

#include <algorithm>

namespace ferry::pg {

absl::Time CommitDelay::AppendAt(absl::Time now, uint64_t transactions) {
  // A first call, a count below the window's (a new source), or a clock that went back: a new
  // window, the rate as it was.
  if (window_start_ == absl::InfinitePast() || transactions < window_transactions_ ||
      now < window_start_) {
    window_start_ = now;
    window_transactions_ = transactions;
  } else if (const absl::Duration length = now - window_start_;
             length >= options_.rate_window && length > absl::ZeroDuration()) {
    rate_ =
        static_cast<double>(transactions - window_transactions_) / absl::ToDoubleSeconds(length);
    window_start_ = now;
    window_transactions_ = transactions;
  }
  if (options_.delay <= absl::ZeroDuration()) return now;
  if (options_.siblings > 0 &&
      rate_ * absl::ToDoubleSeconds(options_.delay) < static_cast<double>(options_.siblings)) {
    return now;  // too few transactions to share an append: do not hold this one
  }
  // Never more than the delay from now, even when the clock went back since the append.
  const absl::Time due = std::min(last_append_ + options_.delay, now + options_.delay);
  return std::max(due, now);
}

}  // namespace ferry::pg
