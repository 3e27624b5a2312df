// ferry::config: the YAML configuration of one `ferryd` (one region's sidecar).
//
// LoadConfigFile() reads, parses and validates the whole file once, at start; the Config it
// returns is plain data that the rest of the engine treats as const. Every key, type, default
// and rule is documented in docs/config.md. Connectors' sections (`postgres:`) belong to the
// connectors: the program that links them declares them in LoadOptions, and each reads its own
// during the same load (connector_section.h). In short:
//
//   * Every value is validated (type, range, format, cross-key rules). The first problem found
//     is returned as kInvalidArgument whose message names the file, the key path and the reason,
//     e.g. `config /etc/ferry/east.yaml: key 'listen.admin': expected HOST:PORT, got "7400"
//     (line 9, column 10)`.
//   * Unknown keys are errors, with a "did you mean" suggestion for near misses: a typo in a
//     replication config must never be silently ignored.
//   * Secrets (the replication and admin tokens, a connector's password) come from files or
//     from environment variables named in the config, are read at load time, and are never
//     printed: DebugString() masks them.
//   * Hostile input is refused without hanging or exhausting memory: files over 1 MiB, more
//     than 256 '[' / '{' (yaml-cpp queues an open flow collection's tokens), more than
//     kMaxConfigNodes YAML nodes, nesting deeper than 32, several documents. Alias expansion
//     ("billion laughs") cannot multiply work: aliases are shared and every value is
//     type-checked before it is walked.
//   * No exception escapes: yaml-cpp's are caught here and turned into statuses (syntax errors
//     carry their line and column).
//
// Example (ferryd; `source_section` is a connector's ConnectorSection):
//   FERRY_ASSIGN_OR_RETURN(ferry::config::Config config,
//                          ferry::config::LoadConfigFile("/etc/ferry/east.yaml",
//                                                        {.connectors = {&source_section}}));
//   for (const std::string& w : config.warnings) LOG(WARNING) << w;
//   LOG(INFO) << config.DebugString();   // secrets masked
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/api/sink.h"
#include "engine/base/role.h"
#include "engine/config/connector_section.h"  // IWYU pragma: export
#include "engine/config/limits.h"             // IWYU pragma: export
#include "engine/config/secret.h"             // IWYU pragma: export
#include "engine/config/value_parsers.h"      // IWYU pragma: export

namespace ferry::config {

using ::ferry::ConflictPolicy;  // engine/api/sink.h: the apply engine's own enum
using ::ferry::Role;
using ::ferry::RoleName;
enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };
// ferryd's own log lines: readable text, or one JSON object a line (for log shippers).
enum class LogFormat { kText, kJson };

std::string_view LogLevelName(LogLevel level);     // "trace" ... "error"
std::string_view LogFormatName(LogFormat format);  // "text" | "json"
// The config's spelling of a conflict policy: "stop" (kStopTable) | "apply_remote".
std::string_view ConflictPolicyName(ConflictPolicy policy);

// The sections. A field's default is its initializer here; its key, kind, accepted range and
// check are written once, in the key table (engine_keys.cc), which docs/config.md documents.
// The comments below say what a field means and the rules between fields.

struct ListenConfig {
  // Where the peer connects to ship changes to this region. Required.
  HostPort replication;
  // gRPC admin service (ferryctl).
  HostPort admin{"127.0.0.1", 7400};
  // Prometheus /metrics.
  HostPort metrics{"127.0.0.1", 9400};
};

struct PeerConfig {
  // The peer region's replication listener. Required; port 0 is refused.
  HostPort replication;
  // Expected name of the peer region, checked at handshake when set. Empty: not checked.
  std::string region;
};

struct TlsConfig {
  // Mutual TLS between regions: all three absolute paths, or none. Files must exist and be
  // readable at load time; the transport reads their contents.
  std::string cert_file;
  std::string key_file;
  std::string ca_file;

  bool enabled() const { return !cert_file.empty(); }
};

struct SecurityConfig {
  // Shared replication token both regions present at handshake (token_file / token_env).
  // Unset is allowed but produces a warning.
  Secret token;
  // Token ferryctl must present to the admin service (admin_token_file / admin_token_env).
  Secret admin_token;
  TlsConfig tls;
};

struct StreamConfig {
  // zstd level for batches on the wire; 0 = off.
  int compression_level = 3;
  // Unacknowledged bytes in flight to the peer; >= max_batch_bytes.
  uint64_t window_bytes = 64ull << 20;
  // Target size of one shipped batch; <= max_message_bytes and <= window_bytes.
  uint64_t max_batch_bytes = 4ull << 20;
  // Largest stream message sent or accepted; larger incoming messages are refused.
  uint64_t max_message_bytes = 16ull << 20;
  // Reconnect backoff: starts at min, doubles up to max. min <= max.
  int64_t reconnect_min_ms = 100;
  int64_t reconnect_max_ms = 30'000;
};

