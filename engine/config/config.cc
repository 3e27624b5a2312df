// Parsing and validation of ferryd's YAML config. See config.h for the contract and
// docs/config.md for every key.
//
// Map of this file:
//   1. Text helpers (quoting values for messages, identifiers, edit distance).
//   2. ParseHostPort, ParseByteSize, enum names.
//   3. File reading with a size cap (config file, secret files, TLS files).
//   4. NodeBudget: a yaml-cpp event pass that bounds node count, nesting and documents before
//      any tree is built, so hostile input cannot exhaust memory.
//   5. Loader: walks the tree section by section. Each section first checks its keys (unknown or
//      duplicate keys are errors), then each value is read by a typed getter and validated; the
//      first problem is returned. Cross-key rules and warnings come last.
//   6. Config::DebugString, LoadConfigFile, ParseConfig (the exception edge).
#include "engine/config/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/anchor.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <functional>
#include <limits>
#include <new>
#include <optional>
#include <span>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "engine/base/status_macros.h"

namespace ferry::config {
namespace {

// ---------------------------------------------------------------------------------------------
// 1. Text helpers.

// How much of a user-supplied value an error message repeats.
constexpr size_t kMaxQuotedBytes = 64;

// `text` as a double-quoted, C-escaped string, truncated for messages: binary garbage and
// megabyte values stay readable and short.
std::string Quote(absl::string_view text) {
  if (text.size() <= kMaxQuotedBytes) return absl::StrCat("\"", absl::CEscape(text), "\"");
  return absl::StrCat("\"", absl::CEscape(text.substr(0, kMaxQuotedBytes)), "\"... (", text.size(),
                      " bytes)");
}

// A key as written by the user, for messages: escaped and truncated.
std::string PrintableKey(absl::string_view key) {
  if (key.size() <= kMaxQuotedBytes) return absl::CEscape(key);
  return absl::StrCat(absl::CEscape(key.substr(0, kMaxQuotedBytes)), "...");
}

std::string JoinPath(absl::string_view parent, absl::string_view key) {
  return parent.empty() ? std::string(key) : absl::StrCat(parent, ".", key);
}

bool IsLowerOrDigit(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// A lower-case unquoted Postgres identifier: [a-z_][a-z0-9_$]*, 1..63 bytes. Quoting is never
// needed for such names, so the engine can splice them into SQL safely.
bool IsLowerIdentifier(absl::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z'))) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsLowerOrDigit(c) || c == '_' || c == '$'; });
}

// Levenshtein distance, for "did you mean". Inputs are short (callers bound them).
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string FormatBytes(uint64_t n) {
  static constexpr std::pair<uint64_t, absl::string_view> kUnits[] = {
      {1ull << 40, "TiB"}, {1ull << 30, "GiB"}, {1ull << 20, "MiB"}, {1ull << 10, "KiB"}};
  for (const auto& [size, unit] : kUnits) {
    if (n != 0 && n % size == 0) return absl::StrCat(n / size, unit);
  }
  return absl::StrCat(n);
}

bool IsLoopbackHost(absl::string_view host) {
  return host == "localhost" || absl::StartsWith(host, "127.") || host == "::1";
}

// ---------------------------------------------------------------------------------------------
// 2. Host names and addresses.

// Dotted-quad IPv4: four decimal octets 0-255 without leading zeros.
bool IsIPv4(absl::string_view s) {
  int parts = 0;
  size_t i = 0;
  while (true) {
    size_t start = i;
    while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) ++i;
    const size_t len = i - start;
    if (len == 0 || len > 3 || (len > 1 && s[start] == '0')) return false;
    int value = 0;
    for (size_t k = start; k < i; ++k) value = value * 10 + (s[k] - '0');
    if (value > 255) return false;
    ++parts;
    if (i == s.size()) return parts == 4;
    if (s[i] != '.' || parts == 4) return false;
    ++i;
  }
}

// A DNS host name: dot-separated labels of [A-Za-z0-9_-], 1..63 bytes, not starting or ending
// with '-'; 253 bytes at most; one trailing dot allowed. ('_' is not RFC 1123 but appears in
// container service names, and resolvers accept it.)
bool IsHostName(absl::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('.', start);
    if (end == absl::string_view::npos) end = s.size();
    absl::string_view label = s.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
        return false;
      }
    }
    start = end + 1;
  }
  return true;
}

absl::Status HostPortError(absl::string_view text) {
  return absl::InvalidArgumentError(absl::StrCat("expected HOST:PORT, got ", Quote(text)));
}

// Strict non-negative decimal integer of at most `max_digits` digits.
std::optional<uint64_t> ParseDigits(absl::string_view s, size_t max_digits) {
  if (s.empty() || s.size() > max_digits) return std::nullopt;
  uint64_t value = 0;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

}  // namespace

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<HostPort> ParseHostPort(std::string_view std_text) {
  const absl::string_view text(std_text.data(), std_text.size());
  if (text.size() > 300) return HostPortError(text);
  HostPort result;
  absl::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return HostPortError(text);
    }
    std::string host(text.substr(1, close - 1));
    in6_addr addr;
    if (host.empty() || inet_pton(AF_INET6, host.c_str(), &addr) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid IPv6 address ", Quote(host), " in ", Quote(text)));
    }
    result.host = std::move(host);
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) return HostPortError(text);
    absl::string_view host = text.substr(0, colon);
    if (host.find(':') != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected HOST:PORT, got ", Quote(text),
                       " (put an IPv6 address in brackets: [::1]:7401)"));
    }
    if (host.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected HOST:PORT, got ", Quote(text),
                       " (the host is empty; use 0.0.0.0 or [::] for every address)"));
    }
    const bool looks_numeric = std::all_of(host.begin(), host.end(), [](char c) {
      return c == '.' || absl::ascii_isdigit(static_cast<unsigned char>(c));
    });
    if (looks_numeric ? !IsIPv4(host) : !IsHostName(host)) {
      return absl::InvalidArgumentError(
          absl::StrCat(looks_numeric ? "invalid IPv4 address " : "invalid host name ", Quote(host),
                       " in ", Quote(text)));
    }
    result.host = std::string(host);
    port_text = text.substr(colon + 1);
  }
  const std::optional<uint64_t> port = ParseDigits(port_text, 5);
  if (!port.has_value() || *port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port must be a number 0-65535, got ", Quote(port_text), " in ", Quote(text)));
  }
  result.port = static_cast<uint16_t>(*port);
  return result;
}

