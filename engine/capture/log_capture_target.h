// LogCaptureTarget: the engine's CaptureTarget (engine/api/source.h) over the outbound
// DurableLog. A source hands it transaction fragments; it stamps them with the region, epoch
// and capture time, serializes them and appends them durably together with the "captured"
// cursor, so the cursor never runs ahead of the records it describes (invariant 1).
//
// Thread-safe (the log is); sources call it from their own thread.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "engine/api/source.h"
#include "engine/base/clock.h"
#include "engine/log/durable_log.h"
#include "engine/log/log_names.h"
#include "engine/stats/table_counts.h"

namespace ferry {

class LogCaptureTarget final : public CaptureTarget {
 public:
  // `log` and `clock` must outlive this object. `epoch` is read at every append (the region's
  // current epoch).
  LogCaptureTarget(DurableLog* log, std::string region, std::function<uint64_t()> epoch,
                   Clock* clock = Clock::Real());

  // Reads the persisted "captured" cursor. Call once before the source runs.
  [[nodiscard]] absl::Status Load();

  absl::Status Append(std::vector<v1::Transaction> fragments, uint64_t captured_position) override;
  // Writes each shared relation's encoding (made once) instead of copying it into every
  // fragment: the same bytes as Append() of the fragments with their relations copied in.
  // Append() is this with no shared relations.
  absl::Status AppendShared(std::vector<SharedRelationsFragment> fragments,
                            uint64_t captured_position) override;
  absl::Status AdvanceTo(uint64_t position) override;
  absl::Status AppendEvents(std::vector<v1::SourceEvent> events,
                            std::vector<std::pair<std::string, std::string>> source_state) override;
  uint64_t CapturedPosition() const override { return captured_.load(); }
  absl::Status PutSourceState(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::string> GetSourceState(const std::string& key) const override;

  // Transactions appended since construction (for metrics).
  uint64_t transactions() const { return transactions_.load(); }
  uint64_t events() const { return events_.load(); }
  // Counts what each successful Append() made durable, per table, into `counts` (not owned;
  // null: not counted). Call before the source runs.
  void CountTablesInto(TableCounts* counts) { counts_ = counts; }

 private:
  DurableLog* const log_;
  const std::string region_;
  const std::function<uint64_t()> epoch_;
  Clock* const clock_;
  std::atomic<uint64_t> captured_{0};
  std::atomic<uint64_t> transactions_{0};
  std::atomic<uint64_t> events_{0};
  TableCounts* counts_ = nullptr;
};

}  // namespace ferry
