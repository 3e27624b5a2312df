#include "connectors/s3/kafka_notice_reader.h"

#include <librdkafka/rdkafka.h>

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/base/kill_point.h"
#include "engine/base/status_macros.h"

namespace ferry::s3 {

// The consumer handle with what its rebalance callback needs (librdkafka calls it from inside
// rd_kafka_consumer_poll, on Run()'s thread).
struct KafkaNoticeReader::Consumer {
  rd_kafka_t* rk = nullptr;
  KafkaNoticeReader* reader = nullptr;
  CaptureTarget* target = nullptr;
  absl::Status assign_error;  // a log read that failed in the rebalance callback

  ~Consumer() {
    if (rk != nullptr) {
      rd_kafka_consumer_close(rk);
      rd_kafka_destroy(rk);
    }
  }

  static void Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t* partitions, void* opaque) {
    auto* self = static_cast<Consumer*>(opaque);
    if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      rd_kafka_assign(rk, nullptr);
      return;
    }
    {
      absl::MutexLock lock(&self->reader->mu_);
      ++self->reader->counters_.rebalances;
    }
    // The log's offsets win over the group's: they are durable with the events.
    for (int i = 0; i < partitions->cnt; ++i) {
      rd_kafka_topic_partition_t& p = partitions->elems[i];
      absl::StatusOr<std::string> stored =
          self->target->GetSourceState(self->reader->OffsetKey(p.partition));
      if (!stored.ok()) {
        self->assign_error = stored.status();
        continue;
      }
      int64_t offset = 0;
      if (!stored->empty() && absl::SimpleAtoi(*stored, &offset) && offset >= 0) {
        p.offset = offset;
      } else {
        p.offset = RD_KAFKA_OFFSET_STORED;  // the group's, else auto.offset.reset (earliest)
      }
    }
    rd_kafka_assign(rk, partitions);
  }

  static void Error(rd_kafka_t*, int err, const char* reason, void* opaque) {
    auto* self = static_cast<Consumer*>(opaque);
    absl::MutexLock lock(&self->reader->mu_);
    ++self->reader->counters_.kafka_errors;
    self->reader->last_error_ =
        absl::StrCat(rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)), ": ", reason);
  }
};

std::vector<std::pair<std::string, std::string>> KafkaConsumerSettings(
    const KafkaNoticeOptions& options) {
  const int64_t session_ms = absl::ToInt64Milliseconds(options.session_timeout);
  return {{"bootstrap.servers", options.brokers},
          {"group.id", options.group},
          {"enable.auto.commit", "false"},
          {"enable.auto.offset.store", "false"},
          {"auto.offset.reset", "earliest"},
          {"enable.partition.eof", "false"},
          {"session.timeout.ms", absl::StrCat(session_ms)},
          {"heartbeat.interval.ms", absl::StrCat(std::max<int64_t>(100, session_ms / 10))}};
}

absl::StatusOr<std::unique_ptr<KafkaNoticeReader>> KafkaNoticeReader::Create(
    KafkaNoticeOptions options, BucketSource* capture) {
  if (options.brokers.empty() || options.topic.empty() || options.group.empty() ||
      capture == nullptr) {
    return absl::InvalidArgumentError("kafka notices need brokers, a topic and a group");
  }
  if (options.max_batch < 1) options.max_batch = 1;
  return std::unique_ptr<KafkaNoticeReader>(new KafkaNoticeReader(std::move(options), capture));
}

KafkaNoticeReader::~KafkaNoticeReader() = default;

KafkaNoticeCounters KafkaNoticeReader::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

std::string KafkaNoticeReader::last_error() const {
  absl::MutexLock lock(&mu_);
  return last_error_;
}

std::string KafkaNoticeReader::OffsetKey(int32_t partition) const {
  return absl::StrCat("s3/kafka/", options_.topic, "/", partition);
}