absl::StatusOr<uint64_t> ParseByteSize(std::string_view std_text) {
  const absl::string_view text(std_text.data(), std_text.size());
  const auto expected = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected a byte size such as 65536, 512KiB, 64MiB or 1GiB, got ", Quote(text)));
  };
  if (!text.empty() && text.front() == '-') {
    return absl::InvalidArgumentError(absl::StrCat("must not be negative, got ", Quote(text)));
  }
  size_t digits_end = 0;
  while (digits_end < text.size() &&
         absl::ascii_isdigit(static_cast<unsigned char>(text[digits_end]))) {
    ++digits_end;
  }
  if (digits_end == 0) return expected();
  absl::string_view digits = text.substr(0, digits_end);
  absl::string_view unit = absl::StripLeadingAsciiWhitespace(text.substr(digits_end));
  if (!unit.empty() && (unit.front() == '.' || unit.front() == ',')) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fractions are not allowed (use a smaller unit, e.g. 1536MiB), got ", Quote(text)));
  }
  const std::string lower = absl::AsciiStrToLower(unit);
  uint64_t multiplier = 0;
  if (lower.empty() || lower == "b") {
    multiplier = 1;
  } else if (lower == "kib") {
    multiplier = 1ull << 10;
  } else if (lower == "mib") {
    multiplier = 1ull << 20;
  } else if (lower == "gib") {
    multiplier = 1ull << 30;
  } else if (lower == "tib") {
    multiplier = 1ull << 40;
  } else if (lower == "k" || lower == "kb" || lower == "m" || lower == "mb" || lower == "g" ||
             lower == "gb" || lower == "t" || lower == "tb") {
    return absl::InvalidArgumentError(
        absl::StrCat("ambiguous unit ", Quote(unit),
                     ": units are powers of 1024, write KiB, MiB, GiB or TiB; got ", Quote(text)));
  } else {
    return expected();
  }
  // 20 digits can exceed 2^64; check the multiplication too.
  const std::optional<uint64_t> value = ParseDigits(digits, 19);
  if (!value.has_value() || *value > std::numeric_limits<uint64_t>::max() / multiplier) {
    return absl::InvalidArgumentError(absl::StrCat("byte size too large, got ", Quote(text)));
  }
  return *value * multiplier;
}

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

// ---------------------------------------------------------------------------------------------
// 3. Reading small files.

struct FileInfo {
  mode_t mode = 0;
};

// Opens `path` (which must be a regular file no larger than `limit` bytes) and, when `content`
// is not null, reads it into *content. On failure returns kInvalidArgument with the reason
// only ("cannot open: No such file or directory"), for the caller to prefix.
absl::Status ReadRegularFile(const std::string& path, size_t limit, std::string* content,
                             FileInfo* info) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; regular files ignore it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open: ", std::generic_category().message(errno)));
  }
  absl::Status status;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    status = absl::InvalidArgumentError(
        absl::StrCat("cannot stat: ", std::generic_category().message(errno)));
  } else if (!S_ISREG(st.st_mode)) {
    status = absl::InvalidArgumentError(S_ISDIR(st.st_mode) ? "is a directory, not a file"
                                                            : "is not a regular file");
  } else if (static_cast<uint64_t>(st.st_size) > limit) {
    status = absl::InvalidArgumentError(
        absl::StrCat("is ", st.st_size, " bytes, over the ", FormatBytes(limit), " limit"));
  } else {
    if (info != nullptr) info->mode = st.st_mode;
    if (content != nullptr) {
      // Read at most limit + 1 bytes: the file may grow between fstat and read.
      content->clear();
      char buffer[16384];
      while (status.ok()) {
        const ssize_t n = ::read(fd, buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          status = absl::InvalidArgumentError(
              absl::StrCat("cannot read: ", std::generic_category().message(errno)));
        } else if (n == 0) {
          break;
        } else {
          content->append(buffer, static_cast<size_t>(n));
          if (content->size() > limit) {
            status = absl::InvalidArgumentError(
                absl::StrCat("is over the ", FormatBytes(limit), " limit"));
          }
        }
      }
    }
  }
  ::close(fd);
  return status;
}

// ---------------------------------------------------------------------------------------------
// 4. NodeBudget: the event pass.

constexpr int kMaxNesting = 32;
constexpr size_t kMaxFlowOpenings = 256;

// Thrown from inside yaml-cpp's parser by NodeBudget; caught in ParseText.
struct BudgetExceeded {
  std::string reason;
  YAML::Mark mark;
};

