// SQL text the Postgres sink sends, built from a Relation and the target's catalog. Pure
// functions (no connection), so they are unit-tested without Postgres.
//
// Statements use $n text parameters; Postgres infers each parameter's type from its column,
// so a value that does not parse as the column's type fails that statement (and stops that
// table), never another.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/change.pb.h"

namespace ferry::pg_sink {

// A column of the target table, as the catalog describes it.
struct TargetColumn {
  std::string name;
  std::string type;  // format_type(atttypid, atttypmod)
  bool not_null = false;
};

// CREATE TABLE for a relation missing on the target: columns with their source types and NOT
// NULL, and the primary key.
std::string CreateTableSql(const v1::Relation& relation);

// True when every value of type `narrow` fits type `wide` unchanged (e.g. integer in bigint,
// character varying(10) in text). Equal names are compatible.
bool TypeHolds(std::string_view wide, std::string_view narrow);

// INSERT of `rows` rows of every column: INSERT ... VALUES (...),(...) ON CONFLICT DO NOTHING.
std::string InsertSql(const v1::Relation& relation, int rows);

// The columns that identify a row: the replica identity key columns (indexes into columns), or
// every column for REPLICA IDENTITY FULL. Empty when the table has none.
std::vector<int> IdentityColumns(const v1::Relation& relation);
bool IsFull(const v1::Relation& relation);

// WHERE clause matching one row by identity. For FULL, all given columns are compared as text
// after a round trip through the target type (so types without "=" such as json or point
// work), skipping columns in `skip`; the match picks exactly one row (ctid ... LIMIT 1).
// Parameters are numbered from `first_param`.
struct RowMatch {
  std::string where;         // "WHERE ..." (for FULL: ctid = (SELECT ... LIMIT 1))
  std::vector<int> columns;  // the columns whose values bind the parameters, in order
};
RowMatch MatchRow(const v1::Relation& relation, const std::vector<TargetColumn>& target,
                  const std::vector<int>& columns, int first_param);

// UPDATE ... SET (set_columns = $1..) + MatchRow.
std::string UpdateSql(const v1::Relation& relation, const std::vector<int>& set_columns,
                      const RowMatch& match);
std::string DeleteSql(const v1::Relation& relation, const RowMatch& match);
// SELECT to_jsonb(t)::text FROM t + MatchRow (the local row of a conflict).
std::string SelectJsonSql(const v1::Relation& relation, const RowMatch& match);

// Batched statements over arrays: one parameter per column, each a Postgres array literal
// (ArrayLiteral) holding that column's value for every row, unnested on the server. So a
// statement's shape (and its prepared plan) does not depend on the number of rows. `types` are
// the target's column types (format_type), parallel to the relation's columns; no column may
// itself be of an array type (unnest would flatten it).
//
// Many inserts go by COPY (Postgres then inserts many rows per heap page lock and WAL
// record): COPY t (all columns) FROM STDIN, rows in COPY text format (AppendCopyField). A few
// go by INSERT INTO t (all columns) OVERRIDING SYSTEM VALUE SELECT * FROM unnest($1::T1[], ...)
// ON CONFLICT DO NOTHING (identity columns GENERATED ALWAYS take the source's values),
// which stays in the pipeline (a COPY costs a round trip of its own).
std::string CopySql(const v1::Relation& relation);
std::string BatchInsertSql(const v1::Relation& relation, const std::vector<std::string>& types);
// UPDATE t SET set_columns FROM unnest(keys, set_columns) v WHERE t.key = v.key; parameters are
// the key columns, then the set columns.
std::string BatchUpdateSql(const v1::Relation& relation, const std::vector<std::string>& types,
                           const std::vector<int>& key_columns,
                           const std::vector<int>& set_columns);
// DELETE FROM t USING unnest(keys) v WHERE t.key = v.key.
std::string BatchDeleteSql(const v1::Relation& relation, const std::vector<std::string>& types,
                           const std::vector<int>& key_columns);
// `statement` (an INSERT, UPDATE or DELETE with `params` parameters, no RETURNING) wrapped so
// that the server itself fails it unless it affects exactly as many rows as parameter
// $<params + 1> (a bigint) says: then it raises 22P02 with "ferry row count <n>" (n: the rows it
// did affect) in its message. A statement queued before COMMIT in one pipeline can so abort the
// transaction, where a count checked on the client would come after the COMMIT.
std::string RowCountCheckedSql(std::string_view statement, int params);
// The count a RowCountCheckedSql statement reports in its error message, or nullopt when the
// message is not its.
std::optional<int64_t> CheckedRowCount(std::string_view message);

// Appends one element to an array literal under construction ("{" written by the caller, ","
// between elements, "}" at the end): the value double-quoted with '"' and '\' escaped, or NULL
// for nullptr.
void AppendArrayElement(std::string* out, const std::string* text);
// Appends one field in COPY text format: \N for nullptr, else the value with backslash, tab,
// newline and carriage return escaped. The caller writes '\t' between fields, '\n' after a row.
void AppendCopyField(std::string* out, const std::string* text);

// Why a row image cannot be applied, or nullopt: wrong number of values, a value over
// `max_value_bytes`, a NUL byte (Postgres text cannot hold one), unchanged TOAST where it is not
// allowed (`allow_toast`), binary values, a value without kind. `what` names the image ("new
// row", "old row") in the message.
std::optional<std::string> TupleProblem(const v1::Relation& relation, const v1::Tuple& tuple,
                                        bool allow_toast, const char* what, size_t max_value_bytes);

// A JSON object of a row image: {"col": "text" | null, ...}; unchanged TOAST columns are left
// out and binary values are hex strings.
std::string RowJson(const v1::Relation& relation, const v1::Tuple& tuple);

}  // namespace ferry::pg_sink
