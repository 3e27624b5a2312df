#include "connectors/s3/objects_config.h"

#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "engine/base/status_macros.h"

namespace ferry::s3 {
namespace {

using config::Need;

absl::Status CheckEndpoint(absl::string_view s) {
  absl::string_view rest = s;
  if (!absl::ConsumePrefix(&rest, "http://") && !absl::ConsumePrefix(&rest, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected http://HOST[:PORT] or https://HOST[:PORT], got ", config::Quote(s)));
  }
  if (rest.empty() || rest.find_first_of("/?#@ ") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected scheme://HOST[:PORT] without a path (path-style addressing), got ",
                     config::Quote(s)));
  }
  return absl::OkStatus();
}

absl::Status CheckBucket(absl::string_view s) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  bool ok = s.size() >= 3 && s.size() <= 63 && alnum(s.front()) && alnum(s.back()) &&
            s.find("..") == absl::string_view::npos;
  for (char c : s) ok = ok && (alnum(c) || c == '-' || c == '.');
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected an S3 bucket name of 3-63 characters [a-z0-9.-], starting and ending with a "
        "letter or digit, got ",
        config::Quote(s)));
  }
  return absl::OkStatus();
}

absl::Status CheckRegion(absl::string_view s) {
  bool ok = !s.empty() && s.size() <= 64;
  for (char c : s) ok = ok && (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-');
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a signing region such as us-east-1, got ", config::Quote(s)));
  }
  return absl::OkStatus();
}

absl::Status CheckAbsolutePath(absl::string_view s) {
  if (!absl::StartsWith(s, "/")) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected an absolute path, got ", config::Quote(s)));
  }
  return absl::OkStatus();
}

// Kafka topic and group names: [a-zA-Z0-9._-], 1-249 bytes.
absl::Status CheckKafkaName(absl::string_view s) {
  bool ok = !s.empty() && s.size() <= 249;
  for (char c : s) {
    ok = ok &&
         (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected a Kafka name of 1-249 characters [a-zA-Z0-9._-], got ", config::Quote(s)));
  }
  return absl::OkStatus();
}

// "host:port[,host:port...]".
absl::Status CheckBrokers(absl::string_view s) {
  if (s.empty()) return absl::InvalidArgumentError("expected HOST:PORT[,HOST:PORT...], got \"\"");
  for (absl::string_view broker : absl::StrSplit(s, ',')) {
    absl::StatusOr<config::HostPort> hp =
        config::ParseHostPort(std::string_view(broker.data(), broker.size()));
    if (!hp.ok() || hp->port == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected HOST:PORT[,HOST:PORT...], got ", config::Quote(s)));
    }
  }
  return absl::OkStatus();
}

const std::vector<std::string>& EventKeys() {
  static const std::vector<std::string> keys = {"kafka", "webhook"};
  return keys;
}

const std::vector<std::string>& WebhookKeys() {
  static const std::vector<std::string> keys = {"listen", "token_file", "token_env"};
  return keys;
}

const std::vector<std::string>& PeerKeys() {
  static const std::vector<std::string> keys = {
      "endpoint",       "signing_region",  "bucket",        "access_key_file",
      "access_key_env", "secret_key_file", "secret_key_env"};
  return keys;
}

const std::vector<std::string>& KafkaKeys() {
  static const std::vector<std::string> keys = {"brokers", "topic", "group", "session_timeout_ms"};
  return keys;
}

}  // namespace

std::vector<std::string> ObjectsConfigSection::keys() const {
  return {"endpoint",       "signing_region",
          "bucket",         "access_key_file",
          "access_key_env", "secret_key_file",
          "secret_key_env", "ca_file",
          "part_size",      "backfill_interval_seconds",
          "events",         "peer_bucket"};
}