// Counts nodes, nesting and documents as yaml-cpp parses, throwing BudgetExceeded as soon as a
// limit is passed. No tree is built, so memory stays bounded by the parser's own state.
class NodeBudget final : public YAML::EventHandler {
 public:
  int documents() const { return documents_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > 1) {
      throw BudgetExceeded{"holds more than one YAML document ('---'); expected exactly one", mark};
    }
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Count(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Count(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Count(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Open(mark);
  }
  void OnSequenceEnd() override { --depth_; }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Open(mark);
  }
  void OnMapEnd() override { --depth_; }

 private:
  void Count(const YAML::Mark& mark) {
    if (++nodes_ > kMaxConfigNodes) {
      throw BudgetExceeded{absl::StrCat("has more than ", kMaxConfigNodes, " YAML nodes"), mark};
    }
  }
  void Open(const YAML::Mark& mark) {
    Count(mark);
    if (++depth_ > kMaxNesting) {
      throw BudgetExceeded{absl::StrCat("nests maps or lists deeper than ", kMaxNesting, " levels"),
                           mark};
    }
  }

  size_t nodes_ = 0;
  int depth_ = 0;
  int documents_ = 0;
};

std::string AtLine(const YAML::Mark& mark) {
  if (mark.is_null()) return "";
  return absl::StrCat(" at line ", mark.line + 1, ", column ", mark.column + 1);
}

// ---------------------------------------------------------------------------------------------
// 5. Loader.

// The known keys of each section; the order is the order of docs/config.md.
constexpr absl::string_view kTopKeys[] = {"region",   "data_dir", "role", "log_level",
                                          "postgres", "listen",   "peer", "security",
                                          "stream",   "apply",    "log"};
constexpr absl::string_view kPostgresKeys[] = {
    "dsn", "password_file", "password_env", "publication", "slot", "tables", "snapshot"};
constexpr absl::string_view kListenKeys[] = {"replication", "admin", "metrics"};
constexpr absl::string_view kPeerKeys[] = {"replication", "region"};
constexpr absl::string_view kSecurityKeys[] = {"token_file", "token_env", "admin_token_file",
                                               "admin_token_env", "tls"};
constexpr absl::string_view kTlsKeys[] = {"cert_file", "key_file", "ca_file"};
constexpr absl::string_view kStreamKeys[] = {"compression_level", "window_bytes",
                                             "max_batch_bytes",   "max_message_bytes",
                                             "reconnect_min_ms",  "reconnect_max_ms"};
constexpr absl::string_view kApplyKeys[] = {
    "workers",         "conflict_policy",    "group_max_transactions",
    "group_max_bytes", "group_max_delay_ms", "synchronous_commit",
    "max_value_bytes"};
constexpr absl::string_view kLogKeys[] = {"retention_bytes", "retention_seconds"};

struct SectionSchema {
  absl::string_view path;
  std::span<const absl::string_view> keys;
};
constexpr SectionSchema kSchema[] = {
    {"", kTopKeys},          {"postgres", kPostgresKeys}, {"listen", kListenKeys},
    {"peer", kPeerKeys},     {"security", kSecurityKeys}, {"security.tls", kTlsKeys},
    {"stream", kStreamKeys}, {"apply", kApplyKeys},       {"log", kLogKeys}};

template <typename E>
struct EnumName {
  absl::string_view name;
  E value;
};
constexpr EnumName<Role> kRoles[] = {{"primary", Role::kPrimary}, {"standby", Role::kStandby}};
constexpr EnumName<LogLevel> kLogLevels[] = {{"trace", LogLevel::kTrace},
                                             {"debug", LogLevel::kDebug},
                                             {"info", LogLevel::kInfo},
                                             {"warn", LogLevel::kWarn},
                                             {"error", LogLevel::kError}};
constexpr EnumName<ConflictPolicy> kConflictPolicies[] = {
    {"stop", ConflictPolicy::kStopTable}, {"apply_remote", ConflictPolicy::kApplyRemote}};

// Validators return kInvalidArgument with the reason only, or OK.
using Check = std::function<absl::Status(absl::string_view)>;

absl::Status CheckRegion(absl::string_view s) {
  if (s.empty() || s.size() > 32 || !std::all_of(s.begin(), s.end(), [](char c) {
        return IsLowerOrDigit(c) || c == '_' || c == '-';
      })) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected 1-32 characters of [a-z0-9_-], got ", Quote(s)));
  }
  return absl::OkStatus();
}

