// BucketEventSink: the object path's EventSink (engine/api/event_sink.h). The standby applies
// the peer's object events through it: each event's key is made equal to the peer bucket's
// current state of the key (EventBatchApplier over ObjectApplier: the peer's bucket is the
// source, this region's the target). Idempotent, as EventSink requires.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "connectors/s3/event_batch_applier.h"
#include "connectors/s3/object_applier.h"
#include "connectors/s3/s3_client.h"
#include "engine/api/event_sink.h"

namespace ferry::s3 {

struct BucketEventSinkOptions {
  std::shared_ptr<S3Client> peer;  // reads the peer region's bucket
  std::string peer_bucket;
  std::string peer_region;  // written into the replica markers
  std::shared_ptr<S3Client> local;
  std::string local_bucket;
  uint64_t part_size = uint64_t{8} << 20;
  int parallelism = 4;
};

class BucketEventSink final : public EventSink {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<BucketEventSink>> Create(
      BucketEventSinkOptions options);
  absl::Status ApplyEvents(const std::vector<v1::SourceEvent>& events) override;
  // An object event: one object, its size as the source said when it PUT (0 for a DELETE).
  // Dead letters and reconciles write nothing known in advance: 0. An event that does not
  // parse weighs one object (apply will refuse it, naming it).
  EventWeight Weigh(const v1::SourceEvent& event) const override;
  std::string target_name() const override { return options_.local_bucket; }
  // Cancels both clients' calls (S3Client::Cancel).
  void Cancel() override {
    options_.peer->Cancel();
    options_.local->Cancel();
  }
  // What the last successful batch did (for status).
  BatchResult last_batch() const { return last_; }

 private:
  explicit BucketEventSink(BucketEventSinkOptions options) : options_(std::move(options)) {}
  const BucketEventSinkOptions options_;
  std::unique_ptr<ObjectApplier> applier_;
  std::unique_ptr<EventBatchApplier> batch_;
  BatchResult last_;
};

}  // namespace ferry::s3
