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
#include "absl/strings/string_view.h"
#include "proto/change.pb.h"

namespace ferry {

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
// by one). kDataLoss as above, or when a COPY change names a relation the transaction does not
// describe.
[[nodiscard]] absl::Status ExpandCopyChanges(v1::Transaction* txn);

}  // namespace ferry
