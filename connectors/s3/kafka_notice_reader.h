// KafkaNoticeReader: bucket notifications published to Kafka (MinIO, or RGW through a bridge),
// read by a consumer in a group and captured through BucketSource::CaptureNotices.
//
// Invariant 1: the log is the truth of what was consumed. Each batch of messages is appended
// together with each partition's next offset as source state (`s3/kafka/TOPIC/PARTITION`) in
// one atomic append; on every assignment (start, rebalance) the reader seeks each partition to
// the offset stored in the log, and only then falls back to the group's committed offset. The
// offsets are committed to Kafka after the append, for consumer-lag tools only: a crash between
// the append and the commit re-reads nothing. A message that is not a readable notification
// (a poison message), and records for another bucket, are kept in the log as dead letters
// ("s3.dead_letter", with topic, partition and offset) and skipped.
//
// Errors: Run() returns the bucket's or the log's error (nothing of the failed batch is
// durable; the caller restarts Run, which seeks to the log's offsets again). Kafka's own
// transient errors (a broker away, a refused fetch or commit) are retried by librdkafka and
// reported in last_error().
//
// Thread safety: Run() on one thread; counters() from any.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "connectors/s3/bucket_source.h"
#include "connectors/s3/kafka_options.h"

namespace ferry::s3 {

struct KafkaNoticeCounters {
  uint64_t messages = 0;      // messages captured (durable)
  uint64_t poison = 0;        // messages kept as dead letters
  uint64_t batches = 0;       // durable appends
  uint64_t rebalances = 0;    // assignments received
  uint64_t kafka_errors = 0;  // errors librdkafka reported (retried by it)
};

// The librdkafka consumer settings of a reader (name, value), in the order it sets them: its
// brokers and group, offsets committed by the reader only after a durable append, a new group
// starting at the earliest offset, and the session timeout with a heartbeat a tenth of it (at
// least 100 ms; docs/config.md, events.kafka.session_timeout_ms).
std::vector<std::pair<std::string, std::string>> KafkaConsumerSettings(
    const KafkaNoticeOptions& options);

class KafkaNoticeReader {
 public:
  // `capture` (not owned) reads the truth and appends; it must outlive the reader.
  // kInvalidArgument for missing brokers, topic or group.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KafkaNoticeReader>> Create(
      KafkaNoticeOptions options, BucketSource* capture);
  ~KafkaNoticeReader();

  // Consumes until `stop` (returns OK) or a capture error (returns it). Creates its consumer at
  // the start and closes it (leaving the group) at the end.
  [[nodiscard]] absl::Status Run(CaptureTarget& target, const StopSignal& stop);

  KafkaNoticeCounters counters() const;
  std::string last_error() const;
  // The source-state key of a partition's next offset.
  std::string OffsetKey(int32_t partition) const;

  struct Consumer;  // the librdkafka handle and its callbacks (kafka_notice_reader.cc)

 private:
  KafkaNoticeReader(KafkaNoticeOptions options, BucketSource* capture)
      : options_(std::move(options)), capture_(capture) {}

  const KafkaNoticeOptions options_;
  BucketSource* const capture_;
  mutable absl::Mutex mu_;
  KafkaNoticeCounters counters_ ABSL_GUARDED_BY(mu_);
  std::string last_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::s3