absl::Status CheckAbsolutePath(absl::string_view s) {
  if (s.empty() || s.front() != '/') {
    return absl::InvalidArgumentError(absl::StrCat("expected an absolute path, got ", Quote(s)));
  }
  return absl::OkStatus();
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

absl::Status CheckEnvName(absl::string_view s) {
  if (s.empty() || s.size() > 255 || absl::ascii_isdigit(static_cast<unsigned char>(s[0])) ||
      !std::all_of(s.begin(), s.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
      })) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected an environment variable name [A-Za-z_][A-Za-z0-9_]*, got ", Quote(s)));
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
    absl::string_view rest = s.substr(s.find("://") + 3);
    const size_t authority_end = rest.find_first_of("/?#");
    absl::string_view authority = rest.substr(0, authority_end);
    const size_t at = authority.rfind('@');
    if (at != absl::string_view::npos &&
        authority.substr(0, at).find(':') != absl::string_view::npos) {
      return absl::InvalidArgumentError(kNoPassword);
    }
    const size_t query = rest.find('?');
    if (query != absl::string_view::npos) {
      for (absl::string_view param : absl::StrSplit(rest.substr(query + 1), '&')) {
        if (absl::StartsWithIgnoreCase(param, "password=")) {
          return absl::InvalidArgumentError(kNoPassword);
        }
      }
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
    while (i < s.size() && (absl::ascii_isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_'))
      ++i;
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
    if (absl::AsciiStrToLower(keyword) == "password")
      return absl::InvalidArgumentError(kNoPassword);
  }
  return absl::OkStatus();
}

// One map of the config, its keys checked.
struct Section {
  std::string path;  // "" for the top level, "security.tls" for a nested one
  std::vector<std::pair<std::string, YAML::Node>> entries;

  const YAML::Node* Find(absl::string_view key) const {
    for (const auto& [name, node] : entries) {
      if (name == key) return &node;
    }
    return nullptr;
  }
  std::string KeyPath(absl::string_view key) const { return JoinPath(path, key); }
};

enum class Need { kOptional, kRequired };

class Loader {
 public:
  explicit Loader(absl::string_view source) : source_(source) {}

  absl::StatusOr<Config> Build(const YAML::Node& root);

 private:
  // config SOURCE: key 'PATH': REASON (line L, column C)
  absl::Status KeyError(absl::string_view key_path, absl::string_view reason,
                        const YAML::Node* at = nullptr) const {
    std::string message = absl::StrCat("config ", source_, ": key '", key_path, "': ", reason);
    if (at != nullptr && at->IsDefined()) {
      const YAML::Mark mark = at->Mark();
      if (!mark.is_null()) {
        absl::StrAppend(&message, " (line ", mark.line + 1, ", column ", mark.column + 1, ")");
      }
    }
    return absl::InvalidArgumentError(message);
  }
  absl::Status KeyError(absl::string_view key_path, const absl::Status& reason,
                        const YAML::Node* at) const {
    return KeyError(key_path, reason.message(), at);
  }
  void Warn(absl::string_view key_path, absl::string_view what) {
    warnings_.push_back(absl::StrCat("config ", source_, ": key '", key_path, "': ", what));
  }

  absl::Status OpenSection(const YAML::Node* node, std::string path,
                           std::span<const absl::string_view> known, Section* out) const;
  absl::Status OpenChild(const Section& parent, absl::string_view key,
                         std::span<const absl::string_view> known, Section* out) const {
    return OpenSection(parent.Find(key), parent.KeyPath(key), known, out);
  }
  std::string UnknownKeyReason(absl::string_view path, absl::string_view key) const;

  absl::StatusOr<std::string> ScalarText(const YAML::Node& node, absl::string_view key_path,
                                         absl::string_view expected) const;
  absl::Status Missing(const Section& s, absl::string_view key) const {
    return KeyError(s.KeyPath(key), "is required");
  }

  absl::Status GetString(const Section& s, absl::string_view key, Need need, const Check& check,
                         std::string* out) const;
  absl::Status GetInt(const Section& s, absl::string_view key, int64_t min, int64_t max,
                      int64_t* out) const;
  absl::Status GetInt(const Section& s, absl::string_view key, int min, int max, int* out) const {
    int64_t value = *out;
    FERRY_RETURN_IF_ERROR(GetInt(s, key, int64_t{min}, int64_t{max}, &value));
    *out = static_cast<int>(value);
    return absl::OkStatus();
  }
  absl::Status GetSize(const Section& s, absl::string_view key, uint64_t min, uint64_t max,
                       uint64_t* out) const;
  absl::Status GetBool(const Section& s, absl::string_view key, bool* out) const;
  template <typename E, size_t N>
  absl::Status GetEnum(const Section& s, absl::string_view key, Need need,
                       const EnumName<E> (&names)[N], E* out) const;
  absl::Status GetHostPort(const Section& s, absl::string_view key, Need need, bool allow_port_0,
                           HostPort* out) const;
  absl::Status GetTables(const Section& s, absl::string_view key,
                         std::vector<std::string>* out) const;
  absl::Status GetSecret(const Section& s, absl::string_view file_key, absl::string_view env_key,
                         Secret* out);
  absl::Status GetTls(const Section& security, TlsConfig* out);

  const std::string source_;
  std::vector<std::string> warnings_;
};

absl::Status Loader::OpenSection(const YAML::Node* node, std::string path,
                                 std::span<const absl::string_view> known, Section* out) const {
  out->path = std::move(path);
  out->entries.clear();
  // An absent section, or one with only commented-out keys (null), is an empty section.
  if (node == nullptr || node->IsNull()) return absl::OkStatus();
  if (!node->IsMap()) {
    const std::string what =
        out->path.empty() ? "the top level" : absl::StrCat("key '", out->path, "'");
    return absl::InvalidArgumentError(absl::StrCat(
        "config ", source_, ": ", what, ": expected a map of keys, got ",
        node->IsSequence() ? "a list" : absl::StrCat("the scalar ", Quote(node->Scalar())),
        AtLine(node->Mark())));
  }
  for (const auto& entry : *node) {
    const YAML::Node& key = entry.first;
    if (!key.IsScalar()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config ", source_, ": ",
          out->path.empty() ? std::string("the top level") : absl::StrCat("key '", out->path, "'"),
          ": every key must be a plain string", AtLine(key.Mark())));
    }
    const std::string& name = key.Scalar();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      return KeyError(JoinPath(out->path, PrintableKey(name)), UnknownKeyReason(out->path, name),
                      &key);
    }
    if (out->Find(name) != nullptr) {
      return KeyError(JoinPath(out->path, name), "is set twice (duplicate key)", &key);
    }
    out->entries.emplace_back(name, entry.second);
  }
  return absl::OkStatus();
}

std::string Loader::UnknownKeyReason(absl::string_view path, absl::string_view key) const {
  std::string reason = "unknown key";
  // A known key of another section: probably mis-indented.
  for (const SectionSchema& other : kSchema) {
    if (other.path == path) continue;
    if (std::find(other.keys.begin(), other.keys.end(), key) != other.keys.end()) {
      return absl::StrCat(reason, "; '", key, "' belongs ",
                          other.path.empty() ? std::string("at the top level")
                                             : absl::StrCat("under '", other.path, "'"),
                          " (check the indentation)");
    }
  }
  // A near miss of a key of this section: edit distance <= 2 (case ignored), or the typed key
  // is a known key without its suffix ("cert" for "cert_file").
  if (key.size() <= 40) {
    const std::string lower = absl::AsciiStrToLower(key);
    for (const SectionSchema& same : kSchema) {
      if (same.path != path) continue;
      absl::string_view best;
      size_t best_distance = 3;
      for (absl::string_view candidate : same.keys) {
        const size_t d = EditDistance(lower, candidate);
        if (d < best_distance) {
          best_distance = d;
          best = candidate;
        }
      }
      for (absl::string_view candidate : same.keys) {
        if (best.empty() && !lower.empty() && absl::StartsWith(candidate, lower + "_")) {
          best = candidate;
        }
      }
      if (!best.empty()) absl::StrAppend(&reason, "; did you mean '", best, "'?");
    }
  }
  return reason;
}

absl::StatusOr<std::string> Loader::ScalarText(const YAML::Node& node, absl::string_view key_path,
                                               absl::string_view expected) const {
  if (node.IsNull())
    return KeyError(key_path, absl::StrCat("expected ", expected, ", got no value"), &node);
  if (node.IsMap())
    return KeyError(key_path, absl::StrCat("expected ", expected, ", got a map"), &node);
  if (node.IsSequence()) {
    return KeyError(key_path, absl::StrCat("expected ", expected, ", got a list"), &node);
  }
  const std::string& text = node.Scalar();
  if (text.size() > kMaxStringBytes) {
    return KeyError(
        key_path,
        absl::StrCat("value is ", text.size(), " bytes, over the ", kMaxStringBytes, "-byte limit"),
        &node);
  }
  if (text.find('\0') != std::string::npos) {
    return KeyError(key_path, "value contains a NUL character", &node);
  }
  return text;
}

