#include "connectors/postgres/source/ddl_capture.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "connectors/postgres/source/ddl_capture_sql.h"
#include "engine/base/status_macros.h"

namespace ferry::pg {
namespace {

// Must match the COMMENT at the end of sql/ddl_capture.sql: a newer script changes both.
constexpr char kVersion[] = "ferry ddl capture v10";

constexpr char kInstalled[] =
    "SELECT (SELECT count(*) FROM pg_event_trigger WHERE evtenabled <> 'D' AND evtname IN "
    "('ferry_ddl_0_drop', 'ferry_ddl_1_caller', 'ferry_ddl_2_capture')), "
    "(SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p JOIN pg_namespace n ON "
    "n.oid = p.pronamespace WHERE n.nspname = 'ferry' AND p.proname = 'capture_ddl' AND "
    "p.pronargs = 0)";

// The server's words from a status of PgConnection: "[SQLSTATE] message".
std::string ServerMessage(const absl::Status& s) {
  const std::string text(s.message());
  const size_t at = text.rfind(": [");
  return at == std::string::npos ? text : text.substr(at + 2);
}

absl::Status NeedsSuperuser(const absl::Status& cause) {
  return absl::FailedPreconditionError(absl::StrCat(
      "Ferry captures schema changes with event triggers, which only a superuser can install (",
      ServerMessage(cause),
      "): run `ferryd --print-ddl-capture-sql | psql -v ON_ERROR_STOP=1 -d <database>` once as "
      "a superuser, or start ferryd once with a superuser in postgres.dsn "
      "(docs/schema-changes.md)"));
}

}  // namespace

std::string_view DdlCaptureSql() { return kDdlCaptureSql; }

absl::Status EnsureDdlCapture(PgConnection& conn) {
  FERRY_ASSIGN_OR_RETURN(PgResult r, conn.Exec(kInstalled));
  const bool current = r.rows() == 1 && r.Get(0, 0) == "3" && !r.IsNull(0, 1) &&
                       r.Get(0, 1) == absl::string_view(kVersion);
  if (!current) {
    auto installed = conn.Exec(kDdlCaptureSql);
    if (!installed.ok()) {
      (void)conn.Exec("ROLLBACK");  // the script's transaction, if it stopped inside it
      if (installed.status().code() == absl::StatusCode::kPermissionDenied ||
          HasSqlState(installed.status(), "42501")) {
        return NeedsSuperuser(installed.status());
      }
      return Annotate(installed.status(), "installing Ferry's schema-change capture");
    }
    return absl::OkStatus();
  }
  // Partitions created by apply (this region was a standby) have no TRUNCATE trigger yet.
  return Annotate(conn.Exec("SELECT ferry.ensure_truncate_triggers()").status(),
                  "adding TRUNCATE triggers to partitions");
}

absl::StatusOr<std::string> LoadMessageKey(PgConnection& conn) {
  auto r = conn.Exec("SELECT encode(ferry.capture_key(), 'hex')");
  if (!r.ok()) {
    if (HasSqlState(r.status(), "42501")) {
      return absl::FailedPreconditionError(
          absl::StrCat("the capture role may not read Ferry's capture key (", r.status().message(),
                       "): it needs the REPLICATION attribute"));
    }
    return Annotate(r.status(), "reading Ferry's capture key");
  }
  if (r->rows() != 1 || r->IsNull(0, 0) || r->Get(0, 0).size() != 64) {
    return absl::FailedPreconditionError(
        "Ferry's capture key is missing or malformed in ferry.capture_key: delete its row and "
        "restart ferryd as a superuser to make a new one");
  }
  return absl::HexStringToBytes(std::string(r->Get(0, 0)));
}

std::optional<std::string> VerifyFerryMessage(std::string_view key, std::string_view content) {
  constexpr size_t kHex = 64;
  if (key.empty() || content.size() < kHex + 1 || content[kHex] != ' ') return std::nullopt;
  const std::string_view mac_hex = content.substr(0, kHex);
  for (char c : mac_hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) || absl::ascii_isupper(c)) {
      return std::nullopt;
    }
  }
  const std::string claimed = absl::HexStringToBytes(std::string(mac_hex));
  const std::string_view payload = content.substr(kHex + 1);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), mac,
           &mac_len) == nullptr ||
      mac_len != claimed.size() || CRYPTO_memcmp(mac, claimed.data(), mac_len) != 0) {
    return std::nullopt;
  }
  return std::string(payload);
}

}  // namespace ferry::pg
