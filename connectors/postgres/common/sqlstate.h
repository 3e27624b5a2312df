// The one mapping of Postgres SQLSTATEs to absl::Status codes for the whole Postgres connector
// (source, sink and common). The code says what the caller does (engine/base/status_macros.h):
//
//   SQLSTATE                                               code                 the caller
//   08xxx connection exception                             kUnavailable         retries the call
//   57Pxx shutdown, crash shutdown, cannot connect now     kUnavailable           after backoff
//   53xxx insufficient resources (disk full, out of
//         memory, too many connections)                    kUnavailable
//   55006 object in use (a slot or replication origin
//         still held by a previous session)                kUnavailable
//   40001 serialization failure, 40P01 deadlock            kAborted             restarts the
//   55P03 lock not available (the sink's lock_timeout)     kAborted               transaction
//   42704 undefined object, 42P01 undefined table,
//   42710 duplicate object, 55000 object not in
//         prerequisite state                               kFailedPrecondition  stops: someone
//                                                                                 must fix it
//   anything else: other 42xxx (syntax, access), 22xxx
//   (data), 23xxx (constraints), 57014 (query canceled),
//   XX000, and "" (libpq reported no SQLSTATE)            kInternal
//
// "Transient" (IsTransient) means kUnavailable or kAborted: the work may succeed when tried
// again. The sink stops a table for a statement error that is not transient (a value or a
// shape the table refuses); the source retries kInternal too (its own policy, postgres_source).
//
// Example:
//   const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
//   return SqlStateError(state, primary_message, "copying a table");  // code by the table
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ferry::pg {

// The absl code for a SQLSTATE (see the table above).
absl::StatusCode CodeForSqlState(absl::string_view sqlstate);

// True for kUnavailable and kAborted: the codes that mean "try again" (the call, or the
// transaction from its start).
bool IsTransient(absl::StatusCode code);

// A status with CodeForSqlState(sqlstate) and the message "<context>: [<sqlstate>] <message>".
absl::Status SqlStateError(absl::string_view sqlstate, absl::string_view message,
                           absl::string_view context);

// Whether `status` is a server error with `sqlstate` (as SqlStateError wrote it), for a caller
// that must tell apart two SQLSTATEs of one code (55006 "object in use" from the other
// kUnavailable ones, say).
bool HasSqlState(const absl::Status& status, absl::string_view sqlstate);

}  // namespace ferry::pg
