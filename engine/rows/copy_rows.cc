#include "engine/rows/copy_rows.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/base/zstd_context.h"

namespace ferry {
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

namespace {

// Walks the values of one row (without its newline) as ParseCopyTextRow reads them, without
// storing them: the count of columns, and the first problem of a value.
struct RowScan {
  int columns = 0;
  std::optional<std::string> problem;
};

RowScan ScanRow(absl::string_view row, const v1::Relation& relation, size_t max_value_bytes) {
  RowScan scan;
  if (relation.columns_size() == 0 && row.empty()) return scan;
  // Most rows hold no escape, NUL or carriage return, and no value longer than the limit: then
  // the values are the tab-separated fields and none has a problem. Three memchr and a count
  // instead of a branch per byte (this scan was a third of a standby's CPU in an initial load).
  if (row.size() <= max_value_bytes && std::memchr(row.data(), '\\', row.size()) == nullptr &&
      std::memchr(row.data(), '\0', row.size()) == nullptr &&
      std::memchr(row.data(), '\r', row.size()) == nullptr) {
    scan.columns = 1 + static_cast<int>(std::count(row.begin(), row.end(), '\t'));
    return scan;
  }
  size_t i = 0;
  while (true) {
    const int column = scan.columns++;
    auto name = [&] {
      return column < relation.columns_size() ? relation.columns(column).name()
                                              : absl::StrCat("#", column + 1);
    };
    size_t length = 0;
    bool nul = false;
    const bool null = row.substr(i, 2) == "\\N" && (i + 2 == row.size() || row[i + 2] == '\t');
    if (null) i += 2;
    while (!null && i < row.size() && row[i] != '\t') {
      char c = row[i++];
      ++length;
      if (c == '\0') nul = true;
      if (c == '\r') {
        // COPY TO escapes it; COPY FROM would take a row ending in one as a CRLF row ending.
        scan.problem = absl::StrCat(
            "malformed change: a COPY row has a raw carriage return in column \"", name(), "\"");
        return scan;
      }
      if (c != '\\') continue;
      if (i >= row.size()) {
        scan.problem = absl::StrCat("a COPY row ends inside an escape in column \"", name(), "\"");
        return scan;
      }
      const char e = row[i++];
      if (e == '.') {
        // COPY FROM (text format, Postgres 15) ends the data at an unescaped \. anywhere.
        scan.problem = absl::StrCat(
            "malformed change: a COPY row has the end-of-data marker in column \"", name(), "\"");
        return scan;
      }
      int v = -1;
      if (e == 'x') {
        int digits = 0;
        v = 0;
        while (digits < 2 && i < row.size() && HexValue(row[i]) >= 0) {
          v = v * 16 + HexValue(row[i++]);
          ++digits;
        }
        if (digits == 0) v = -1;
      } else if (e >= '0' && e <= '7') {
        v = e - '0';
        for (int digits = 1; digits < 3 && i < row.size() && row[i] >= '0' && row[i] <= '7';
             ++digits) {
          v = v * 8 + (row[i++] - '0');
        }
      }
      if (v >= 0 && (v & 0xff) == 0) nul = true;
    }
    if (!scan.problem && length > max_value_bytes) {
      scan.problem = absl::StrCat("value of column \"", name(), "\" is ", length,
                                  " bytes, over apply.max_value_bytes (", max_value_bytes, ")");
    }
    if (!scan.problem && nul) {
      scan.problem = absl::StrCat("value of column \"", name(), "\" contains a NUL byte");
    }
    if (i >= row.size()) break;
    ++i;  // the tab
  }
  return scan;
}

// Calls `each` with every row of `data` (without its newline); false when `data` does not end
// with a newline.
template <typename F>
bool ForEachRow(absl::string_view data, F each) {
  if (!data.empty() && data.back() != '\n') return false;
  while (!data.empty()) {
    const size_t end = data.find('\n');
    if (!each(data.substr(0, end))) return true;
    data.remove_prefix(end + 1);
  }
  return true;
}

}  // namespace

absl::Status CompressCopyRows(v1::Change* change, int level) {
  const std::string& rows = change->copy_rows();
  // Rows past what a reader inflates stay as they are: the log refuses the record where it is
  // captured, as it did before compression, instead of the standby refusing it.
  if (rows.empty() || rows.size() > kMaxInflatedCopyRowsBytes) return absl::OkStatus();
  ZSTD_CCtx* cctx = ThreadCompressionContext();
  if (cctx == nullptr) return absl::OkStatus();  // out of memory: the rows travel as they are
  // The frame records its size (the default) and a checksum of the rows, which inflating checks:
  // a damaged frame is refused, never inflated into other rows of the same size.
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  size_t n = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  if (!ZSTD_isError(n)) n = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  // The thread's buffer, kept: a fresh one per chunk would be zero-filled and faulted in anew.
  thread_local std::string buffer;
  if (buffer.size() < ZSTD_compressBound(rows.size()))
    buffer.resize(ZSTD_compressBound(rows.size()));
  if (!ZSTD_isError(n)) {
    n = ZSTD_compress2(cctx, buffer.data(), buffer.size(), rows.data(), rows.size());
  }
  if (ZSTD_isError(n)) {
    return absl::InternalError(
        absl::StrCat("compressing COPY rows failed: ", ZSTD_getErrorName(n)));
  }
  if (n > rows.size() - rows.size() / 8) return absl::OkStatus();
  change->set_copy_rows_zstd(buffer.data(), n);
  change->clear_copy_rows();
  return absl::OkStatus();
}

absl::StatusOr<size_t> InflateCopyRows(v1::Transaction* txn) {
  size_t inflated = 0;
  for (v1::Change& c : *txn->mutable_changes()) {
    if (c.copy_rows_zstd().empty()) continue;
    const std::string& frame = c.copy_rows_zstd();
    const std::string what = absl::StrCat("the compressed COPY rows of relation ", c.relation_id());
    if (c.op() != v1::COPY) {
      return absl::DataLossError(absl::StrCat("a change of operation ", static_cast<int>(c.op()),
                                              " carries compressed COPY rows"));
    }
    if (!c.copy_rows().empty()) {
      return absl::DataLossError(absl::StrCat("a COPY change of relation ", c.relation_id(),
                                              " carries its rows both compressed and not"));
    }
    // A zstd frame (RFC 8878, 3.1.1) opens with its magic number (a skippable frame's differs),
    // then a descriptor whose bit 2 says a checksum of the content ends it.
    const unsigned long long size = ZSTD_getFrameContentSize(frame.data(), frame.size());
    if (frame.size() < 5 || frame.compare(0, 4, "\x28\xb5\x2f\xfd") != 0 ||
        (frame[4] & 0x04) == 0 || size == ZSTD_CONTENTSIZE_ERROR ||
        size == ZSTD_CONTENTSIZE_UNKNOWN) {
      return absl::DataLossError(
          absl::StrCat(what, " are not a zstd frame that records its size and checksum"));
    }
    // The bound is the whole record's: a small record could hold many frames that each declare
    // the most one may.
    if (size > kMaxInflatedCopyRowsBytes - inflated) {
      return absl::DataLossError(absl::StrCat(what, " would inflate to ", size, " bytes, past the ",
                                              kMaxInflatedCopyRowsBytes,
                                              " a record's rows may take"));
    }
    // Exactly the declared size: a frame that holds more fails with "destination buffer is too
    // small" instead of growing the buffer; zstd checks the checksum.
    std::string rows(static_cast<size_t>(size), '\0');
    ZSTD_DCtx* dctx = ThreadDecompressionContext();
    size_t n;
    if (dctx != nullptr) {
      ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);  // the checksum checked
      n = ZSTD_decompressDCtx(dctx, rows.data(), rows.size(), frame.data(), frame.size());
    } else {
      n = ZSTD_decompress(rows.data(), rows.size(), frame.data(), frame.size());
    }
    if (ZSTD_isError(n) || n != rows.size()) {
      return absl::DataLossError(
          absl::StrCat(what, " do not inflate: ",
                       ZSTD_isError(n) ? ZSTD_getErrorName(n) : "shorter than the frame declares"));
    }
    inflated += rows.size();
    c.set_copy_rows(std::move(rows));
    c.clear_copy_rows_zstd();
  }
  return inflated;
}