absl::Status Loader::GetString(const Section& s, absl::string_view key, Need need,
                               const Check& check, std::string* out) const {
  const YAML::Node* node = s.Find(key);
  if (node == nullptr) return need == Need::kRequired ? Missing(s, key) : absl::OkStatus();
  const std::string path = s.KeyPath(key);
  FERRY_ASSIGN_OR_RETURN(std::string text, ScalarText(*node, path, "a string"));
  if (check) {
    if (absl::Status st = check(text); !st.ok()) return KeyError(path, st, node);
  }
  *out = std::move(text);
  return absl::OkStatus();
}

absl::Status Loader::GetInt(const Section& s, absl::string_view key, int64_t min, int64_t max,
                            int64_t* out) const {
  const YAML::Node* node = s.Find(key);
  if (node == nullptr) return absl::OkStatus();
  const std::string path = s.KeyPath(key);
  FERRY_ASSIGN_OR_RETURN(std::string text, ScalarText(*node, path, "an integer"));
  const bool negative = !text.empty() && text.front() == '-';
  const std::optional<uint64_t> magnitude =
      ParseDigits(absl::string_view(text).substr(negative ? 1 : 0), 18);
  if (!magnitude.has_value()) {
    return KeyError(path, absl::StrCat("expected an integer, got ", Quote(text)), node);
  }
  const int64_t value =
      negative ? -static_cast<int64_t>(*magnitude) : static_cast<int64_t>(*magnitude);
  if (value < min || value > max) {
    return KeyError(path, absl::StrCat("must be between ", min, " and ", max, ", got ", value),
                    node);
  }
  *out = value;
  return absl::OkStatus();
}

absl::Status Loader::GetSize(const Section& s, absl::string_view key, uint64_t min, uint64_t max,
                             uint64_t* out) const {
  const YAML::Node* node = s.Find(key);
  if (node == nullptr) return absl::OkStatus();
  const std::string path = s.KeyPath(key);
  FERRY_ASSIGN_OR_RETURN(std::string text, ScalarText(*node, path, "a byte size"));
  absl::StatusOr<uint64_t> value = ParseByteSize(text);
  if (!value.ok()) return KeyError(path, value.status(), node);
  if (*value < min || *value > max) {
    return KeyError(path,
                    absl::StrCat("must be between ", FormatBytes(min), " and ", FormatBytes(max),
                                 ", got ", Quote(text)),
                    node);
  }
  *out = *value;
  return absl::OkStatus();
}

absl::Status Loader::GetBool(const Section& s, absl::string_view key, bool* out) const {
  const YAML::Node* node = s.Find(key);
  if (node == nullptr) return absl::OkStatus();
  const std::string path = s.KeyPath(key);
  FERRY_ASSIGN_OR_RETURN(std::string text, ScalarText(*node, path, "true or false"));
  // Only YAML 1.2's booleans: "yes", "on", "y" are YAML 1.1 surprises.
  if (text == "true" || text == "True" || text == "TRUE") {
    *out = true;
  } else if (text == "false" || text == "False" || text == "FALSE") {
    *out = false;
  } else {
    return KeyError(path, absl::StrCat("expected true or false, got ", Quote(text)), node);
  }
  return absl::OkStatus();
}

template <typename E, size_t N>
absl::Status Loader::GetEnum(const Section& s, absl::string_view key, Need need,
                             const EnumName<E> (&names)[N], E* out) const {
  const YAML::Node* node = s.Find(key);
  if (node == nullptr) return need == Need::kRequired ? Missing(s, key) : absl::OkStatus();
  std::vector<absl::string_view> choices;
  for (const EnumName<E>& n : names) choices.push_back(n.name);
  const std::string expected = absl::StrCat("one of ", absl::StrJoin(choices, ", "));
  const std::string path = s.KeyPath(key);
  FERRY_ASSIGN_OR_RETURN(std::string text, ScalarText(*node, path, expected));
  for (const EnumName<E>& n : names) {
    if (text == n.name) {
      *out = n.value;
      return absl::OkStatus();
    }
  }
  return KeyError(path, absl::StrCat("expected ", expected, ", got ", Quote(text)), node);
}

absl::Status Loader::GetHostPort(const Section& s, absl::string_view key, Need need,
                                 bool allow_port_0, HostPort* out) const {
  const YAML::Node* node = s.Find(key);
  if (node == nullptr) return need == Need::kRequired ? Missing(s, key) : absl::OkStatus();
  const std::string path = s.KeyPath(key);
  FERRY_ASSIGN_OR_RETURN(std::string text, ScalarText(*node, path, "HOST:PORT"));
  absl::StatusOr<HostPort> parsed = ParseHostPort(text);
  if (!parsed.ok()) return KeyError(path, parsed.status(), node);
  if (!allow_port_0 && parsed->port == 0) {
    return KeyError(path, "port 0 is allowed only for listen addresses", node);
  }
  *out = *std::move(parsed);
  return absl::OkStatus();
}

absl::Status Loader::GetTables(const Section& s, absl::string_view key,
                               std::vector<std::string>* out) const {
  const YAML::Node* node = s.Find(key);
  if (node == nullptr) return absl::OkStatus();
  const std::string path = s.KeyPath(key);
  if (node->IsNull()) return absl::OkStatus();  // "tables:" with nothing = empty list
  if (!node->IsSequence()) {
    return KeyError(path, "expected a list of \"schema.table\" names", node);
  }
  std::vector<std::string> tables;
  for (size_t i = 0; i < node->size(); ++i) {
    const YAML::Node item = (*node)[i];
    const std::string item_path = absl::StrCat(path, "[", i, "]");
    FERRY_ASSIGN_OR_RETURN(std::string text, ScalarText(item, item_path, "\"schema.table\""));
    if (absl::Status st = CheckTable(text); !st.ok()) return KeyError(item_path, st, &item);
    if (std::find(tables.begin(), tables.end(), text) != tables.end()) {
      return KeyError(item_path, absl::StrCat("table ", Quote(text), " is listed twice"), &item);
    }
    tables.push_back(std::move(text));
  }
  *out = std::move(tables);
  return absl::OkStatus();
}

