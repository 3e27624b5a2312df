// The `objects:` section of ferryd's config (DESIGN.md, operator contract): which bucket this
// region's object path reads and writes, with what credentials, and where the bucket's
// notifications arrive. The connector owns these keys, their checks and their docs
// (docs/objects.md, "Config"); the engine's loader knows none of them
// (engine/config/connector_section.h).
//
// Example (ferryd):
//   ferry::s3::ObjectsConfigSection objects;
//   FERRY_ASSIGN_OR_RETURN(config::Config config,
//                          config::LoadConfigFile(path, {.connectors = {&postgres, &objects}}));
//   if (objects.present()) ... objects.config() ...
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/config/connector_section.h"
#include "engine/config/secret.h"
#include "engine/config/section.h"
#include "engine/config/value_parsers.h"

namespace ferry::s3 {

// objects.peer_bucket: the peer region's bucket, which this region reads when it applies the peer's
// object events (bodies are fetched at apply time: docs/objects.md, "Where bodies travel").
struct ObjectsPeerConfig {
  std::string endpoint;
  std::string signing_region = "us-east-1";
  std::string bucket;
  config::Secret access_key;
  config::Secret secret_key;
};

struct ObjectsConfig {
  // http(s)://host[:port] of any S3-compatible endpoint (SigV4, path-style). Required.
  std::string endpoint;
  std::string signing_region = "us-east-1";
  // This region's bucket: 3-63 of [a-z0-9.-], starting and ending with a letter or digit.
  std::string bucket;
  // From access_key_file / access_key_env and secret_key_file / secret_key_env. Required.
  config::Secret access_key;
  config::Secret secret_key;
  // PEM bundle for an https endpoint (absolute path); "" uses the system's.
  std::string ca_file;
  // Objects up to this size are copied with one PUT, larger ones in parts of this size.
  uint64_t part_size = uint64_t{8} << 20;
  // A listing backfill this often (besides the one at every start); 0: only at start.
  int64_t backfill_interval_seconds = 0;
  // events.webhook.listen: HOST:PORT of the notification listener (unset: port 0).
  config::HostPort webhook_listen;
  bool webhook = false;
  // events.webhook.token_file / token_env: required on pushes when set.
  config::Secret webhook_token;
  // events.kafka: brokers and topic required; group defaults to "ferry-<region>".
  bool kafka = false;
  std::string kafka_brokers;
  std::string kafka_topic;
  std::string kafka_group;
  // events.kafka.session_timeout_ms: how long the group waits for a member that stopped without
  // leaving (a SIGKILLed ferryd) before its partitions move (1,000 to 3,600,000; 10,000).
  int64_t kafka_session_timeout_ms = 10000;
  // objects.peer_bucket. Required. (Not `peer`: that is the engine's top-level key.)
  ObjectsPeerConfig peer;
};

class ObjectsConfigSection final : public config::ConnectorSection {
 public:
  absl::string_view name() const override { return "objects"; }
  std::vector<std::string> keys() const override;
  [[nodiscard]] absl::Status Read(const config::Section& section,
                                  const config::ConnectorContext& context) override;

  // Whether the file had an `objects:` section (the object path runs only then).
  bool present() const { return present_; }
  const ObjectsConfig& config() const { return config_; }

 private:
  bool present_ = false;
  ObjectsConfig config_;
};

}  // namespace ferry::s3