std::optional<std::string> CopyRowsProblem(const v1::Relation& relation, const v1::Change& change,
                                           size_t max_value_bytes) {
  std::optional<std::string> problem;
  uint64_t rows = 0;
  const bool ended = ForEachRow(change.copy_rows(), [&](absl::string_view row) {
    ++rows;
    RowScan scan = ScanRow(row, relation, max_value_bytes);
    if (scan.problem) {
      problem = std::move(scan.problem);
      return false;
    }
    if (scan.columns != relation.columns_size()) {
      problem = absl::StrCat("malformed change: COPY row ", rows, " has ", scan.columns,
                             " values but the relation has ", relation.columns_size(), " columns");
      return false;
    }
    return true;
  });
  if (problem) return problem;
  if (!ended) return "malformed change: the COPY rows do not end with a newline";
  if (rows != change.copy_row_count()) {
    return absl::StrCat("malformed change: ", rows, " COPY rows, but the change says ",
                        change.copy_row_count());
  }
  return std::nullopt;
}

absl::Status ExpandCopyRows(const v1::Change& change, int columns, std::vector<v1::Change>* out) {
  absl::Status status;
  uint64_t rows = 0;
  const bool ended = ForEachRow(change.copy_rows(), [&](absl::string_view row) {
    v1::Change& insert = out->emplace_back();
    insert.set_op(v1::INSERT);
    insert.set_relation_id(change.relation_id());
    status = ParseCopyTextRow(row, columns, insert.mutable_new_tuple());
    ++rows;
    return status.ok();
  });
  if (!status.ok()) return status;
  if (!ended) return absl::DataLossError("COPY rows do not end with a newline");
  if (rows != change.copy_row_count()) {
    return absl::DataLossError(
        absl::StrCat(rows, " COPY rows, but the change says ", change.copy_row_count()));
  }
  return absl::OkStatus();
}

absl::Status ExpandCopyChanges(v1::Transaction* txn) {
  if (absl::StatusOr<size_t> inflated = InflateCopyRows(txn); !inflated.ok()) {
    return inflated.status();
  }
  bool any = false;
  for (const v1::Change& c : txn->changes()) any = any || c.op() == v1::COPY;
  if (!any) return absl::OkStatus();
  std::vector<v1::Change> changes;
  for (v1::Change& c : *txn->mutable_changes()) {
    if (c.op() != v1::COPY) {
      changes.push_back(std::move(c));
      continue;
    }
    int columns = -1;
    for (const v1::Relation& r : txn->relations()) {
      if (r.relation_id() == c.relation_id()) columns = r.columns_size();
    }
    if (columns < 0) {
      return absl::DataLossError(absl::StrCat("COPY rows of relation ", c.relation_id(),
                                              " that the transaction does not describe"));
    }
    absl::Status s = ExpandCopyRows(c, columns, &changes);
    if (!s.ok()) return s;
  }
  txn->clear_changes();
  for (v1::Change& c : changes) *txn->add_changes() = std::move(c);
  return absl::OkStatus();
}

}  // namespace ferry
