#include "consistency/postgres/pg_verify_session.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "connectors/postgres/common/identifiers.h"
#include "engine/base/status_macros.h"

namespace ferry::consistency {
namespace {

// Settings that shape the text of values; the same on both regions (docs/verify.md).
constexpr const char* kSessionSettings =
    "SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'; "
    "SET extra_float_digits = 1; SET bytea_output = 'hex'; SET client_encoding = 'UTF8'; "
    "SET standard_conforming_strings = on; SET search_path = pg_catalog; "
    "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0";

constexpr const char* kCursor = "ferry_verify_scan";

}  // namespace

const char* VerifySessionSettings() { return kSessionSettings; }

VerifySession::VerifySession(std::unique_ptr<pg::PgConnection> conn)
    : conn_(std::move(conn)), cancel_(PQgetCancel(conn_->raw())) {}

VerifySession::~VerifySession() {
  if (cancel_ != nullptr) PQfreeCancel(cancel_);
}

void VerifySession::Cancel() {
  if (cancel_ == nullptr) return;
  char error[256];
  (void)PQcancel(cancel_, error, sizeof error);  // best effort: the scan checks a flag too
}

absl::StatusOr<std::unique_ptr<VerifySession>> VerifySession::Open(
    const std::string& dsn, const std::optional<std::string>& snapshot) {
  FERRY_ASSIGN_OR_RETURN(auto conn, pg::PgConnection::Connect(dsn));
  FERRY_RETURN_IF_ERROR(conn->Exec(kSessionSettings).status());
  FERRY_RETURN_IF_ERROR(conn->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").status());
  if (snapshot.has_value()) {
    auto set = conn->Exec(absl::StrCat("SET TRANSACTION SNAPSHOT ", pg::QuoteLiteral(*snapshot)));
    if (!set.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot read at the verify's cut (snapshot ", *snapshot, "): ", set.status().message()));
    }
  }
  // The snapshot is taken now (the first statement of a REPEATABLE READ transaction), while the
  // caller holds the cut.
  FERRY_RETURN_IF_ERROR(conn->Exec("SELECT 1").status());
  return std::unique_ptr<VerifySession>(new VerifySession(std::move(conn)));
}

absl::StatusOr<std::vector<TableName>> VerifySession::ListTables() {
  FERRY_ASSIGN_OR_RETURN(
      pg::PgResult r,
      conn_->Exec("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON "
                  "n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
                  "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ferry') AND "
                  "n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' "
                  "ORDER BY 1, 2"));
  std::vector<TableName> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back({std::string(r.Get(i, 0)), std::string(r.Get(i, 1))});
  }
  return out;
}

absl::StatusOr<TableSchema> VerifySession::ReadSchema(const TableName& table) {
  const std::string qualified = pg::QualifiedName(table.schema, table.name);
  FERRY_ASSIGN_OR_RETURN(
      pg::PgResult cols,
      conn_->ExecParams(
          "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
          "coalesce((SELECT collname FROM pg_collation WHERE oid = a.attcollation), '') "
          "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON "
          "n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND "
          "c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
          {table.schema, table.name}));
  FERRY_ASSIGN_OR_RETURN(
      pg::PgResult exists,
      conn_->ExecParams("SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
                        {table.schema, table.name}));
  if (exists.rows() == 0) return absl::NotFoundError(absl::StrCat("no table ", qualified));
  TableSchema schema{.schema = table.schema, .name = table.name};
  for (int i = 0; i < cols.rows(); ++i) {
    schema.columns.push_back(
        {std::string(cols.Get(i, 0)), std::string(cols.Get(i, 1)), std::string(cols.Get(i, 2))});
  }
  FERRY_ASSIGN_OR_RETURN(
      pg::PgResult key,
      conn_->ExecParams("SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
                        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
                        "WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary ORDER BY k.ord",
                        {table.schema, table.name}));
  for (int i = 0; i < key.rows(); ++i) schema.key_columns.emplace_back(key.Get(i, 0));
  FERRY_ASSIGN_OR_RETURN(
      pg::PgResult constraint,
      conn_->ExecParams("SELECT co.conname FROM pg_constraint co JOIN pg_class c ON "
                        "c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = $1 AND c.relname = $2 AND co.contype = 'p'",
                        {table.schema, table.name}));
  if (constraint.rows() > 0) schema.key_constraint = std::string(constraint.Get(0, 0));
  return schema;
}

PgTableSide::PgTableSide(VerifySession& session, TableSpec spec, std::vector<bool> key_collatable)
    : session_(session), spec_(std::move(spec)), key_collatable_(std::move(key_collatable)) {
  for (const std::string& k : spec_.key_columns) {
    key_positions_.push_back(static_cast<int>(
        std::find(spec_.columns.begin(), spec_.columns.end(), k) - spec_.columns.begin()));
  }
}

absl::StatusOr<std::unique_ptr<PgTableSide>> PgTableSide::Create(VerifySession& session,
                                                                 const TableSpec& spec) {
  FERRY_ASSIGN_OR_RETURN(TableSchema schema, session.ReadSchema({spec.schema, spec.name}));
  auto find = [&](const std::string& name) -> const ColumnSchema* {
    for (const auto& c : schema.columns) {
      if (c.name == name) return &c;
    }
    return nullptr;
  };
  for (const std::string& c : spec.columns) {
    if (find(c) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("table ", spec.qualified(), " has no column ", c));
    }
  }
  std::vector<bool> collatable;
  for (const std::string& k : spec.key_columns) {
    const ColumnSchema* c = find(k);
    if (c == nullptr ||
        std::find(spec.columns.begin(), spec.columns.end(), k) == spec.columns.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("key column ", k, " of ", spec.qualified(), " is not a compared column"));
    }
    collatable.push_back(!c->collation.empty());
  }
  if (spec.leaf_bits < 0 || spec.leaf_bits > 30) {
    return absl::InvalidArgumentError("leaf_bits outside [0, 30]");
  }
  return std::unique_ptr<PgTableSide>(new PgTableSide(session, spec, std::move(collatable)));
}

