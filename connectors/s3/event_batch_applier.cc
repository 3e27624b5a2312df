#include "connectors/s3/event_batch_applier.h"

#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "connectors/s3/bucket_source.h"
#include "connectors/s3/object_event.pb.h"
#include "engine/base/status_macros.h"

namespace ferry::s3 {

absl::StatusOr<BatchResult> EventBatchApplier::Apply(const std::vector<v1::SourceEvent>& events) {
  BatchResult result;
  std::vector<std::string> keys;
  std::set<std::string> seen;
  bool reconcile = false;
  for (size_t i = 0; i < events.size(); ++i) {
    const v1::SourceEvent& e = events[i];
    if (e.type() == kDeadLetterType) {
      ++result.dead_letters;
      continue;
    }
    if (e.type() == kReconcileType) {
      reconcile = true;
      continue;
    }
    if (e.type() != kObjectEventType) {
      return absl::FailedPreconditionError(
          absl::StrCat("event ", i, " of the batch has type '", e.type(), "', not an object"));
    }
    ObjectEvent event;
    if (!event.ParseFromString(e.body())) {
      return absl::DataLossError(absl::StrCat("event ", i, " of the batch is not an ObjectEvent"));
    }
    if (event.format() != 1) {
      return absl::FailedPreconditionError(absl::StrCat("event ", i, " has object event format ",
                                                        event.format(), "; this ferryd reads 1"));
    }
    if (event.bucket() != source_bucket_) {
      return absl::FailedPreconditionError(absl::StrCat("event ", i, " is for bucket '",
                                                        event.bucket(), "', not the peer's '",
                                                        source_bucket_, "'"));
    }
    if (event.key().empty() || event.key().size() > S3Client::kMaxKeyBytes) {
      return absl::DataLossError(
          absl::StrCat("event ", i, " has a key of ", event.key().size(), " bytes"));
    }
    ++result.events;
    if (seen.insert(event.key()).second) keys.push_back(event.key());
  }
  if (reconcile) {
    // The target's keys too: one the source no longer has is deleted (ApplyKey reads both).
    FERRY_ASSIGN_OR_RETURN(std::vector<std::string> held, applier_->TargetKeys());
    for (std::string& k : held) {
      if (seen.insert(k).second) keys.push_back(std::move(k));
    }
    ++result.reconciles;
  }
  result.keys = keys.size();
  absl::Mutex mu;
  absl::Status first_error;
  std::atomic<size_t> next{0};
  auto work = [&] {
    while (true) {
      const size_t i = next.fetch_add(1);
      if (i >= keys.size()) return;
      absl::StatusOr<ApplyResult> r = applier_->ApplyKey(keys[i]);
      absl::MutexLock lock(&mu);
      if (!r.ok()) {
        if (first_error.ok()) first_error = r.status();
        continue;
      }
      result.bytes += r->bytes;
      switch (r->outcome) {
        case ApplyOutcome::kWritten:
          ++result.written;
          break;
        case ApplyOutcome::kDeleted:
          ++result.deleted;
          break;
        case ApplyOutcome::kAlreadyEqual:
          ++result.already_equal;
          break;
      }
    }
  };
  const int threads = static_cast<int>(std::min<size_t>(parallelism_, keys.size()));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (!first_error.ok()) return first_error;
  return result;
}

}  // namespace ferry::s3
