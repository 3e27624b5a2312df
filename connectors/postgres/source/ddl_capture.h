// Schema-change capture on a Postgres source (docs/schema-changes.md): the event triggers of
// sql/ddl_capture.sql turn every DDL command into a signed logical message at its place in the
// transaction, and partitions report their TRUNCATE the same way. This file installs them and
// checks the signatures: any role may call pg_logical_emit_message, so only a message signed
// with the key in ferry.capture_key (readable by superusers and, through ferry.capture_key(),
// by roles with REPLICATION) is marked authenticated and replayed by the sink.
//
// Example:
//   FERRY_RETURN_IF_ERROR(EnsureDdlCapture(conn));
//   FERRY_ASSIGN_OR_RETURN(std::string key, LoadMessageKey(conn));
//   std::optional<std::string> payload = VerifyFerryMessage(key, content);
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "connectors/postgres/common/pg_connection.h"

namespace ferry::pg {

// The install script (sql/ddl_capture.sql), as `ferryd --print-ddl-capture-sql` prints it.
std::string_view DdlCaptureSql();

// Makes sure the capture is installed and current, installing it when it is not (that needs a
// superuser), and gives every partition its TRUNCATE trigger. kFailedPrecondition, saying what
// to run, when it is missing and this role may not install it; a statement's status otherwise.
[[nodiscard]] absl::Status EnsureDdlCapture(PgConnection& conn);

// The signing key (32 bytes). kFailedPrecondition when this role may not read it.
[[nodiscard]] absl::StatusOr<std::string> LoadMessageKey(PgConnection& conn);

// `content` as the functions emit it: 64 hex digits of HMAC-SHA256(key, payload), a space, the
// payload. Returns the payload when the signature is right, nullopt otherwise (malformed,
// forged, or signed with another key).
std::optional<std::string> VerifyFerryMessage(std::string_view key, std::string_view content);

}  // namespace ferry::pg