std::string PgTableSide::KeyExpressions() const {
  if (spec_.keyless()) {
    std::vector<std::string> cols;
    for (const auto& c : spec_.columns) cols.push_back(pg::QuoteIdentifier(c));
    return absl::StrCat("(ROW(", absl::StrJoin(cols, ", "), ")::text COLLATE \"C\")");
  }
  std::vector<std::string> keys;
  for (size_t i = 0; i < spec_.key_columns.size(); ++i) {
    std::string k = pg::QuoteIdentifier(spec_.key_columns[i]);
    if (spec_.key_collate_c && key_collatable_[i]) absl::StrAppend(&k, " COLLATE \"C\"");
    keys.push_back(std::move(k));
  }
  return absl::StrJoin(keys, ", ");
}

absl::Status PgTableSide::Scan(const KeyRange& range, bool all_keys, int leaf_bits,
                               const RowCallback& row) {
  pg::PgConnection& conn = session_.connection();
  const size_t key_width = spec_.keyless() ? 1 : spec_.key_columns.size();
  auto bound = [&](const Values& key, const char* op) -> absl::StatusOr<std::string> {
    if (key.size() != key_width) {
      return absl::InvalidArgumentError(absl::StrCat("a key of ", key.size(), " values for ",
                                                     spec_.qualified(), " (", key_width, ")"));
    }
    std::vector<std::string> literals;
    for (const auto& v : key) {
      if (!v.has_value()) return absl::InvalidArgumentError("a NULL key value");
      if (v->find('\0') != std::string::npos) {
        return absl::InvalidArgumentError("a key value holds a NUL byte");
      }
      literals.push_back(pg::QuoteLiteral(*v));
    }
    return absl::StrCat("ROW(", KeyExpressions(), ") ", op, " ROW(", absl::StrJoin(literals, ", "),
                        ")");
  };
  std::vector<std::string> where;
  if (range.begin.has_value()) {
    FERRY_ASSIGN_OR_RETURN(std::string b, bound(*range.begin, ">="));
    where.push_back(std::move(b));
  }
  if (range.end.has_value()) {
    FERRY_ASSIGN_OR_RETURN(std::string e, bound(*range.end, "<"));
    where.push_back(std::move(e));
  }
  std::vector<std::string> select;
  if (spec_.keyless()) select.push_back(KeyExpressions());
  for (const auto& c : spec_.columns) select.push_back(pg::QuoteIdentifier(c));
  const std::string query =
      absl::StrCat("SELECT ", absl::StrJoin(select, ", "), " FROM ",
                   pg::QualifiedName(spec_.schema, spec_.name), where.empty() ? "" : " WHERE ",
                   absl::StrJoin(where, " AND "), " ORDER BY ", KeyExpressions());
  if (between_batches_) FERRY_RETURN_IF_ERROR(between_batches_());

  const int first_column = spec_.keyless() ? 1 : 0;
  const int ncols = static_cast<int>(spec_.columns.size());
  std::string encoded;
  std::string key_encoded;
  ScannedRow s;  // reused: its key's storage too
  // Hashes one row; value(c) is column c of the SELECT (nullopt: NULL). Returns row()'s answer.
  auto hash_row = [&](const auto& value) {
    encoded.clear();
    for (int c = 0; c < ncols; ++c) {
      const std::optional<absl::string_view> v = value(first_column + c);
      if (v.has_value()) bytes_read_ += v->size();
      AppendValue(&encoded, v);
    }
    s.row_hash = HashBytes(encoded);
    key_encoded.clear();
    if (spec_.keyless()) {
      AppendValue(&key_encoded, value(0));
    } else {
      for (int p : key_positions_) AppendValue(&key_encoded, value(p));
    }
    s.key_hash = HashBytes(key_encoded);
    s.key.clear();
    if (all_keys || IsLeafBoundary(s.key_hash, leaf_bits)) {
      if (spec_.keyless()) {
        s.key.emplace_back(std::string(*value(0)));
      } else {
        for (int p : key_positions_) {
          const std::optional<absl::string_view> v = value(p);
          s.key.push_back(v.has_value() ? std::optional<std::string>(std::string(*v))
                                        : std::nullopt);
        }
      }
    }
    return row(s);
  };
  // After each batch of rows: a cancel, and the rate limit (a wait until this many rows are
  // due, in slices of at most 100 ms with a cancel checked after each: a batch at a low rate
  // is seconds, and Ctrl-C must not wait for it).
  const absl::Time started = absl::Now();
  uint64_t scanned = 0;
  auto paced = [&](uint64_t rows) -> absl::Status {
    if (between_batches_) FERRY_RETURN_IF_ERROR(between_batches_());
    scanned += rows;
    if (spec_.max_rows_per_second == 0) return absl::OkStatus();
    const absl::Time due = started + absl::Seconds(static_cast<double>(scanned) /
                                                   static_cast<double>(spec_.max_rows_per_second));
    for (absl::Duration left = due - absl::Now(); left > absl::ZeroDuration();
         left = due - absl::Now()) {
      absl::SleepFor(std::min(left, absl::Milliseconds(100)));
      if (between_batches_) FERRY_RETURN_IF_ERROR(between_batches_());
    }
    return absl::OkStatus();
  };

  if (!range.begin.has_value() && !range.end.has_value()) {
    return ScanByCopy(query, first_column + ncols, hash_row, paced);
  }
  // A range (a digest's partial leaf, a differing leaf's rows; the caller may stop early):
  // a cursor, fetched in batches.
  FERRY_RETURN_IF_ERROR(
      conn.Exec(absl::StrCat("DECLARE ", kCursor, " NO SCROLL CURSOR FOR ", query)).status());
  int batch = 512;
  bool more = true;
  while (more) {
    FERRY_ASSIGN_OR_RETURN(pg::PgResult r,
                           conn.Exec(absl::StrCat("FETCH ", batch, " FROM ", kCursor)));
    batch = std::min(batch * 2, 2048);
    if (r.rows() == 0) break;
    FERRY_RETURN_IF_ERROR(paced(static_cast<uint64_t>(r.rows())));
    for (int i = 0; i < r.rows() && more; ++i) {
      more = hash_row([&](int c) {
        return r.IsNull(i, c) ? std::nullopt : std::optional<absl::string_view>(r.Get(i, c));
      });
    }
  }
  return conn.Exec(absl::StrCat("CLOSE ", kCursor)).status();
}