absl::Status Loader::GetSecret(const Section& s, absl::string_view file_key,
                               absl::string_view env_key, Secret* out) {
  std::string file;
  std::string env;
  FERRY_RETURN_IF_ERROR(GetString(s, file_key, Need::kOptional, CheckAbsolutePath, &file));
  FERRY_RETURN_IF_ERROR(GetString(s, env_key, Need::kOptional, CheckEnvName, &env));
  if (s.Find(file_key) != nullptr && s.Find(env_key) != nullptr) {
    return KeyError(s.KeyPath(env_key),
                    absl::StrCat("set only one of '", file_key, "' and '", env_key, "'"),
                    s.Find(env_key));
  }
  if (!file.empty()) {
    const std::string path = s.KeyPath(file_key);
    std::string value;
    FileInfo info;
    if (absl::Status st = ReadRegularFile(file, kMaxSecretBytes, &value, &info); !st.ok()) {
      return KeyError(path, absl::StrCat("secret file ", file, " ", st.message()),
                      s.Find(file_key));
    }
    // Files written by `echo` or editors end with a newline that is not part of the secret.
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
    if (value.empty()) {
      return KeyError(path, absl::StrCat("secret file ", file, " is empty"), s.Find(file_key));
    }
    if (value.find('\0') != std::string::npos) {
      return KeyError(path, absl::StrCat("secret file ", file, " contains a NUL byte"),
                      s.Find(file_key));
    }
    if ((info.mode & (S_IRGRP | S_IROTH)) != 0) {
      Warn(path, absl::StrCat("secret file ", file, " is readable by group or others (mode 0",
                              (info.mode >> 6) & 7, (info.mode >> 3) & 7, info.mode & 7,
                              "); chmod 600 is recommended"));
    }
    out->source = absl::StrCat("file ", file);
    out->value = std::move(value);
  } else if (!env.empty()) {
    const std::string path = s.KeyPath(env_key);
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) {
      return KeyError(path, absl::StrCat("environment variable ", env, " is not set"),
                      s.Find(env_key));
    }
    if (*value == '\0') {
      return KeyError(path, absl::StrCat("environment variable ", env, " is empty"),
                      s.Find(env_key));
    }
    out->source = absl::StrCat("env ", env);
    out->value = value;
  }
  return absl::OkStatus();
}

absl::Status Loader::GetTls(const Section& security, TlsConfig* out) {
  Section tls;
  FERRY_RETURN_IF_ERROR(OpenChild(security, "tls", kTlsKeys, &tls));
  TlsConfig result;
  std::string* fields[] = {&result.cert_file, &result.key_file, &result.ca_file};
  int set = 0;
  for (size_t i = 0; i < std::size(kTlsKeys); ++i) {
    FERRY_RETURN_IF_ERROR(
        GetString(tls, kTlsKeys[i], Need::kOptional, CheckAbsolutePath, fields[i]));
    if (!fields[i]->empty()) ++set;
  }
  if (set != 0 && set != 3) {
    for (size_t i = 0; i < std::size(kTlsKeys); ++i) {
      if (fields[i]->empty()) {
        return KeyError(tls.KeyPath(kTlsKeys[i]),
                        "is required when any of cert_file, key_file, ca_file is set (mutual TLS "
                        "needs all three)");
      }
    }
  }
  for (size_t i = 0; i < std::size(kTlsKeys) && set == 3; ++i) {
    FileInfo info;
    const std::string path = tls.KeyPath(kTlsKeys[i]);
    if (absl::Status st = ReadRegularFile(*fields[i], kMaxSecretBytes, nullptr, &info); !st.ok()) {
      return KeyError(path, absl::StrCat(*fields[i], " ", st.message()), tls.Find(kTlsKeys[i]));
    }
    if (kTlsKeys[i] == "key_file" && (info.mode & (S_IRGRP | S_IROTH)) != 0) {
      Warn(path, absl::StrCat("private key ", *fields[i],
                              " is readable by group or others; chmod 600 is recommended"));
    }
  }
  *out = std::move(result);
  return absl::OkStatus();
}

