// Daemon::VerifyBucket: `ferryctl verify --bucket` on the primary (docs/objects.md, "Verify").
// The comparison is the object path's (factories_.verify_bucket); the daemon gives it the cut:
// the outbound log's end when the comparison asks, reached once the standby's bucket apply
// reports (RegionControl.Probe, events_applied_next_seq) that it applied every record below it.
#include <spdlog/spdlog.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/base/status_macros.h"
#include "engine/daemon/daemon.h"
#include "engine/daemon/dr_history.h"
#include "engine/log/durable_log.h"
#include "engine/metrics/metrics.h"

namespace ferry {

absl::Status Daemon::VerifyBucket(const v1::VerifyRequest& request, const std::string& operation,
                                  const std::function<void(const std::string&)>& step,
                                  const std::function<void(const v1::VerifyEvent&)>& emit,
                                  const std::function<bool()>& cancelled) {
  const absl::Time deadline = request.timeout_ms() == 0
                                  ? absl::InfiniteFuture()
                                  : absl::Now() + absl::Milliseconds(request.timeout_ms());
  auto check = [&]() -> absl::Status {
    if (cancelled()) return absl::CancelledError("verify cancelled by the caller");
    if (absl::Now() > deadline) return absl::DeadlineExceededError("verify: --timeout passed");
    return absl::OkStatus();
  };
  std::string cut = "none needed (no difference in the first pass)";
  BucketVerifyRun run;
  run.max_keys = request.max_keys() == 0 ? 1000 : request.max_keys();
  run.repair = request.repair();
  run.check_cancelled = check;
  run.step = step;
  run.wait_for_cut = [&]() -> absl::Status {
    const uint64_t end = outbound_->next_seq();
    // The first cut is the verify's (a repair's recheck takes another).
    if (absl::StartsWith(cut, "none")) cut = absl::StrCat("outbound seq ", end - 1);
    step(absl::StrCat("waiting for ",
                      config_.peer.region.empty() ? "the standby" : config_.peer.region,
                      "'s bucket apply to reach seq ", end - 1));
    // Polls the peer's progress (a remote state: nothing to wait on here), every 200 ms.
    while (true) {
      FERRY_RETURN_IF_ERROR(check());
      absl::StatusOr<v1::RegionInfo> info = peer_->Probe("", absl::Now() + absl::Seconds(5));
      if (info.ok()) {
        if (info->events_applied_next_seq() == 0) {
          return absl::FailedPreconditionError(
              absl::StrCat("verify --bucket: region ", info->region(), " applies no bucket (",
                           info->role(), ", ", info->state(), ")"));
        }
        if (info->events_applied_next_seq() >= end) return absl::OkStatus();
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
  };
  spdlog::info("verify {}: comparing the buckets", operation);
  absl::StatusOr<BucketVerifyOutcome> outcome = factories_.verify_bucket(config_, run);
  Metrics* metrics = metrics_.load();
  if (!outcome.ok()) {
    if (metrics != nullptr) metrics->RecordVerify("error", 0, 0);
    v1::VerifyOutcome failed;
    failed.set_result("error");
    failed.set_operation(operation);
    failed.set_finished_at_us(absl::ToUnixMicros(absl::Now()));
    failed.set_error(std::string(outcome.status().message()));
    dr_history_->RecordVerify(failed);
    spdlog::warn("verify {}: {}", operation, outcome.status().ToString());
    return Annotate(outcome.status(), operation);
  }
  const v1::VerifyTableResult& b = outcome->bucket;
  const uint64_t differences = b.missing_count() + b.extra_count() + b.changed_count();
  v1::VerifyEvent compared;
  compared.set_operation(operation);
  compared.set_step(absl::StrCat("compared ", b.table()));
  *compared.mutable_table() = b;
  emit(compared);
  v1::VerifyEvent last;
  last.set_operation(operation);
  last.set_step("done");
  v1::VerifySummary* summary = last.mutable_summary();
  summary->set_equal(differences == 0);
  summary->set_differences(differences);
  summary->set_truncated(b.truncated());
  summary->set_rows_compared(outcome->keys_compared);
  summary->set_bytes_compared(outcome->bytes_read);
  summary->set_cut(cut);
  summary->set_standby_region(config_.peer.region);
  summary->set_rechecked(outcome->rechecked);
  summary->set_recheck_equal(outcome->rechecked && outcome->recheck_differences == 0);
  summary->set_recheck_differences(outcome->recheck_differences);
  if (metrics != nullptr) {
    metrics->RecordVerify(differences == 0 ? "equal" : "different", outcome->keys_compared,
                          outcome->bytes_read);
  }
  {
    // A repair rechecks the keys it wrote: what it left is what the recheck found.
    const uint64_t remaining = outcome->rechecked ? outcome->recheck_differences : differences;
    v1::VerifyOutcome done;
    done.set_result(differences == 0 ? "equal" : remaining == 0 ? "repaired" : "different");
    done.set_operation(operation);
    done.set_finished_at_us(absl::ToUnixMicros(absl::Now()));
    done.set_differences(differences);
    done.set_remaining(remaining);
    dr_history_->RecordVerify(done);
  }
  spdlog::info("verify {}: {} differences over {} keys of the buckets", operation, differences,
               outcome->keys_compared);
  emit(last);
  return absl::OkStatus();
}

}  // namespace ferry
