// Where a bucket's notifications arrive over Kafka (kafka_notice_reader.h reads them).
#pragma once

#include <string>

#include "absl/time/time.h"

namespace ferry::s3 {

struct KafkaNoticeOptions {
  std::string brokers;  // bootstrap servers, "host:port[,host:port]"
  std::string topic;
  std::string group;
  // Messages read before one append (bounded by how many arrive within one poll).
  int max_batch = 500;
  // How long the group waits for a member that stopped without leaving (a SIGKILLed ferryd)
  // before its partitions move to another member.
  absl::Duration session_timeout = absl::Seconds(10);
  // Commit offsets to Kafka after each durable append (off only in tests of the crash between
  // the append and the commit).
  bool commit_to_kafka = true;
};

}  // namespace ferry::s3
