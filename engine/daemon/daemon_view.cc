// The operator's view (issue #20): the quarantine count and the record of the last change of
// direction.
#include <spdlog/spdlog.h>

#include "engine/daemon/daemon.h"

namespace ferry {

int64_t Daemon::QuarantinePending() {
  if (!factories_.count_quarantine_pending) return 0;
  // One caller counts; the others (and every caller within 2 s of the last count) take the
  // last count instead of queueing behind the database.
  if (!quarantine_mu_.TryLock()) return quarantine_pending_.load();
  const absl::Time now = clock_->Now();
  if (now - quarantine_counted_ >= absl::Seconds(2)) {
    absl::StatusOr<int64_t> count = factories_.count_quarantine_pending();
    if (!count.ok() && quarantine_pending_.load() >= 0) {
      spdlog::warn("region {}: cannot count ferry.quarantine: {}", config_.region,
                   count.status().ToString());
    }
    quarantine_pending_.store(count.ok() ? *count : -1);
    quarantine_counted_ = now;
  }
  quarantine_mu_.Unlock();
  return quarantine_pending_.load();
}

void Daemon::RecordChange(const std::string& kind, const std::string& operation, absl::Time started,
                          uint64_t epoch, const std::string& new_primary,
                          const v1::LossBound* loss) {
  const absl::Time now = absl::Now();
  v1::DrEvent event;
  event.set_kind(kind);
  event.set_operation(operation);
  event.set_finished_at_us(absl::ToUnixMicros(now));
  event.set_duration_seconds(absl::ToDoubleSeconds(now - started));
  event.set_epoch(epoch);
  event.set_new_primary(new_primary);
  if (loss != nullptr) *event.mutable_loss() = *loss;
  dr_history_->RecordChange(event);
}

}  // namespace ferry
