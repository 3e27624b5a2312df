#include "connectors/postgres/common/postgres_config.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "connectors/postgres/common/pg_connection.h"
#include "engine/base/status_macros.h"
#include "engine/config/key_table.h"
#include "engine/config/value_parsers.h"

namespace ferry::config {

template <>
struct EnumNames<pg::KeylessTablePolicy> {
  static constexpr pg::KeylessTablePolicy kValues[] = {pg::KeylessTablePolicy::kReplicaIdentityFull,
                                                       pg::KeylessTablePolicy::kRefuse};
  static absl::string_view Name(pg::KeylessTablePolicy policy) {
    const std::string_view name = pg::KeylessTablePolicyName(policy);
    return absl::string_view(name.data(), name.size());
  }
};

}  // namespace ferry::config

namespace ferry::pg {

std::string_view KeylessTablePolicyName(KeylessTablePolicy policy) {
  switch (policy) {
    case KeylessTablePolicy::kReplicaIdentityFull:
      return "replica_identity_full";
    case KeylessTablePolicy::kRefuse:
      return "refuse";
  }
  return "replica_identity_full";
}
namespace {

using config::Field;
using config::Key;
using config::Quote;

bool IsLowerOrDigit(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// A lower-case unquoted Postgres identifier: [a-z_][a-z0-9_$]*, 1..63 bytes. Quoting is never
// needed for such names, so the connector can splice them into SQL safely.
bool IsLowerIdentifier(absl::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z'))) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsLowerOrDigit(c) || c == '_' || c == '$'; });
}

absl::Status CheckPublication(absl::string_view s) {
  if (!IsLowerIdentifier(s)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected a lower-case Postgres identifier [a-z_][a-z0-9_$]* of at most 63 bytes, got ",
        Quote(s)));
  }
  return absl::OkStatus();
}

absl::Status CheckSlot(absl::string_view s) {
  if (s.empty() || s.size() > 63 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return IsLowerOrDigit(c) || c == '_'; })) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected a replication slot name of 1-63 characters [a-z0-9_], got ", Quote(s)));
  }
  return absl::OkStatus();
}

absl::Status CheckTable(absl::string_view s) {
  const size_t dot = s.find('.');
  if (dot == absl::string_view::npos || !IsLowerIdentifier(s.substr(0, dot)) ||
      !IsLowerIdentifier(s.substr(dot + 1))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected \"schema.table\" of lower-case Postgres identifiers, got ", Quote(s)));
  }
  return absl::OkStatus();
}

// The DSN is never repeated in messages: it may hold credentials.
absl::Status CheckDsn(absl::string_view s) {
  constexpr absl::string_view kNoPassword =
      "must not contain a password; name a file in 'postgres.password_file' or a variable in "
      "'postgres.password_env' instead";
  if (absl::StripAsciiWhitespace(s).empty()) {
    return absl::InvalidArgumentError("expected a libpq connection string, got an empty string");
  }
  if (absl::StartsWith(s, "postgresql://") || absl::StartsWith(s, "postgres://")) {
    // As libpq reads it: `user:secret@`, `?password=` and a percent-encoded `%70assword=` all
    // set the password key. libpq's own error would quote the URI: not passed on.
    auto keys = pg::DsnKeys(std::string(s));
    if (!keys.ok()) {
      return absl::InvalidArgumentError(
          "malformed libpq connection URI (the value is not shown: it may hold credentials)");
    }
    for (const auto& [key, value] : *keys) {
      if (key == "password") return absl::InvalidArgumentError(kNoPassword);
    }
    return absl::OkStatus();
  }
  // Keyword form: keyword = value pairs separated by whitespace; a value is unquoted (ends at
  // whitespace) or single-quoted; a backslash escapes the next character in either.
  const auto malformed = [](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed libpq connection string: ", why,
                     " (the value is not shown: it may hold credentials)"));
  };
  const auto is_space = [](char c) { return absl::ascii_isspace(static_cast<unsigned char>(c)); };
  size_t i = 0;
  while (true) {
    while (i < s.size() && is_space(s[i])) ++i;
    if (i == s.size()) break;
    const size_t key_start = i;
    while (i < s.size() && (absl::ascii_isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) {
      ++i;
    }
    absl::string_view keyword = s.substr(key_start, i - key_start);
    while (i < s.size() && is_space(s[i])) ++i;
    if (keyword.empty() || i == s.size() || s[i] != '=') {
      return malformed("expected keyword=value pairs");
    }
    ++i;
    while (i < s.size() && is_space(s[i])) ++i;
    if (i < s.size() && s[i] == '\'') {
      ++i;
      while (i < s.size() && s[i] != '\'') i += (s[i] == '\\') ? 2 : 1;
      if (i >= s.size()) return malformed("unterminated quoted value");
      ++i;
    } else {
      while (i < s.size() && !is_space(s[i])) i += (s[i] == '\\') ? 2 : 1;
      i = std::min(i, s.size());
    }
    if (absl::AsciiStrToLower(keyword) == "password") {
      return absl::InvalidArgumentError(kNoPassword);
    }
  }
  return absl::OkStatus();
}

