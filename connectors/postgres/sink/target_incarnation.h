// TargetIncarnation: which run of the target server an apply round began on (its
// pg_postmaster_start_time(), read by PostgresSink::LoadState).
//
// Why: with synchronous_commit off, a crash of the target takes back the commits it had not
// flushed, while apply still counts those groups as committed. A worker that then connects to
// the restarted server and commits a later group would move its origin past the lost ones, and
// the progress (the maximum over the worker origins) would skip them for good. So a session
// that connects refuses (kUnavailable) when the server is not the one the round began on: the
// round ends, and the next one reads the progress again from what survived. Thread-safe.
#pragma once

#include <string>

#include "absl/synchronization/mutex.h"

namespace ferry::pg_sink {

class TargetIncarnation {
 public:
  // A new round began on the server that started at `start` (empty: unknown).
  void Set(std::string start) {
    absl::MutexLock lock(&mu_);
    start_ = std::move(start);
  }
  // Whether a connection to the server that started at `start` may commit in this round.
  bool Matches(const std::string& start) const {
    absl::MutexLock lock(&mu_);
    return start_.empty() || start_ == start;
  }
  std::string start() const {
    absl::MutexLock lock(&mu_);
    return start_;
  }

 private:
  mutable absl::Mutex mu_;
  std::string start_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::pg_sink
