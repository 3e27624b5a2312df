// A published table's definition as statements the standby can run (docs/schema-changes.md):
// what the initial snapshot sends before a table's rows, so that a table that existed before
// Ferry gets the same columns, defaults, generated expressions, identity, sequences, check /
// unique / primary key / exclusion constraints, indexes, partitions and replica identity on
// the standby as on the source (later changes come as the source's own DDL). Every statement
// leaves an existing object alone (IF NOT EXISTS), so a target created beforehand (e.g. with
// pg_dump --schema-only) is kept, and replaying a snapshot record changes nothing.
//
// Foreign keys come apart (ForeignKeyStatements): they can only be added once both tables are
// filled.
//
// The queries run on `conn` as it is, so inside the snapshot's transaction they read the
// catalog as of the slot's consistent point. Names come out schema-qualified.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "connectors/postgres/common/pg_connection.h"
#include "connectors/postgres/source/catalog.h"
#include "proto/change.pb.h"

namespace ferry::pg {

// The statements that create `table` (and its partitions) when missing, as authenticated
// "ferry.ddl" message changes in the order they must run, run as the table's owner.
[[nodiscard]] absl::StatusOr<std::vector<v1::Change>> DefinitionChanges(
    PgConnection& conn, const PublishedTable& table);

// The foreign keys of `table`, each added when no constraint of that name exists.
[[nodiscard]] absl::StatusOr<std::vector<v1::Change>> ForeignKeyChanges(
    PgConnection& conn, const PublishedTable& table);

}  // namespace ferry::pg