absl::Status KafkaNoticeReader::Run(CaptureTarget& target, const StopSignal& stop) {
  auto consumer = std::make_unique<Consumer>();
  consumer->reader = this;
  consumer->target = &target;
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto set = [&](const char* name, const std::string& value) -> absl::Status {
    if (rd_kafka_conf_set(conf, name, value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      return absl::InvalidArgumentError(absl::StrCat("kafka ", name, ": ", err));
    }
    return absl::OkStatus();
  };
  absl::Status s;
  for (const auto& [name, value] : KafkaConsumerSettings(options_)) {
    s = set(name.c_str(), value);
    if (!s.ok()) break;
  }
  if (!s.ok()) {
    rd_kafka_conf_destroy(conf);
    return s;
  }
  rd_kafka_conf_set_opaque(conf, consumer.get());
  rd_kafka_conf_set_rebalance_cb(conf, &Consumer::Rebalance);
  rd_kafka_conf_set_error_cb(conf, &Consumer::Error);
  consumer->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (consumer->rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InvalidArgumentError(absl::StrCat("kafka consumer: ", err));
  }
  rd_kafka_poll_set_consumer(consumer->rk);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, options_.topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t sub = rd_kafka_subscribe(consumer->rk, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (sub != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat("kafka subscribe: ", rd_kafka_err2str(sub)));
  }

  while (!stop.stopped()) {
    // One batch: what arrives within a poll, up to max_batch messages.
    std::vector<BucketNotice> notices;
    std::vector<std::string> dead;
    std::map<int32_t, int64_t> next_offsets;
    int taken = 0;
    uint64_t poison = 0;
    for (int timeout_ms = 200; taken < options_.max_batch; timeout_ms = 0) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer->rk, timeout_ms);
      if (!consumer->assign_error.ok()) {
        if (m != nullptr) rd_kafka_message_destroy(m);
        return consumer->assign_error;
      }
      if (m == nullptr) break;
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        Consumer::Error(consumer->rk, m->err, rd_kafka_message_errstr(m), consumer.get());
        rd_kafka_message_destroy(m);
        continue;
      }
      ++taken;
      const std::string where =
          absl::StrCat("kafka ", options_.topic, "/", m->partition, "@", m->offset);
      next_offsets[m->partition] = m->offset + 1;
      absl::string_view payload(static_cast<const char*>(m->payload), m->len);
      absl::StatusOr<ParsedNotification> parsed =
          ParseNotification(std::string_view(payload.data(), payload.size()));
      if (!parsed.ok()) {
        ++poison;
        dead.push_back(absl::StrCat(where, ": ", parsed.status().message(), "\n", payload));
      } else {
        for (const RejectedRecord& r : parsed->rejected) {
          dead.push_back(absl::StrCat(where, " record ", r.index, ": ", r.reason));
        }
        for (BucketNotice& n : parsed->notices) {
          notices.push_back(std::move(n));
        }
      }
      rd_kafka_message_destroy(m);
    }
    if (taken == 0) continue;
    std::vector<BucketNotice> ours;
    for (BucketNotice& n : notices) {
      if (n.bucket != capture_->bucket()) {
        dead.push_back(absl::StrCat("notice for bucket '", n.bucket, "', not '", capture_->bucket(),
                                    "': key '", n.key, "'"));
      } else {
        ours.push_back(std::move(n));
      }
    }
    std::vector<std::pair<std::string, std::string>> state;
    for (const auto& [partition, offset] : next_offsets) {
      state.emplace_back(OffsetKey(partition), absl::StrCat(offset));
    }
    FERRY_RETURN_IF_ERROR(
        capture_->CaptureNotices(target, ours, "kafka", std::move(dead), std::move(state)));
    KillPoint("kafka.appended");  // durable in the log, not committed to Kafka yet
    {
      absl::MutexLock lock(&mu_);
      counters_.messages += static_cast<uint64_t>(taken);
      counters_.poison += poison;
      ++counters_.batches;
    }
    if (options_.commit_to_kafka) {
      rd_kafka_topic_partition_list_t* offsets =
          rd_kafka_topic_partition_list_new(static_cast<int>(next_offsets.size()));
      for (const auto& [partition, offset] : next_offsets) {
        rd_kafka_topic_partition_list_add(offsets, options_.topic.c_str(), partition)->offset =
            offset;
      }
      // Asynchronous: a failed commit costs nothing (the log's offsets are used on assignment).
      rd_kafka_commit(consumer->rk, offsets, /*async=*/1);
      rd_kafka_topic_partition_list_destroy(offsets);
    }
  }
  return absl::OkStatus();
}

}  // namespace ferry::s3