absl::StatusOr<Config> Loader::Build(const YAML::Node& root) {
  if (!root.IsDefined() || root.IsNull()) {
    return absl::InvalidArgumentError(absl::StrCat("config ", source_, ": is empty"));
  }
  Config c;
  c.source = source_;
  Section top;
  FERRY_RETURN_IF_ERROR(OpenSection(&root, "", kTopKeys, &top));

  FERRY_RETURN_IF_ERROR(GetString(top, "region", Need::kRequired, CheckRegion, &c.region));
  FERRY_RETURN_IF_ERROR(
      GetString(top, "data_dir", Need::kRequired, CheckAbsolutePath, &c.data_dir));
  FERRY_RETURN_IF_ERROR(GetEnum(top, "role", Need::kRequired, kRoles, &c.role));
  FERRY_RETURN_IF_ERROR(GetEnum(top, "log_level", Need::kOptional, kLogLevels, &c.log_level));

  Section pg;
  FERRY_RETURN_IF_ERROR(OpenChild(top, "postgres", kPostgresKeys, &pg));
  FERRY_RETURN_IF_ERROR(GetString(pg, "dsn", Need::kRequired, CheckDsn, &c.postgres.dsn));
  FERRY_RETURN_IF_ERROR(GetSecret(pg, "password_file", "password_env", &c.postgres.password));
  FERRY_RETURN_IF_ERROR(
      GetString(pg, "publication", Need::kOptional, CheckPublication, &c.postgres.publication));
  c.postgres.slot = "ferry_" + c.region;
  std::replace(c.postgres.slot.begin(), c.postgres.slot.end(), '-', '_');
  FERRY_RETURN_IF_ERROR(GetString(pg, "slot", Need::kOptional, CheckSlot, &c.postgres.slot));
  FERRY_RETURN_IF_ERROR(GetTables(pg, "tables", &c.postgres.tables));
  FERRY_RETURN_IF_ERROR(GetBool(pg, "snapshot", &c.postgres.snapshot));

  Section listen;
  FERRY_RETURN_IF_ERROR(OpenChild(top, "listen", kListenKeys, &listen));
  HostPort* listeners[] = {&c.listen.replication, &c.listen.admin, &c.listen.metrics};
  for (size_t i = 0; i < std::size(kListenKeys); ++i) {
    const Need need = kListenKeys[i] == "replication" ? Need::kRequired : Need::kOptional;
    FERRY_RETURN_IF_ERROR(GetHostPort(listen, kListenKeys[i], need, true, listeners[i]));
  }
  // Two listeners on one address would fail at bind (port 0 picks distinct ports).
  for (size_t i = 0; i < std::size(kListenKeys); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (listeners[i]->port != 0 && *listeners[i] == *listeners[j]) {
        return KeyError(listen.KeyPath(kListenKeys[i]),
                        absl::StrCat("same address ", listeners[i]->ToString(), " as 'listen.",
                                     kListenKeys[j], "'"),
                        listen.Find(kListenKeys[i]));
      }
    }
  }

  Section peer;
  FERRY_RETURN_IF_ERROR(OpenChild(top, "peer", kPeerKeys, &peer));
  FERRY_RETURN_IF_ERROR(
      GetHostPort(peer, "replication", Need::kRequired, false, &c.peer.replication));
  FERRY_RETURN_IF_ERROR(GetString(peer, "region", Need::kOptional, CheckRegion, &c.peer.region));
  if (c.peer.region == c.region) {
    return KeyError("peer.region", absl::StrCat("must differ from 'region' (", c.region, ")"),
                    peer.Find("region"));
  }

  Section security;
  FERRY_RETURN_IF_ERROR(OpenChild(top, "security", kSecurityKeys, &security));
  FERRY_RETURN_IF_ERROR(GetSecret(security, "token_file", "token_env", &c.security.token));
  FERRY_RETURN_IF_ERROR(
      GetSecret(security, "admin_token_file", "admin_token_env", &c.security.admin_token));
  FERRY_RETURN_IF_ERROR(GetTls(security, &c.security.tls));

  Section stream;
  StreamConfig& st = c.stream;
  FERRY_RETURN_IF_ERROR(OpenChild(top, "stream", kStreamKeys, &stream));
  FERRY_RETURN_IF_ERROR(GetInt(stream, "compression_level", 0, 19, &st.compression_level));
  FERRY_RETURN_IF_ERROR(GetSize(stream, "window_bytes", 64 << 10, 64ull << 30, &st.window_bytes));
  FERRY_RETURN_IF_ERROR(
      GetSize(stream, "max_batch_bytes", 1 << 10, 1ull << 30, &st.max_batch_bytes));
  FERRY_RETURN_IF_ERROR(
      GetSize(stream, "max_message_bytes", 64 << 10, 1ull << 30, &st.max_message_bytes));
  FERRY_RETURN_IF_ERROR(
      GetInt(stream, "reconnect_min_ms", int64_t{1}, int64_t{3'600'000}, &st.reconnect_min_ms));
  FERRY_RETURN_IF_ERROR(
      GetInt(stream, "reconnect_max_ms", int64_t{1}, int64_t{3'600'000}, &st.reconnect_max_ms));
  if (st.max_batch_bytes > st.max_message_bytes) {
    return KeyError(
        "stream.max_batch_bytes",
        absl::StrCat("must be <= stream.max_message_bytes (", FormatBytes(st.max_message_bytes),
                     "), got ", FormatBytes(st.max_batch_bytes)),
        stream.Find("max_batch_bytes"));
  }
  if (st.max_batch_bytes > st.window_bytes) {
    return KeyError("stream.max_batch_bytes",
                    absl::StrCat("must be <= stream.window_bytes (", FormatBytes(st.window_bytes),
                                 "), got ", FormatBytes(st.max_batch_bytes)),
                    stream.Find("max_batch_bytes"));
  }
  if (st.reconnect_min_ms > st.reconnect_max_ms) {
    return KeyError("stream.reconnect_min_ms",
                    absl::StrCat("must be <= stream.reconnect_max_ms (", st.reconnect_max_ms,
                                 "), got ", st.reconnect_min_ms),
                    stream.Find("reconnect_min_ms"));
  }

  Section apply;
  FERRY_RETURN_IF_ERROR(OpenChild(top, "apply", kApplyKeys, &apply));
  FERRY_RETURN_IF_ERROR(GetInt(apply, "workers", 1, 64, &c.apply.workers));
  FERRY_RETURN_IF_ERROR(GetEnum(apply, "conflict_policy", Need::kOptional, kConflictPolicies,
                                &c.apply.conflict_policy));
  FERRY_RETURN_IF_ERROR(GetInt(apply, "group_max_transactions", int64_t{1}, int64_t{1'000'000},
                               &c.apply.group_max_transactions));
  FERRY_RETURN_IF_ERROR(
      GetSize(apply, "group_max_bytes", 1 << 10, 1ull << 30, &c.apply.group_max_bytes));
  FERRY_RETURN_IF_ERROR(GetInt(apply, "group_max_delay_ms", int64_t{0}, int64_t{60'000},
                               &c.apply.group_max_delay_ms));
  FERRY_RETURN_IF_ERROR(GetBool(apply, "synchronous_commit", &c.apply.synchronous_commit));
  FERRY_RETURN_IF_ERROR(
      GetSize(apply, "max_value_bytes", 1 << 10, 1ull << 30, &c.apply.max_value_bytes));

  Section log;
  FERRY_RETURN_IF_ERROR(OpenChild(top, "log", kLogKeys, &log));
  FERRY_RETURN_IF_ERROR(GetSize(log, "retention_bytes", 0, 1ull << 50, &c.log.retention_bytes));
  FERRY_RETURN_IF_ERROR(
      GetInt(log, "retention_seconds", int64_t{0}, int64_t{30} * 86400, &c.log.retention_seconds));

  if (!c.security.token.is_set()) {
    Warn("security.token_file",
         "no replication token (security.token_file or security.token_env): any client that "
         "reaches listen.replication can ship changes to this region");
  }
  if (!c.security.tls.enabled()) {
    Warn("security.tls", "not set: traffic between regions is neither encrypted nor authenticated");
  }
  if (!c.security.admin_token.is_set() && !IsLoopbackHost(c.listen.admin.host)) {
    Warn("security.admin_token_file",
         absl::StrCat("no admin token, and listen.admin (", c.listen.admin.ToString(),
                      ") is not a loopback address: anyone who reaches it can pause, reverse or "
                      "promote this region"));
  }
  c.warnings = std::move(warnings_);
  return c;
}

