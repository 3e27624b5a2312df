// KafkaMock: librdkafka's mock cluster (rdkafka_mock.h) in the test process, speaking the real
// Kafka protocol over TCP on loopback, so that a ferryd in another process consumes from it as
// from a broker. A producer publishes to it; committed() reads a group's committed offsets
// (OffsetFetch, as a consumer-lag tool would).
//
// Example:
//   auto kafka = KafkaMock::Start("bucket-events", 2);
//   ferryd yaml: kafka: { brokers: "<(*kafka)->bootstraps()>", topic: bucket-events }
//   ASSERT_TRUE((*kafka)->Publish(0, record).ok());
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;

namespace ferry::testing {

class KafkaMock {
 public:
  // One broker, `topic` with `partitions` partitions.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KafkaMock>> Start(const std::string& topic,
                                                                        int partitions);
  ~KafkaMock();

  std::string bootstraps() const;
  // Publishes one message to a partition and waits until the broker has it.
  [[nodiscard]] absl::Status Publish(int32_t partition, const std::string& value);
  // The group's committed offset of each partition (-1001, RD_KAFKA_OFFSET_INVALID: none).
  [[nodiscard]] absl::StatusOr<std::vector<int64_t>> Committed(const std::string& group);

 private:
  KafkaMock() = default;
  std::string topic_;
  int partitions_ = 0;
  rd_kafka_t* host_ = nullptr;  // owns the mock cluster
  rd_kafka_mock_cluster_t* mock_ = nullptr;
  rd_kafka_t* producer_ = nullptr;
};

}  // namespace ferry::testing
