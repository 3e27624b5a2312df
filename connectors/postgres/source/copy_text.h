// Parser of one row of COPY ... TO STDOUT in text format (Postgres manual, "COPY", File
// Formats / Text Format): columns separated by a tab, the row ended by a newline, "\N" for
// NULL, and backslash escapes \b \f \n \r \t \v \\ \ooo (octal) \xhh (hex); any other escaped
// character stands for itself. The values come out as the types' text output, the same form
// pgoutput sends, so snapshot rows and streamed rows are interchangeable.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "proto/change.pb.h"

namespace ferry::pg {

// Appends the row's values to `tuple`. `row` may end with its newline. kDataLoss when the row
// does not have exactly `columns` columns or ends inside an escape.
[[nodiscard]] absl::Status ParseCopyTextRow(absl::string_view row, int columns, v1::Tuple* tuple);

}  // namespace ferry::pg