// Parses `text` under the limits, with every yaml-cpp exception turned into a status.
absl::StatusOr<Config> ParseText(absl::string_view text, absl::string_view source) {
  const std::string prefix = absl::StrCat("config ", source, ": ");
  if (text.size() > kMaxConfigBytes) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "is ", text.size(), " bytes, over the ",
                                                   FormatBytes(kMaxConfigBytes), " limit"));
  }
  if (const size_t nul = text.find('\0'); nul != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "contains a NUL byte at offset ", nul, "; not a YAML text file"));
  }
  // yaml-cpp's scanner queues every token of an open flow collection ("[...]", "{...}") before
  // the parser sees them, about 250 bytes a token: a megabyte of "[[[[" would cost 250 MB
  // before any event reaches NodeBudget. A real config has a handful of flow collections, so
  // their opening characters are counted on the raw text, quotes and comments included (a
  // count cannot be fooled by quoting tricks).
  const size_t brackets =
      std::count_if(text.begin(), text.end(), [](char ch) { return ch == '[' || ch == '{'; });
  if (brackets > kMaxFlowOpenings) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "has ", brackets, " '[' or '{' characters, over the limit of ", kMaxFlowOpenings));
  }
  try {
    const std::string owned(text);
    {
      std::istringstream in(owned);
      YAML::Parser parser(in);
      NodeBudget budget;
      while (parser.HandleNextDocument(budget)) {
      }
    }
    const YAML::Node root = YAML::Load(owned);
    return Loader(source).Build(root);
  } catch (const BudgetExceeded& e) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, e.reason, AtLine(e.mark)));
  } catch (const YAML::DeepRecursion& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "YAML nested too deeply", AtLine(e.mark)));
  } catch (const YAML::ParserException& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "YAML syntax error", AtLine(e.mark), ": ", e.msg));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "YAML error", AtLine(e.mark), ": ", e.msg));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(prefix, "out of memory while parsing"));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "cannot parse: ", e.what()));
  }
}

// ---------------------------------------------------------------------------------------------
// 6. DebugString.

std::string SecretText(const Secret& s) {
  return s.is_set() ? absl::StrCat("<secret from ", s.source, ">") : "<unset>";
}

}  // namespace

std::string Config::DebugString() const {
  std::string out;
  const auto line = [&out](int indent, absl::string_view key, const auto& value) {
    absl::StrAppend(&out, std::string(indent, ' '), key, ": ", value, "\n");
  };
  const auto quoted = [](absl::string_view s) {
    return absl::StrCat("\"", absl::CEscape(s), "\"");
  };
  line(0, "region", region);
  line(0, "data_dir", quoted(data_dir));
  line(0, "role", std::string(RoleName(role)));
  line(0, "log_level", std::string(LogLevelName(log_level)));
  out += "postgres:\n";
  line(2, "dsn", quoted(postgres.dsn));
  line(2, "password", SecretText(postgres.password));
  line(2, "publication", postgres.publication);
  line(2, "slot", postgres.slot);
  line(2, "tables", absl::StrCat("[", absl::StrJoin(postgres.tables, ", "), "]"));
  line(2, "snapshot", postgres.snapshot ? "true" : "false");
  out += "listen:\n";
  line(2, "replication", listen.replication.ToString());
  line(2, "admin", listen.admin.ToString());
  line(2, "metrics", listen.metrics.ToString());
  out += "peer:\n";
  line(2, "replication", peer.replication.ToString());
  line(2, "region", peer.region.empty() ? "<not checked>" : peer.region);
  out += "security:\n";
  line(2, "token", SecretText(security.token));
  line(2, "admin_token", SecretText(security.admin_token));
  if (security.tls.enabled()) {
    out += "  tls:\n";
    line(4, "cert_file", quoted(security.tls.cert_file));
    line(4, "key_file", quoted(security.tls.key_file));
    line(4, "ca_file", quoted(security.tls.ca_file));
  } else {
    line(2, "tls", "<off>");
  }
  out += "stream:\n";
  line(2, "compression_level", stream.compression_level);
  line(2, "window_bytes", FormatBytes(stream.window_bytes));
  line(2, "max_batch_bytes", FormatBytes(stream.max_batch_bytes));
  line(2, "max_message_bytes", FormatBytes(stream.max_message_bytes));
  line(2, "reconnect_min_ms", stream.reconnect_min_ms);
  line(2, "reconnect_max_ms", stream.reconnect_max_ms);
  out += "apply:\n";
  line(2, "workers", apply.workers);
  line(2, "conflict_policy", std::string(ConflictPolicyName(apply.conflict_policy)));
  line(2, "group_max_transactions", apply.group_max_transactions);
  line(2, "group_max_bytes", FormatBytes(apply.group_max_bytes));
  line(2, "group_max_delay_ms", apply.group_max_delay_ms);
  line(2, "synchronous_commit", apply.synchronous_commit ? "true" : "false");
  line(2, "max_value_bytes", FormatBytes(apply.max_value_bytes));
  out += "log:\n";
  line(2, "retention_bytes", FormatBytes(log.retention_bytes));
  line(2, "retention_seconds", log.retention_seconds);
  return out;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  std::string text;
  if (absl::Status st = ReadRegularFile(path, kMaxConfigBytes, &text, nullptr); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("config ", path, ": ", st.message()));
  }
  return ParseText(text, path);
}

absl::StatusOr<Config> ParseConfig(std::string_view yaml_text, std::string_view source_name) {
  return ParseText(absl::string_view(yaml_text.data(), yaml_text.size()),
                   absl::string_view(source_name.data(), source_name.size()));
}

}  // namespace ferry::config
