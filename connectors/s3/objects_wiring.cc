#include "connectors/s3/objects_wiring.h"

#include "absl/strings/str_cat.h"
#include "connectors/s3/bucket_event_sink.h"
#include "connectors/s3/bucket_source.h"
#include "engine/base/status_macros.h"

namespace ferry::s3 {
namespace {

absl::StatusOr<std::shared_ptr<S3Client>> Client(const std::string& endpoint,
                                                 const std::string& region,
                                                 const config::Secret& access,
                                                 const config::Secret& secret,
                                                 const std::string& ca_file) {
  FERRY_ASSIGN_OR_RETURN(
      std::unique_ptr<S3Client> client,
      S3Client::Open({.endpoint = endpoint,
                      .signing_region = region,
                      .credentials = {.access_key = access.value, .secret_key = secret.value},
                      .ca_file = ca_file}));
  return std::shared_ptr<S3Client>(std::move(client));
}

}  // namespace

void AddObjectFactories(const ObjectsConfig& objects, DaemonFactories* factories) {
  factories->event_source = [objects](
                                const config::Config&,
                                const PipelineContext&) -> absl::StatusOr<std::unique_ptr<Source>> {
    FERRY_ASSIGN_OR_RETURN(std::shared_ptr<S3Client> client,
                           Client(objects.endpoint, objects.signing_region, objects.access_key,
                                  objects.secret_key, objects.ca_file));
    BucketSourceOptions o{.client = std::move(client), .bucket = objects.bucket};
    if (objects.webhook) {
      o.webhook_listen = objects.webhook_listen.ToString();
      o.webhook_token = objects.webhook_token.value;
    }
    if (objects.kafka) {
      o.kafka.brokers = objects.kafka_brokers;
      o.kafka.topic = objects.kafka_topic;
      o.kafka.group = objects.kafka_group;
    }
    o.backfill_interval = absl::Seconds(objects.backfill_interval_seconds);
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<BucketSource> source,
                           BucketSource::Create(std::move(o)));
    return std::unique_ptr<Source>(std::move(source));
  };
  factories->event_sink =
      [objects](const config::Config& c,
                const PipelineContext&) -> absl::StatusOr<std::unique_ptr<EventSink>> {
    FERRY_ASSIGN_OR_RETURN(std::shared_ptr<S3Client> local,
                           Client(objects.endpoint, objects.signing_region, objects.access_key,
                                  objects.secret_key, objects.ca_file));
    FERRY_ASSIGN_OR_RETURN(std::shared_ptr<S3Client> peer,
                           Client(objects.peer.endpoint, objects.peer.signing_region,
                                  objects.peer.access_key, objects.peer.secret_key, ""));
    FERRY_ASSIGN_OR_RETURN(
        std::unique_ptr<BucketEventSink> sink,
        BucketEventSink::Create({.peer = std::move(peer),
                                 .peer_bucket = objects.peer.bucket,
                                 .peer_region = c.peer.region.empty() ? "peer" : c.peer.region,
                                 .local = std::move(local),
                                 .local_bucket = objects.bucket,
                                 .part_size = objects.part_size}));
    return std::unique_ptr<EventSink>(std::move(sink));
  };
}

}  // namespace ferry::s3
