#include "connectors/postgres/source/copy_text.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace ferry::pg {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

absl::Status ParseCopyTextRow(absl::string_view row, int columns, v1::Tuple* tuple) {
  if (!row.empty() && row.back() == '\n') row.remove_suffix(1);
  if (columns == 0 && row.empty()) return absl::OkStatus();  // a table without columns
  int seen = 0;
  size_t i = 0;
  while (true) {
    // A NULL is exactly "\N" as the whole field.
    if (row.substr(i, 2) == "\\N" && (i + 2 == row.size() || row[i + 2] == '\t')) {
      tuple->add_values()->set_null(true);
      i += 2;
    } else {
      std::string value;
      while (i < row.size() && row[i] != '\t') {
        char c = row[i++];
        if (c != '\\') {
          value.push_back(c);
          continue;
        }
        if (i >= row.size()) {
          return absl::DataLossError(
              absl::StrCat("COPY text row ends inside an escape at offset ", i));
        }
        char e = row[i++];
        switch (e) {
          case 'b':
            value.push_back('\b');
            break;
          case 'f':
            value.push_back('\f');
            break;
          case 'n':
            value.push_back('\n');
            break;
          case 'r':
            value.push_back('\r');
            break;
          case 't':
            value.push_back('\t');
            break;
          case 'v':
            value.push_back('\v');
            break;
          case 'x': {
            int v = 0, digits = 0;
            while (digits < 2 && i < row.size() && HexValue(row[i]) >= 0) {
              v = v * 16 + HexValue(row[i++]);
              ++digits;
            }
            if (digits == 0) {
              value.push_back('x');
            } else {
              value.push_back(static_cast<char>(v));
            }
            break;
          }
          default:
            if (e >= '0' && e <= '7') {
              int v = e - '0', digits = 1;
              while (digits < 3 && i < row.size() && row[i] >= '0' && row[i] <= '7') {
                v = v * 8 + (row[i++] - '0');
                ++digits;
              }
              value.push_back(static_cast<char>(v & 0xff));
            } else {
              value.push_back(e);
            }
        }
      }
      tuple->add_values()->set_text(std::move(value));
    }
    ++seen;
    if (i >= row.size()) break;
    ++i;  // the tab
  }
  if (seen != columns) {
    return absl::DataLossError(
        absl::StrCat("COPY text row has ", seen, " columns, expected ", columns));
  }
  return absl::OkStatus();
}

}  // namespace ferry::pg
