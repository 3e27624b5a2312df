// Replaying a source's schema changes (docs/schema-changes.md). The capture
// (connectors/postgres/source/ddl_capture.h) sends each DDL command as a "ferry.ddl" message at
// its place in the transaction, carrying the client's whole query text, the command's tag and
// its ordinal among the commands with that tag in the query. This file finds the one statement
// to run in that text and makes it runnable inside apply's transaction; the session runs it
// (PostgresSession::ApplyFerryMessage) with the source's search_path and role.
//
// The statement is found only when the query's text holds it at top level: a DDL command run
// inside a function or a DO block cannot be isolated (running the whole text again would run
// its other statements too), and StatementToReplay says so; the session then stops the tables
// the command touches, naming it.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(v1::PgDdlMessage m, ParseDdlMessage(content));
//   absl::StatusOr<std::string> sql = StatementToReplay(m);  // "ALTER TABLE t ADD c int"
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/pg_messages.pb.h"

namespace ferry::pg_sink {

// Bounds on a message from outside: larger ones are refused (kInvalidArgument).
inline constexpr size_t kMaxDdlMessageBytes = 16 << 20;
inline constexpr int kMaxDdlTables = 10000;

// The statements of `sql`, split at semicolons outside quotes ('..', E'..', "..", $tag$..$tag$),
// comments (--, nested /* */), parentheses and BEGIN ATOMIC bodies; each trimmed of spaces and
// comments around it; empty ones dropped. An unterminated quote or comment ends the text.
std::vector<std::string_view> SplitStatements(std::string_view sql);

// True when `statement` is a command with tag `tag` ("CREATE TABLE" matches "create unlogged
// table ...", "CREATE INDEX" matches "CREATE UNIQUE INDEX CONCURRENTLY ...").
bool MatchesTag(std::string_view statement, std::string_view tag);

// The statement of `message` to run on the target: the ordinal-th statement of its query that
// matches its tag, with CONCURRENTLY removed where a transaction block forbids it (CREATE INDEX,
// DROP INDEX, DETACH PARTITION). kNotFound, saying why, when the query has no such statement.
absl::StatusOr<std::string> StatementToReplay(const v1::PgDdlMessage& message);

// GRANT, REVOKE, COMMENT, SECURITY LABEL, ALTER DEFAULT PRIVILEGES: commands that change no
// data or shape. When one fails on the target it is logged and skipped, not a table stop.
bool ChangesNoData(std::string_view tag);

// The tags of commands that fill the table they create (CREATE TABLE AS, SELECT INTO): their
// rows arrive as inserts before the message, so the command itself is not run again.
bool CreatesFilledTable(std::string_view tag);

// Parses and checks a message's payload (JSON). kInvalidArgument, saying what is wrong, for a
// malformed, oversized or incomplete one.
absl::StatusOr<v1::PgDdlMessage> ParseDdlMessage(std::string_view json);
absl::StatusOr<v1::PgTruncateMessage> ParseTruncateMessage(std::string_view json);
// "ferry.resnapshot" (proto/pg_messages.proto): kInvalidArgument without a table.
absl::StatusOr<v1::PgResnapshotMessage> ParseResnapshotMessage(std::string_view json);
// At most kMaxSequences values, each naming its sequence.
inline constexpr int kMaxSequences = 100000;
absl::StatusOr<v1::PgSequencesMessage> ParseSequencesMessage(std::string_view json);

}  // namespace ferry::pg_sink
