#include "connectors/postgres/common/identifiers.h"

namespace ferry::pg {
namespace {

std::string QuoteWith(absl::string_view text, char quote) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back(quote);
  for (char c : text) {
    if (c == quote) out.push_back(quote);
    out.push_back(c);
  }
  out.push_back(quote);
  return out;
}

}  // namespace

std::string QuoteIdentifier(absl::string_view name) { return QuoteWith(name, '"'); }

std::string QualifiedName(absl::string_view schema, absl::string_view name) {
  return QuoteIdentifier(schema) + "." + QuoteIdentifier(name);
}

std::string QuoteLiteral(absl::string_view text) { return QuoteWith(text, '\''); }

}  // namespace ferry::pg