template <typename HashRow, typename Paced>
absl::Status PgTableSide::ScanByCopy(const std::string& query, int columns, HashRow& hash_row,
                                     Paced& paced) {
  // A whole table streams through COPY's text format: no round trip per batch and no result
  // set to build. Its values are the types' text output, as a SELECT's, escaped (CopyText).
  pg::PgConnection& conn = session_.connection();
  // Named like the cursor, so that an operator finds it in pg_stat_activity.
  FERRY_RETURN_IF_ERROR(
      conn.Exec(absl::StrCat("COPY (", query, ") TO STDOUT /* ", kCursor, " */")).status());
  PGconn* raw = conn.raw();
  CopyLine line(columns);
  absl::Status stop;  // a cancel, or a malformed line: the rest is drained
  bool more = true;
  uint64_t in_batch = 0;
  for (;;) {
    char* data = nullptr;
    const int n = PQgetCopyData(raw, &data, 0);
    if (n < 0) break;  // -1: the end; -2: an error (the result says which)
    std::unique_ptr<char, void (*)(void*)> owned(data, &PQfreemem);
    if (!more || !stop.ok()) continue;
    stop = line.Parse(absl::string_view(data, static_cast<size_t>(n)));
    if (!stop.ok()) {
      session_.Cancel();
      continue;
    }
    more = hash_row([&](int c) { return line.field(c); });
    if (++in_batch == 2048) {
      in_batch = 0;
      stop = paced(2048);
      if (!stop.ok()) session_.Cancel();
    }
  }
  absl::Status done;
  while (PGresult* result = PQgetResult(raw)) {
    if (PQresultStatus(result) != PGRES_COMMAND_OK && done.ok()) {
      done = conn.ResultError(result, "reading a table (COPY)");
    }
    PQclear(result);
  }
  FERRY_RETURN_IF_ERROR(stop);
  FERRY_RETURN_IF_ERROR(done);
  return in_batch > 0 ? paced(in_batch) : absl::OkStatus();
}