absl::Status ObjectsConfigSection::Read(const config::Section& section,
                                        const config::ConnectorContext& context) {
  present_ = false;
  bool any = false;
  for (const std::string& key : keys()) any = any || section.Has(key);
  if (!any) return absl::OkStatus();  // no objects: section (or an empty one): no object path
  ObjectsConfig c;
  FERRY_RETURN_IF_ERROR(section.GetString("endpoint", Need::kRequired, CheckEndpoint, &c.endpoint));
  FERRY_RETURN_IF_ERROR(
      section.GetString("signing_region", Need::kOptional, CheckRegion, &c.signing_region));
  FERRY_RETURN_IF_ERROR(section.GetString("bucket", Need::kRequired, CheckBucket, &c.bucket));
  FERRY_RETURN_IF_ERROR(section.GetSecret("access_key", &c.access_key));
  if (!c.access_key.is_set()) {
    return section.Error("access_key_file",
                         "set 'objects.access_key_file' or 'objects.access_key_env'");
  }
  FERRY_RETURN_IF_ERROR(section.GetSecret("secret_key", &c.secret_key));
  if (!c.secret_key.is_set()) {
    return section.Error("secret_key_file",
                         "set 'objects.secret_key_file' or 'objects.secret_key_env'");
  }
  FERRY_RETURN_IF_ERROR(
      section.GetString("ca_file", Need::kOptional, CheckAbsolutePath, &c.ca_file));
  if (!c.ca_file.empty() && !absl::StartsWith(c.endpoint, "https://")) {
    return section.Error("ca_file", "is only used with an https:// endpoint");
  }
  FERRY_RETURN_IF_ERROR(
      section.GetSize("part_size", uint64_t{5} << 20, uint64_t{5} << 30, &c.part_size));
  FERRY_RETURN_IF_ERROR(section.GetInt("backfill_interval_seconds", int64_t{0},
                                       int64_t{30} * 24 * 3600, &c.backfill_interval_seconds));
  FERRY_ASSIGN_OR_RETURN(config::Section events, section.Child("events", EventKeys()));
  if (events.Has("kafka")) {
    FERRY_ASSIGN_OR_RETURN(config::Section kafka, events.Child("kafka", KafkaKeys()));
    FERRY_RETURN_IF_ERROR(
        kafka.GetString("brokers", Need::kRequired, CheckBrokers, &c.kafka_brokers));
    FERRY_RETURN_IF_ERROR(
        kafka.GetString("topic", Need::kRequired, CheckKafkaName, &c.kafka_topic));
    c.kafka_group = absl::StrCat("ferry-", context.region);
    FERRY_RETURN_IF_ERROR(
        kafka.GetString("group", Need::kOptional, CheckKafkaName, &c.kafka_group));
    // librdkafka's bounds; a broker refuses values outside its group.min/max.session.timeout.ms
    // (6 s to 30 min by default) when the consumer joins (status shows the error).
    FERRY_RETURN_IF_ERROR(kafka.GetInt("session_timeout_ms", int64_t{1000}, int64_t{3600000},
                                       &c.kafka_session_timeout_ms));
    c.kafka = true;
  }
  if (events.Has("webhook")) {
    FERRY_ASSIGN_OR_RETURN(config::Section webhook, events.Child("webhook", WebhookKeys()));
    FERRY_RETURN_IF_ERROR(
        webhook.GetHostPort("listen", Need::kRequired, /*allow_port_0=*/true, &c.webhook_listen));
    FERRY_RETURN_IF_ERROR(webhook.GetSecret("token", &c.webhook_token));
    c.webhook = true;
  }
  if (!c.webhook && !c.kafka && c.backfill_interval_seconds == 0) {
    return section.Error("events",
                         "set events.webhook, events.kafka or backfill_interval_seconds: otherwise "
                         "no change "
                         "made after the start would ever be replicated");
  }
  if (!section.Has("peer_bucket")) {
    return section.Error("peer_bucket",
                         "is required: the peer region's endpoint, bucket and keys, read when "
                         "this region applies the peer's object events");
  }
  FERRY_ASSIGN_OR_RETURN(config::Section peer, section.Child("peer_bucket", PeerKeys()));
  FERRY_RETURN_IF_ERROR(
      peer.GetString("endpoint", Need::kRequired, CheckEndpoint, &c.peer.endpoint));
  FERRY_RETURN_IF_ERROR(
      peer.GetString("signing_region", Need::kOptional, CheckRegion, &c.peer.signing_region));
  FERRY_RETURN_IF_ERROR(peer.GetString("bucket", Need::kRequired, CheckBucket, &c.peer.bucket));
  FERRY_RETURN_IF_ERROR(peer.GetSecret("access_key", &c.peer.access_key));
  FERRY_RETURN_IF_ERROR(peer.GetSecret("secret_key", &c.peer.secret_key));
  if (!c.peer.access_key.is_set() || !c.peer.secret_key.is_set()) {
    return peer.Error("access_key_file",
                      "set the peer's access_key_file / access_key_env and secret_key_file / "
                      "secret_key_env");
  }
  config_ = std::move(c);
  present_ = true;
  return absl::OkStatus();
}

}  // namespace ferry::s3
