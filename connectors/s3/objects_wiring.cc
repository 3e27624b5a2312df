#include "connectors/s3/objects_wiring.h"

#include "absl/strings/str_cat.h"
#include "connectors/s3/bucket_event_sink.h"
#include "connectors/s3/bucket_source.h"
#include "connectors/s3/bucket_verify.h"
#include "connectors/s3/kept_object.h"
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

// The report as the daemon's verify stream carries it (proto/admin.proto, VerifyRequest.bucket).
BucketVerifyOutcome ToOutcome(const BucketVerifyReport& r, const std::string& table) {
  BucketVerifyOutcome out;
  v1::VerifyTableResult& t = out.bucket;
  t.set_table(table);
  t.add_key_columns("key");
  for (const KeyDifference& d : r.shown) {
    auto* keys = d.kind == KeyDifferenceKind::kMissing ? t.mutable_missing()
                 : d.kind == KeyDifferenceKind::kExtra ? t.mutable_extra()
                                                       : t.mutable_changed();
    keys->Add()->add_values(d.key);
    if (d.kind == KeyDifferenceKind::kChanged) t.add_notes(absl::StrCat(d.key, ": ", d.what));
  }
  t.set_missing_count(r.missing);
  t.set_extra_count(r.extra);
  t.set_changed_count(r.changed);
  t.set_truncated(r.truncated);
  if (r.settled > 0) {
    t.add_notes(absl::StrCat(r.settled,
                             " key(s) differed in the first pass but not once the standby "
                             "reached the cut (lag, or written since): not differences"));
  }
  t.set_repaired_rows(r.repaired);
  if (r.repair_left > 0) {
    t.add_notes(absl::StrCat(r.repair_left,
                             " key(s) written on the primary on and on while the repair copied "
                             "them: left to the standby's apply (their newer events are in its "
                             "log)"));
  }
  if (r.repair_failed > 0) {
    t.set_repair_note(
        absl::StrCat(r.repair_failed, " key(s) not repaired; first: ", r.repair_note));
  }
  out.keys_compared = r.keys_compared;
  out.bytes_read = r.bytes_read;
  out.rechecked = r.rechecked;
  out.recheck_differences = r.recheck_differences;
  return out;
}

}  // namespace

void AddObjectFactories(const ObjectsConfig& objects, DaemonFactories* factories) {
  factories->kept_event = ObjectEventAsKept;
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
      o.kafka.session_timeout = absl::Milliseconds(objects.kafka_session_timeout_ms);
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
  // On the primary: this region's bucket against the peer's (objects.peer_bucket).
  factories->verify_bucket =
      [objects](const config::Config& c,
                const BucketVerifyRun& run) -> absl::StatusOr<BucketVerifyOutcome> {
    FERRY_ASSIGN_OR_RETURN(std::shared_ptr<S3Client> local,
                           Client(objects.endpoint, objects.signing_region, objects.access_key,
                                  objects.secret_key, objects.ca_file));
    FERRY_ASSIGN_OR_RETURN(std::shared_ptr<S3Client> peer,
                           Client(objects.peer.endpoint, objects.peer.signing_region,
                                  objects.peer.access_key, objects.peer.secret_key, ""));
    FERRY_ASSIGN_OR_RETURN(BucketVerifyReport report,
                           VerifyBuckets({.primary = local.get(),
                                          .primary_bucket = objects.bucket,
                                          .standby = peer.get(),
                                          .standby_bucket = objects.peer.bucket,
                                          .primary_region = c.region,
                                          .part_size = objects.part_size,
                                          .max_keys = run.max_keys,
                                          .repair = run.repair,
                                          .wait_for_cut = run.wait_for_cut,
                                          .check_cancelled = run.check_cancelled,
                                          .step = run.step}));
    return ToOutcome(report, absl::StrCat("bucket ", objects.bucket, " -> ", objects.peer.bucket));
  };
}

}  // namespace ferry::s3
