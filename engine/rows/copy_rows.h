// Rows in COPY text format (Postgres manual, "COPY", File Formats / Text Format): columns
// separated by a tab, each row ended by a newline, "\N" for NULL, and backslash escapes \b \f
// \n \r \t \v \\ \ooo (octal) \xhh (hex); any other escaped character stands for itself. The
// values are the types' text output, the same form pgoutput sends, so rows in this form and
// streamed rows are interchangeable.
//
// It is the stream's bulk form of snapshot rows (change.proto, op COPY): the initial copy
// passes the rows as COPY TO gave them and apply hands them to COPY FROM as they are, instead
// of parsing every value into a Tuple and encoding it again (issue #19). What needs the rows
// one by one (the careful path, a rejoin's quarantine) expands them here.
//
// Example:
//   if (auto problem = CopyRowsProblem(relation, change, max_value_bytes)) return Refuse(*problem);
//   std::vector<v1::Change> inserts;
//   FERRY_RETURN_IF_ERROR(ExpandCopyRows(change, relation.columns_size(), &inserts));
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/change.pb.h"

namespace ferry {

// The most bytes the compressed COPY rows of one record inflate to, all its changes together:
// the log's default largest record (LogOptions::max_record_bytes). Rows larger than that are
// never compressed, so the log where they are captured refuses them as it would uncompressed.
inline constexpr size_t kMaxInflatedCopyRowsBytes = size_t{64} << 20;

// Moves a COPY change's rows into copy_rows_zstd, compressed at zstd `level` in a frame that
// records their size and checksum, when that makes them at least an eighth smaller and they
// are at most kMaxInflatedCopyRowsBytes; otherwise leaves the change as it is. Rows of an
// initial copy are most of its bytes, and each byte is otherwise written to the log's WAL and
// flushed to its tables on both sides and compressed again for the stream
// (bench/side_by_side/FINDINGS.md, session 31). kInternal only when zstd fails.
[[nodiscard]] absl::Status CompressCopyRows(v1::Change* change, int level);

// Inflates every change of `txn` that carries copy_rows_zstd back into copy_rows, which every
// other reader of a change uses; returns the bytes inflated. kDataLoss when such a change is
// not a COPY or has both fields, a frame is damaged or does not record its size and checksum,
// or the record's rows would inflate past kMaxInflatedCopyRowsBytes (a small frame can declare
// gigabytes: nothing is allocated for a frame before its size is checked).
[[nodiscard]] absl::StatusOr<size_t> InflateCopyRows(v1::Transaction* txn);

// Appends the row's values to `tuple`. `row` may end with its newline. kDataLoss when the row
// does not have exactly `columns` columns or ends inside an escape.
[[nodiscard]] absl::Status ParseCopyTextRow(absl::string_view row, int columns, v1::Tuple* tuple);

// What is wrong with a COPY change for `relation`, or nullopt: rows not ended by a newline, a
// row count other than copy_row_count, a row with another number of columns, an escape cut off
// at a row's end, a value with a NUL byte or longer than `max_value_bytes` once unescaped, or
// the end-of-data marker "\." as a row (COPY FROM would stop reading there). The checks of a
// row's values are those apply makes of a Tuple (sink_sql.h TupleProblem).
std::optional<std::string> CopyRowsProblem(const v1::Relation& relation, const v1::Change& change,
                                           size_t max_value_bytes);

// Appends one INSERT per row of a COPY change (same relation_id) to `out`. kDataLoss when a row
// is malformed (see ParseCopyTextRow) or the count differs from copy_row_count.
[[nodiscard]] absl::Status ExpandCopyRows(const v1::Change& change, int columns,
                                          std::vector<v1::Change>* out);

// Replaces every COPY change of `txn` by its INSERTs, in place (for readers that take rows one
// by one), inflating compressed rows first. kDataLoss as above and as InflateCopyRows, or when a
// COPY change names a relation the transaction does not describe.
[[nodiscard]] absl::Status ExpandCopyChanges(v1::Transaction* txn);

}  // namespace ferry