absl::Status CopyLine::Parse(absl::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  size_t c = 0;
  size_t start = 0;
  for (;;) {
    const size_t tab = line.find('\t', start);
    const absl::string_view raw =
        line.substr(start, tab == absl::string_view::npos ? absl::string_view::npos : tab - start);
    if (c >= fields_.size()) return absl::DataLossError("a COPY line with too many fields");
    if (raw == "\\N") {
      fields_[c] = std::nullopt;
    } else if (raw.find('\\') == absl::string_view::npos) {
      fields_[c] = raw;
    } else {
      std::string& out = unescaped_[c];
      out.clear();
      for (size_t i = 0; i < raw.size(); ++i) {
        char ch = raw[i];
        if (ch == '\\' && i + 1 < raw.size()) {
          switch (raw[++i]) {
            case 'b':
              ch = '\b';
              break;
            case 'f':
              ch = '\f';
              break;
            case 'n':
              ch = '\n';
              break;
            case 'r':
              ch = '\r';
              break;
            case 't':
              ch = '\t';
              break;
            case 'v':
              ch = '\v';
              break;
            default:
              ch = raw[i];  // \\ and any escaped character stand for themselves
          }
        }
        out.push_back(ch);
      }
      fields_[c] = absl::string_view(out);
    }
    ++c;
    if (tab == absl::string_view::npos) break;
    start = tab + 1;
  }
  if (c != fields_.size()) return absl::DataLossError("a COPY line with too few fields");
  return absl::OkStatus();
}

}  // namespace ferry::consistency
