// CheckCapturePrivileges: what the capture role must be allowed to do on the source database,
// checked on a normal connection before the source opens its replication connection, so that a
// missing grant stops capture with a message naming the role, the grant and the statement that
// gives it (instead of libpq's "must be superuser or replication role to start walsender", or
// an initial snapshot that fails half-way on one table).
//
// The capture role needs (a superuser has all of it):
//   - the REPLICATION attribute: the replication connection, creating and reading the slot;
//   - when the publication does not exist yet, the right to create it: FOR ALL TABLES needs a
//     superuser; FOR TABLE needs CREATE on the database and ownership of every listed table;
//   - when an initial snapshot is still to be copied: USAGE on each published table's schema
//     and SELECT on the table.
// Setting REPLICA IDENTITY FULL on a keyless table (postgres.keyless_tables) needs ownership of
// that table; it is not checked here: a table Ferry cannot change is reported by name in status.
//
// Example:
//   FERRY_RETURN_IF_ERROR(CheckCapturePrivileges(conn, {.publication = "ferry"}));
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "connectors/postgres/common/pg_connection.h"

namespace ferry::pg {

struct CaptureNeeds {
  std::string publication;
  // The tables of a publication Ferry would create ("schema.name"); empty: FOR ALL TABLES.
  std::vector<std::string> tables;
  // An initial snapshot is still to be copied: SELECT on every published table is needed.
  bool snapshot = false;
};

// OK when the role connected on `conn` has every privilege `needs` calls for.
// kFailedPrecondition naming the missing grant (an operator must grant it); the connection's
// errors otherwise (kUnavailable when the database went away).
[[nodiscard]] absl::Status CheckCapturePrivileges(PgConnection& conn, const CaptureNeeds& needs);

}  // namespace ferry::pg
