#include "connectors/s3/bucket_event_sink.h"

#include "connectors/s3/bucket_source.h"
#include "connectors/s3/object_event.pb.h"
#include "engine/base/status_macros.h"

namespace ferry::s3 {

absl::StatusOr<std::unique_ptr<BucketEventSink>> BucketEventSink::Create(
    BucketEventSinkOptions options) {
  if (options.peer == nullptr || options.local == nullptr) {
    return absl::InvalidArgumentError("bucket event sink needs both clients");
  }
  std::unique_ptr<BucketEventSink> sink(new BucketEventSink(std::move(options)));
  FERRY_ASSIGN_OR_RETURN(sink->applier_,
                         ObjectApplier::Create({.source = sink->options_.peer.get(),
                                                .source_bucket = sink->options_.peer_bucket,
                                                .target = sink->options_.local.get(),
                                                .target_bucket = sink->options_.local_bucket,
                                                .origin_region = sink->options_.peer_region,
                                                .part_size = sink->options_.part_size}));
  sink->batch_ = std::make_unique<EventBatchApplier>(
      sink->applier_.get(), sink->options_.peer_bucket, sink->options_.parallelism);
  return sink;
}

absl::Status BucketEventSink::ApplyEvents(const std::vector<v1::SourceEvent>& events) {
  FERRY_ASSIGN_OR_RETURN(last_, batch_->Apply(events));
  return absl::OkStatus();
}

EventWeight BucketEventSink::Weigh(const v1::SourceEvent& event) const {
  if (event.type() != kObjectEventType) return {};
  ObjectEvent object;
  if (!object.ParseFromString(event.body())) return {.objects = 1, .bytes = 0};
  return {.objects = 1, .bytes = object.kind() == ObjectEvent::PUT ? object.size() : 0};
}

}  // namespace ferry::s3
