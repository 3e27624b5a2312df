#include "tests/e2e/kafka_mock.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "absl/strings/str_cat.h"

namespace ferry::testing {

absl::StatusOr<std::unique_ptr<KafkaMock>> KafkaMock::Start(const std::string& topic,
                                                            int partitions) {
  std::unique_ptr<KafkaMock> k(new KafkaMock());
  k->topic_ = topic;
  k->partitions_ = partitions;
  char err[256];
  k->host_ = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof(err));
  if (k->host_ == nullptr) return absl::InternalError(absl::StrCat("kafka: ", err));
  k->mock_ = rd_kafka_mock_cluster_new(k->host_, 1);
  if (k->mock_ == nullptr) return absl::InternalError("kafka: no mock cluster");
  if (rd_kafka_mock_topic_create(k->mock_, topic.c_str(), partitions, 1) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InternalError("kafka: cannot create the topic");
  }
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", rd_kafka_mock_cluster_bootstraps(k->mock_), err,
                        sizeof(err)) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return absl::InternalError(absl::StrCat("kafka: ", err));
  }
  k->producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (k->producer_ == nullptr) return absl::InternalError(absl::StrCat("kafka: ", err));
  return k;
}

KafkaMock::~KafkaMock() {
  if (producer_ != nullptr) rd_kafka_destroy(producer_);
  if (mock_ != nullptr) rd_kafka_mock_cluster_destroy(mock_);
  if (host_ != nullptr) rd_kafka_destroy(host_);
}

std::string KafkaMock::bootstraps() const { return rd_kafka_mock_cluster_bootstraps(mock_); }

absl::Status KafkaMock::Publish(int32_t partition, const std::string& value) {
  rd_kafka_resp_err_t e = rd_kafka_producev(
      producer_, RD_KAFKA_V_TOPIC(topic_.c_str()), RD_KAFKA_V_PARTITION(partition),
      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) e = rd_kafka_flush(producer_, 10000);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat("kafka publish: ", rd_kafka_err2str(e)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> KafkaMock::Committed(const std::string& group) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps().c_str(), err, sizeof(err)) !=
          RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "group.id", group.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return absl::InternalError(absl::StrCat("kafka: ", err));
  }
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (consumer == nullptr) return absl::InternalError(absl::StrCat("kafka: ", err));
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions_);
  for (int p = 0; p < partitions_; ++p) {
    rd_kafka_topic_partition_list_add(list, topic_.c_str(), p);
  }
  const rd_kafka_resp_err_t e = rd_kafka_committed(consumer, list, 10000);
  std::vector<int64_t> out;
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < list->cnt; ++i) out.push_back(list->elems[i].offset);
  }
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat("kafka committed: ", rd_kafka_err2str(e)));
  }
  return out;
}

}  // namespace ferry::testing