struct ApplyConfig {
  // Parallel apply connections to the target database.
  int workers = 4;
  // What apply does when a change conflicts with the target (row missing, key exists):
  // kStopTable stops the table at that position; kApplyRemote makes the target match the
  // source. Handed to the sink as it is.
  ConflictPolicy conflict_policy = ConflictPolicy::kStopTable;
  // A target transaction groups source transactions until one of these limits is reached.
  int64_t group_max_transactions = 1000;
  uint64_t group_max_bytes = 16ull << 20;
  int64_t group_max_delay_ms = 20;
  // false: the target commits asynchronously (synchronous_commit = off, as native
  // subscriptions do) and the inbound log is kept until the target has flushed; true: every
  // apply commit waits for the target's WAL flush.
  bool synchronous_commit = false;
  // How often apply reads how far the target holds its commits durably (a query that also
  // flushes the target's WAL that far): the inbound log is trimmed below it, and an idle apply
  // notices there that the target's database crashed. A promote or a switchover reads it at
  // once.
  int64_t durable_poll_ms = 200;
  // A single column value larger than this stops its table (it protects ferryd's memory and
  // the target).
  uint64_t max_value_bytes = 32ull << 20;
  // A stopped table keeps at most this much inbound log (from its stop to apply's progress)
  // from being trimmed; past it the table needs a re-snapshot and the log is trimmed again.
  uint64_t stopped_table_retention_bytes = 1ull << 30;
};

struct FailoverConfig {
  // A promote sets every sequence of the new primary this many increments past the last value
  // the stream carried (the old primary may have handed out more since its last report).
  int64_t sequence_gap = 100000;
  // A primary that has not reached its peer for this long fences its own database (bounding
  // writes during a partition in which the peer may be promoted). 0: never (the default).
  int64_t self_fence_after_seconds = 0;
};

struct DurableLogConfig {
  // Acknowledged records are kept until they are older than retention_seconds or the kept
  // acknowledged bytes exceed retention_bytes, whichever comes first. 0 = trim as soon as
  // acknowledged. Unacknowledged records are never trimmed.
  uint64_t retention_bytes = 1ull << 30;
  int64_t retention_seconds = 3600;
};

struct Config {
  // This region's name. Required.
  std::string region;
  // Absolute path of the durable log and region state. Required; created by ferryd if missing.
  std::string data_dir;
  // Initial role only: after the first start the persisted role wins. Required.
  Role role = Role::kStandby;
  LogLevel log_level = LogLevel::kInfo;
  // Key log.format: the format of ferryd's own log lines (the `log` section is otherwise the
  // durable log's).
  LogFormat log_format = LogFormat::kText;
  ListenConfig listen;
  PeerConfig peer;
  SecurityConfig security;
  StreamConfig stream;
  ApplyConfig apply;
  FailoverConfig failover;
  DurableLogConfig log;

  // Not configuration: where it came from (the path or source name), and the warnings found
  // while loading (no replication token, secret file readable by others...). The caller logs
  // the warnings; none of them contains a secret.
  std::string source;
  std::vector<std::string> warnings;

  // The effective configuration as YAML-like text, every value shown except secrets, which
  // appear as "<secret from SOURCE>" or "<unset>". Safe to log.
  std::string DebugString() const;
};

// How a load treats connector sections (connector_section.h).
struct LoadOptions {
  // The connector sections this program reads (ferryd: every connector it links), read right
  // after the top-level values, in this order. Not owned; must outlive the call.
  std::vector<ConnectorSection*> connectors;
  // A top-level map that is neither the engine's nor one of `connectors`: refused as an unknown
  // key (kRefuse, what ferryd does), or skipped unread (kSkip: a program that reads only the
  // engine's part of a ferryd config, such as the engine's own tests).
  enum class OtherSections { kRefuse, kSkip };
  OtherSections other_sections = OtherSections::kRefuse;
};

// Reads and validates the config file at `path`. Errors (kInvalidArgument) name the file:
// missing or unreadable file (with the OS error), not a regular file, over kMaxConfigBytes,
// YAML syntax (line and column), or any invalid value (key path and reason), in a connector's
// section too. kInternal when a connector section is declared twice or under an engine key.
// Secrets named by the config are read from the environment (getenv) and the file system; call
// it before starting threads that modify the environment.
[[nodiscard]] absl::StatusOr<Config> LoadConfigFile(const std::string& path,
                                                    const LoadOptions& options);

// As LoadConfigFile, on text already in memory; `source_name` stands for the file in messages.
[[nodiscard]] absl::StatusOr<Config> ParseConfig(std::string_view yaml_text,
                                                 std::string_view source_name,
                                                 const LoadOptions& options);

// The engine's part only: as above with no connector and other sections skipped.
[[nodiscard]] absl::StatusOr<Config> LoadConfigFile(const std::string& path);
[[nodiscard]] absl::StatusOr<Config> ParseConfig(std::string_view yaml_text,
                                                 std::string_view source_name);

}  // namespace ferry::config
