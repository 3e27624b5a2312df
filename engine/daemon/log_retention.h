// LogRetention: when records of one durable log may be trimmed.
//
// A record may go once it is safe (acknowledged by the peer, for the outbound log; applied, for
// the inbound one) and has been safe for `keep_for`, or at once when the log is larger than
// `max_bytes`. Nothing that is not yet safe is ever trimmed. The retention clock starts when a
// position is first observed safe, so a restart keeps everything for `keep_for` again (it errs
// on the side of keeping).
//
// Thread safety: one thread (the daemon's maintenance thread) calls Trim().
//
// Example:
//   LogRetention retention(Clock::Real(), absl::Hours(1), 1 << 30);
//   FERRY_RETURN_IF_ERROR(retention.Trim(*outbound, shipper.status().acked_next_seq));
#pragma once

#include <cstdint>
#include <deque>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/base/clock.h"
#include "engine/log/durable_log.h"

namespace ferry {

class LogRetention {
 public:
  // `clock` must outlive this object.
  LogRetention(const Clock* clock, absl::Duration keep_for, uint64_t max_bytes)
      : clock_(clock), keep_for_(keep_for), max_bytes_(max_bytes) {}

  // Notes that every record below `safe_below` may go, then trims `log` below what retention
  // allows. Returns the trim's error (the log is unchanged then; the next call tries again).
  [[nodiscard]] absl::Status Trim(DurableLog& log, uint64_t safe_below);

  // The position below which the last Trim() trimmed (0 before any trim).
  uint64_t trimmed_below() const { return trimmed_below_; }

 private:
  const Clock* const clock_;
  const absl::Duration keep_for_;
  const uint64_t max_bytes_;
  std::deque<std::pair<uint64_t, absl::Time>> marks_;  // (safe_below, first seen), ascending
  uint64_t trimmed_below_ = 0;
};

}  // namespace ferry