// Every key of the section, in the order of docs/config.md. Defaults are PostgresConfig's
// initializers, and the slot's is set from the region before the keys are read.
constexpr Key<PostgresConfig> kKeys[] = {
    {{.name = "dsn", .need = config::Need::kRequired, .check = CheckDsn, .quoted = true},
     Field<&PostgresConfig::dsn>},
    {{.name = "password"}, Field<&PostgresConfig::password>},
    {{.name = "publication", .check = CheckPublication}, Field<&PostgresConfig::publication>},
    {{.name = "slot", .check = CheckSlot}, Field<&PostgresConfig::slot>},
    {{.name = "tables",
      .list = {.item = "\"schema.table\"", .item_noun = "table", .check = CheckTable}},
     Field<&PostgresConfig::tables>},
    {{.name = "snapshot"}, Field<&PostgresConfig::snapshot>},
    {{.name = "keyless_tables"}, Field<&PostgresConfig::keyless_tables>},
    {{.name = "commit_delay_us", .min = 0, .max = 100'000},
     Field<&PostgresConfig::commit_delay_us>},
    {{.name = "commit_siblings", .min = 0, .max = 10'000}, Field<&PostgresConfig::commit_siblings>},
};

}  // namespace

std::string PostgresConfig::ConnectionString() const {
  // ferryd's connections add keys of their own (application_name, the fence's timeouts, the
  // password below): a URI becomes key=value first, or they would be read as part of it. One
  // that libpq cannot parse (the config refuses it; a caller may build one) gets no password:
  // libpq's error about it quotes the whole string.
  std::string out = dsn;
  if (absl::StartsWith(dsn, "postgresql://") || absl::StartsWith(dsn, "postgres://")) {
    absl::StatusOr<std::string> keywords = pg::KeywordDsn(dsn);
    if (!keywords.ok()) return dsn;
    out = *std::move(keywords);
  }
  if (!password.is_set()) return out;
  return absl::StrCat(out, " password=", pg::QuoteConninfoValue(password.value));
}

std::string PostgresConfig::DebugString() const {
  std::string out = "postgres:\n";
  config::DumpKeys<PostgresConfig>(kKeys, {}, *this, 2, &out);
  return out;
}

std::string DefaultSlotName(absl::string_view region) {
  std::string slot = absl::StrCat("ferry_", region);
  std::replace(slot.begin(), slot.end(), '-', '_');
  return slot;
}

std::vector<std::string> PostgresConfigSection::keys() const {
  return config::KnownKeys<PostgresConfig>(kKeys, "");
}

absl::Status PostgresConfigSection::Read(const config::Section& section,
                                         const config::ConnectorContext& context) {
  PostgresConfig c;
  c.slot = DefaultSlotName(context.region);
  present_ = false;
  bool any = false;
  for (const std::string& key : keys()) any = any || section.Has(key);
  if (!any) {  // no postgres: section (or an empty one): no database
    config_ = std::move(c);
    return absl::OkStatus();
  }
  FERRY_RETURN_IF_ERROR(config::ReadSectionKeys<PostgresConfig>(section, kKeys, "", &c));
  config_ = std::move(c);
  present_ = true;
  return absl::OkStatus();
}

}  // namespace ferry::pg
