// TargetIncarnation: which run of the target database an apply round began on.
//
// Why: with synchronous_commit off, a crash of the target takes back the commits it had not
// flushed, while apply still counts those groups as committed. A worker that then connects to
// the recovered server and commits a later group would move its origin past the lost ones, and
// the progress (the maximum over the worker origins) would skip them for good. So a session
// that connects refuses (kUnavailable) unless the target is still in the run the round began
// on: the round ends, and the next one reads the progress again from what survived. An idle
// apply opens no session: PostgresSink::DurableSeq, which apply polls, checks the token too.
//
// How a run is told apart: PostgresSink::LoadState writes a fresh random token for its source
// region into ferry.target_run, an UNLOGGED table. Crash recovery empties unlogged tables; a
// clean shutdown keeps them and loses no commit. A crash restarts the backends without a new
// postmaster (restart_after_crash, the default), so the postmaster's start time would not do.
// Thread-safe.
#pragma once

#include <string>

#include "absl/synchronization/mutex.h"

namespace ferry::pg_sink {

class TargetIncarnation {
 public:
  // A new round wrote `token` into ferry.target_run (empty: no round yet).
  void Set(std::string token) {
    absl::MutexLock lock(&mu_);
    token_ = std::move(token);
  }
  // The token the target must still hold for a session to commit in this round.
  std::string token() const {
    absl::MutexLock lock(&mu_);
    return token_;
  }

 private:
  mutable absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::pg_sink
