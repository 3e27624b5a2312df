// DrHistory: the last change of direction (switchover or promote) this region took part in and
// the last verify it ran, for status, /metrics and the status page (issue #20). Kept as state
// values of the region's outbound log ("dr/last_change", "dr/last_verify": serialized
// ferry.v1.DrEvent and VerifyOutcome), so they survive a restart and a role change; the log
// exists in both roles.
//
// Thread-safe. Recording is best effort: a value that cannot be persisted is still shown until
// ferryd restarts, and the failure is logged (status must never fail because of it).
//
// Example:
//   DrHistory history(outbound_log);
//   history.Load();
//   history.RecordChange(event);
//   *reply.mutable_last_change() = history.last_change();
#pragma once

#include "absl/synchronization/mutex.h"
#include "engine/log/durable_log.h"
#include "engine/log/log_names.h"
#include "proto/admin.pb.h"

namespace ferry {

class DrHistory {
 public:
  explicit DrHistory(DurableLog* log) : log_(log) {}  // `log` must outlive this object

  // Reads what was persisted; a value that does not parse is ignored (and logged).
  void Load() ABSL_LOCKS_EXCLUDED(mu_);
  void RecordChange(const v1::DrEvent& event) ABSL_LOCKS_EXCLUDED(mu_);
  void RecordVerify(const v1::VerifyOutcome& outcome) ABSL_LOCKS_EXCLUDED(mu_);

  v1::DrEvent last_change() const ABSL_LOCKS_EXCLUDED(mu_);
  v1::VerifyOutcome last_verify() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Persist(const char* name, const google::protobuf::Message& value);

  DurableLog* const log_;
  mutable absl::Mutex mu_;
  v1::DrEvent last_change_ ABSL_GUARDED_BY(mu_);
  v1::VerifyOutcome last_verify_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry
