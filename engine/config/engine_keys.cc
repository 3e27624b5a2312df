#include "engine/config/engine_keys.h"

#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/base/status_macros.h"
#include "engine/config/bounded_file.h"
#include "engine/config/limits.h"

namespace ferry::config {

template <>
struct EnumNames<Role> {
  static constexpr const auto& kValues = kAllRoles;  // engine/base/role.h
  static absl::string_view Name(Role role) {
    const std::string_view name = RoleName(role);
    return absl::string_view(name.data(), name.size());
  }
};

template <>
struct EnumNames<LogLevel> {
  static constexpr LogLevel kValues[] = {LogLevel::kTrace, LogLevel::kDebug, LogLevel::kInfo,
                                         LogLevel::kWarn, LogLevel::kError};
  static absl::string_view Name(LogLevel level) {
    const std::string_view name = LogLevelName(level);
    return absl::string_view(name.data(), name.size());
  }
};

template <>
struct EnumNames<LogFormat> {
  static constexpr LogFormat kValues[] = {LogFormat::kText, LogFormat::kJson};
  static absl::string_view Name(LogFormat format) {
    const std::string_view name = LogFormatName(format);
    return absl::string_view(name.data(), name.size());
  }
};

template <>
struct EnumNames<ConflictPolicy> {
  static constexpr ConflictPolicy kValues[] = {ConflictPolicy::kStopTable,
                                               ConflictPolicy::kApplyRemote};
  static absl::string_view Name(ConflictPolicy policy) {
    const std::string_view name = ConflictPolicyName(policy);
    return absl::string_view(name.data(), name.size());
  }
};

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return "trace";
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "?";
}

std::string_view LogFormatName(LogFormat format) {
  switch (format) {
    case LogFormat::kText:
      return "text";
    case LogFormat::kJson:
      return "json";
  }
  return "?";
}

std::string_view ConflictPolicyName(ConflictPolicy policy) {
  switch (policy) {
    case ConflictPolicy::kStopTable:
      return "stop";
    case ConflictPolicy::kApplyRemote:
      return "apply_remote";
  }
  return "?";
}

namespace {

bool IsLowerOrDigit(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

absl::Status CheckRegion(absl::string_view s) {
  if (s.empty() || s.size() > 32 || !std::all_of(s.begin(), s.end(), [](char c) {
        return IsLowerOrDigit(c) || c == '_' || c == '-';
      })) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected 1-32 characters of [a-z0-9_-], got ", Quote(s)));
  }
  return absl::OkStatus();
}

constexpr Need kRequired = Need::kRequired;

// Every key of the engine, in the order of docs/config.md. Defaults are Config's initializers.
constexpr Key<Config> kKeys[] = {
    {{.name = "region", .need = kRequired, .check = CheckRegion}, Field<&Config::region>},
    {{.name = "data_dir", .need = kRequired, .check = CheckAbsolutePath, .quoted = true},
     Field<&Config::data_dir>},
    {{.name = "role", .need = kRequired}, Field<&Config::role>},
    {{.name = "log_level"}, Field<&Config::log_level>},

    {{.section = "listen", .name = "replication", .need = kRequired, .allow_port_0 = true},
     Field<&Config::listen, &ListenConfig::replication>},
    {{.section = "listen", .name = "admin", .allow_port_0 = true},
     Field<&Config::listen, &ListenConfig::admin>},
    {{.section = "listen", .name = "metrics", .allow_port_0 = true},
     Field<&Config::listen, &ListenConfig::metrics>},

    {{.section = "peer", .name = "replication", .need = kRequired},
     Field<&Config::peer, &PeerConfig::replication>},
    {{.section = "peer", .name = "region", .check = CheckRegion, .empty_text = "<not checked>"},
     Field<&Config::peer, &PeerConfig::region>},

    {{.section = "security", .name = "token"}, Field<&Config::security, &SecurityConfig::token>},
    {{.section = "security", .name = "admin_token"},
     Field<&Config::security, &SecurityConfig::admin_token>},
    {{.section = "security.tls", .name = "cert_file", .check = CheckAbsolutePath, .quoted = true},
     Field<&Config::security, &SecurityConfig::tls, &TlsConfig::cert_file>},
    {{.section = "security.tls", .name = "key_file", .check = CheckAbsolutePath, .quoted = true},
     Field<&Config::security, &SecurityConfig::tls, &TlsConfig::key_file>},
    {{.section = "security.tls", .name = "ca_file", .check = CheckAbsolutePath, .quoted = true},
     Field<&Config::security, &SecurityConfig::tls, &TlsConfig::ca_file>},

    {{.section = "stream", .name = "compression_level", .min = 0, .max = 19},
     Field<&Config::stream, &StreamConfig::compression_level>},
    {{.section = "stream", .name = "window_bytes", .min = 64 << 10, .max = int64_t{64} << 30},
     Field<&Config::stream, &StreamConfig::window_bytes>},
    {{.section = "stream", .name = "max_batch_bytes", .min = 1 << 10, .max = int64_t{1} << 30},
     Field<&Config::stream, &StreamConfig::max_batch_bytes>},
    {{.section = "stream", .name = "max_message_bytes", .min = 64 << 10, .max = int64_t{1} << 30},
     Field<&Config::stream, &StreamConfig::max_message_bytes>},
    {{.section = "stream", .name = "reconnect_min_ms", .min = 1, .max = 3'600'000},
     Field<&Config::stream, &StreamConfig::reconnect_min_ms>},
    {{.section = "stream", .name = "reconnect_max_ms", .min = 1, .max = 3'600'000},
     Field<&Config::stream, &StreamConfig::reconnect_max_ms>},

    {{.section = "apply", .name = "workers", .min = 1, .max = 64},
     Field<&Config::apply, &ApplyConfig::workers>},
    {{.section = "apply", .name = "conflict_policy"},
     Field<&Config::apply, &ApplyConfig::conflict_policy>},
    {{.section = "apply", .name = "group_max_transactions", .min = 1, .max = 1'000'000},
     Field<&Config::apply, &ApplyConfig::group_max_transactions>},
    {{.section = "apply", .name = "group_max_bytes", .min = 1 << 10, .max = int64_t{1} << 30},
     Field<&Config::apply, &ApplyConfig::group_max_bytes>},
    {{.section = "apply", .name = "group_max_delay_ms", .min = 0, .max = 60'000},
     Field<&Config::apply, &ApplyConfig::group_max_delay_ms>},
    {{.section = "apply", .name = "synchronous_commit"},
     Field<&Config::apply, &ApplyConfig::synchronous_commit>},
    {{.section = "apply", .name = "durable_poll_ms", .min = 10, .max = 60'000},
     Field<&Config::apply, &ApplyConfig::durable_poll_ms>},
    {{.section = "apply", .name = "max_value_bytes", .min = 1 << 10, .max = int64_t{1} << 30},
     Field<&Config::apply, &ApplyConfig::max_value_bytes>},
    {{.section = "apply",
      .name = "stopped_table_retention_bytes",
      .min = 64 << 10,
      .max = int64_t{1} << 50},
     Field<&Config::apply, &ApplyConfig::stopped_table_retention_bytes>},

    {{.section = "failover", .name = "sequence_gap", .min = 0, .max = int64_t{1} << 40},
     Field<&Config::failover, &FailoverConfig::sequence_gap>},
    {{.section = "failover", .name = "self_fence_after_seconds", .min = 0, .max = 86400},
     Field<&Config::failover, &FailoverConfig::self_fence_after_seconds>},

    {{.section = "log", .name = "retention_bytes", .min = 0, .max = int64_t{1} << 50},
     Field<&Config::log, &DurableLogConfig::retention_bytes>},
    {{.section = "log", .name = "retention_seconds", .min = 0, .max = int64_t{30} * 86400},
     Field<&Config::log, &DurableLogConfig::retention_seconds>},
    {{.section = "log", .name = "format"}, Field<&Config::log_format>},
};

bool TlsShown(const Config& c) { return c.security.tls.enabled(); }

constexpr SectionDump<Config> kSectionDumps[] = {{"security.tls", TlsShown, "<off>"}};

// The fields of type T of one section, with their keys, in table order.
template <typename T>
std::vector<std::pair<absl::string_view, T*>> FieldsOf(Config& c, absl::string_view section) {
  std::vector<std::pair<absl::string_view, T*>> fields;
  for (const Key<Config>& key : kKeys) {
    if (key.info.section != section) continue;
    const FieldRef field = key.field(c);
    if (T* const* p = std::get_if<T*>(&field)) fields.emplace_back(key.info.name, *p);
  }
  return fields;
}

// Two listeners on one address would fail at bind (port 0 picks distinct ports).
absl::Status CheckListen(const Section& listen, Config& c) {
  const auto listeners = FieldsOf<HostPort>(c, "listen");
  for (size_t i = 0; i < listeners.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      const HostPort& address = *listeners[i].second;
      if (address.port != 0 && address == *listeners[j].second) {
        return listen.Error(listeners[i].first,
                            absl::StrCat("same address ", address.ToString(), " as 'listen.",
                                         listeners[j].first, "'"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPeer(const Section& peer, Config& c) {
  if (c.peer.region == c.region) {
    return peer.Error("region", absl::StrCat("must differ from 'region' (", c.region, ")"));
  }
  return absl::OkStatus();
}

// Mutual TLS needs all three files, and they must be readable now.
absl::Status CheckTls(const Section& tls, Config& c) {
  const auto files = FieldsOf<std::string>(c, "security.tls");
  const size_t set = std::count_if(files.begin(), files.end(),
                                   [](const auto& file) { return !file.second->empty(); });
  if (set == 0) return absl::OkStatus();
  for (const auto& [key, path] : files) {
    if (path->empty()) {
      return tls.Error(key,
                       "is required when any of cert_file, key_file, ca_file is set (mutual TLS "
                       "needs all three)");
    }
  }
  for (const auto& [key, path] : files) {
    FileInfo info;
    if (absl::Status st = ReadRegularFile(*path, kMaxSecretBytes, nullptr, &info); !st.ok()) {
      return tls.Error(key, absl::StrCat(*path, " ", st.message()));
    }
    if (key == "key_file" && (info.mode & (S_IRGRP | S_IROTH)) != 0) {
      tls.Warn(key, absl::StrCat("private key ", *path,
                                 " is readable by group or others; chmod 600 is recommended"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckStream(const Section& stream, Config& c) {
  const StreamConfig& st = c.stream;
  if (st.max_batch_bytes > st.max_message_bytes) {
    return stream.Error(
        "max_batch_bytes",
        absl::StrCat("must be <= stream.max_message_bytes (", FormatBytes(st.max_message_bytes),
                     "), got ", FormatBytes(st.max_batch_bytes)));
  }
  if (st.max_batch_bytes > st.window_bytes) {
    return stream.Error("max_batch_bytes", absl::StrCat("must be <= stream.window_bytes (",
                                                        FormatBytes(st.window_bytes), "), got ",
                                                        FormatBytes(st.max_batch_bytes)));
  }
  if (st.reconnect_min_ms > st.reconnect_max_ms) {
    return stream.Error("reconnect_min_ms",
                        absl::StrCat("must be <= stream.reconnect_max_ms (", st.reconnect_max_ms,
                                     "), got ", st.reconnect_min_ms));
  }
  return absl::OkStatus();
}

// Rules between the keys of one section, run once that section's keys are read.
struct SectionRule {
  absl::string_view path;
  absl::Status (*check)(const Section& section, Config& config);
};
constexpr SectionRule kRules[] = {{"listen", CheckListen},
                                  {"peer", CheckPeer},
                                  {"security.tls", CheckTls},
                                  {"stream", CheckStream}};

}  // namespace

std::span<const Key<Config>> EngineKeys() { return kKeys; }

std::span<const SectionDump<Config>> EngineSectionDumps() { return kSectionDumps; }

absl::Status ReadEngineTopLevel(const Section& top, Config* config) {
  return ReadSectionKeys<Config>(top, kKeys, "", config);
}

absl::Status ReadEngineSections(const Section& top, Config* config) {
  std::map<std::string, Section, std::less<>> opened = {{"", top}};
  for (absl::string_view path : SectionPaths<Config>(kKeys)) {
    if (path.empty()) continue;
    const size_t dot = path.rfind('.');
    const absl::string_view parent = dot == absl::string_view::npos ? "" : path.substr(0, dot);
    const absl::string_view name = dot == absl::string_view::npos ? path : path.substr(dot + 1);
    const auto parent_section = opened.find(parent);
    FERRY_ASSIGN_OR_RETURN(Section section,
                           parent_section->second.Child(name, KnownKeys<Config>(kKeys, path)));
    FERRY_RETURN_IF_ERROR(ReadSectionKeys<Config>(section, kKeys, path, config));
    for (const SectionRule& rule : kRules) {
      if (rule.path == path) FERRY_RETURN_IF_ERROR(rule.check(section, *config));
    }
    opened.emplace(std::string(path), std::move(section));
  }
  return absl::OkStatus();
}

void WarnAboutEngine(const Section& top, const Config& c) {
  if (!c.security.token.is_set()) {
    top.Warn("security.token_file",
             "no replication token (security.token_file or security.token_env): any client that "
             "reaches listen.replication can ship changes to this region");
  }
  if (!c.security.tls.enabled()) {
    top.Warn("security.tls",
             "not set: traffic between regions is neither encrypted nor authenticated");
  }
  if (!c.security.admin_token.is_set() && !IsLoopbackHost(c.listen.admin.host)) {
    top.Warn("security.admin_token_file",
             absl::StrCat("no admin token, and listen.admin (", c.listen.admin.ToString(),
                          ") is not a loopback address: anyone who reaches it can pause, reverse "
                          "or promote this region"));
  }
}

}  // namespace ferry::config
