// Quoting of SQL identifiers and literals for statements Ferry builds itself (publication
// names, table names, snapshot ids). Pure functions, no connection needed; they assume
// standard_conforming_strings = on (the default since Postgres 9.1).
//
// Example:
//   QualifiedName("Sales", "order items")  // "\"Sales\".\"order items\""
//   QuoteLiteral("it's")                    // "'it''s'"
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace ferry::pg {

// Always quotes: "name" with inner double quotes doubled. Safe for any identifier, including
// mixed case, spaces and keywords.
std::string QuoteIdentifier(absl::string_view name);

// schema.name, both quoted.
std::string QualifiedName(absl::string_view schema, absl::string_view name);

// 'text' with inner single quotes doubled. For values without NUL bytes (Postgres text cannot
// hold NUL anyway).
std::string QuoteLiteral(absl::string_view text);

}  // namespace ferry::pg
