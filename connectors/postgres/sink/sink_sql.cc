#include "connectors/postgres/sink/sink_sql.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "connectors/postgres/common/identifiers.h"

namespace ferry::pg_sink {
namespace {

std::string Table(const v1::Relation& r) { return pg::QualifiedName(r.schema(), r.name()); }

// "character varying(20)" -> {"character varying", 20}; no modifier -> -1.
std::pair<std::string, int> SplitModifier(std::string_view type) {
  auto open = type.find('(');
  if (open == std::string_view::npos || type.back() != ')') return {std::string(type), -1};
  std::string_view inner = type.substr(open + 1, type.size() - open - 2);
  int n = -1;
  if (inner.find(',') != std::string_view::npos || !absl::SimpleAtoi(std::string(inner), &n))
    n = -2;
  return {std::string(type.substr(0, open)), n};
}

}  // namespace

std::string CreateTableSql(const v1::Relation& relation) {
  std::vector<std::string> parts;
  for (const auto& c : relation.columns()) {
    parts.push_back(absl::StrCat(pg::QuoteIdentifier(c.name()), " ", c.type_name(),
                                 c.not_null() ? " NOT NULL" : ""));
  }
  std::vector<std::string> pk;
  for (const auto& name : relation.primary_key()) pk.push_back(pg::QuoteIdentifier(name));
  if (pk.empty() && relation.replica_identity() != v1::REPLICA_IDENTITY_FULL) {
    for (const auto& c : relation.columns()) {
      if (c.part_of_key()) pk.push_back(pg::QuoteIdentifier(c.name()));
    }
  }
  if (!pk.empty()) parts.push_back(absl::StrCat("PRIMARY KEY (", absl::StrJoin(pk, ", "), ")"));
  return absl::StrCat("CREATE TABLE ", Table(relation), " (", absl::StrJoin(parts, ", "), ")");
}

bool TypeHolds(std::string_view wide, std::string_view narrow) {
  if (wide == narrow) return true;
  auto [w, wn] = SplitModifier(wide);
  auto [n, nn] = SplitModifier(narrow);
  auto is_int = [](const std::string& t) {
    return t == "smallint" || t == "integer" || t == "bigint";
  };
  auto rank = [](const std::string& t) { return t == "smallint" ? 1 : t == "integer" ? 2 : 3; };
  if (is_int(w) && is_int(n)) return rank(w) >= rank(n);
  if (w == "double precision" && (n == "real" || n == "double precision")) return true;
  const bool w_text = w == "text" || w == "character varying";
  const bool n_text = n == "text" || n == "character varying" || n == "character";
  if (w_text && n_text) {
    if (w == "text" || wn == -1) return true;
    return nn >= 0 && wn >= nn && n != "text";
  }
  if (w == "numeric" && n == "numeric" && wn == -1) return true;
  return false;
}

std::string InsertSql(const v1::Relation& relation, int rows) {
  std::vector<std::string> cols;
  for (const auto& c : relation.columns()) cols.push_back(pg::QuoteIdentifier(c.name()));
  std::string sql = absl::StrCat("INSERT INTO ", Table(relation), " (", absl::StrJoin(cols, ", "),
                                 ") OVERRIDING SYSTEM VALUE VALUES ");
  int p = 1;
  for (int r = 0; r < rows; ++r) {
    absl::StrAppend(&sql, r == 0 ? "(" : ", (");
    for (int c = 0; c < relation.columns_size(); ++c) {
      absl::StrAppend(&sql, c == 0 ? "$" : ", $", p++);
    }
    absl::StrAppend(&sql, ")");
  }
  absl::StrAppend(&sql, " ON CONFLICT DO NOTHING");
  return sql;
}

bool IsFull(const v1::Relation& relation) {
  return relation.replica_identity() == v1::REPLICA_IDENTITY_FULL;
}

std::vector<int> IdentityColumns(const v1::Relation& relation) {
  std::vector<int> out;
  for (int i = 0; i < relation.columns_size(); ++i) {
    if (IsFull(relation) || relation.columns(i).part_of_key()) out.push_back(i);
  }
  return out;
}

RowMatch MatchRow(const v1::Relation& relation, const std::vector<TargetColumn>& target,
                  const std::vector<int>& columns, int first_param) {
  RowMatch m;
  std::vector<std::string> conds;
  int p = first_param;
  for (int c : columns) {
    const std::string& name = relation.columns(c).name();
    const std::string col = pg::QuoteIdentifier(name);
    if (IsFull(relation)) {
      std::string type = relation.columns(c).type_name();
      for (const auto& t : target) {
        if (t.name == name) type = t.type;
      }
      conds.push_back(
          absl::StrCat(col, "::text IS NOT DISTINCT FROM ($", p++, "::", type, ")::text"));
    } else {
      conds.push_back(absl::StrCat(col, " = $", p++));
    }
    m.columns.push_back(c);
  }
  std::string cond = conds.empty() ? "true" : absl::StrJoin(conds, " AND ");
  if (IsFull(relation)) {
    m.where = absl::StrCat("WHERE ctid = (SELECT ctid FROM ", Table(relation), " WHERE ", cond,
                           " LIMIT 1 FOR UPDATE)");
  } else {
    m.where = absl::StrCat("WHERE ", cond);
  }
  return m;
}

std::string UpdateSql(const v1::Relation& relation, const std::vector<int>& set_columns,
                      const RowMatch& match) {
  std::vector<std::string> sets;
  int p = 1;
  for (int c : set_columns) {
    sets.push_back(absl::StrCat(pg::QuoteIdentifier(relation.columns(c).name()), " = $", p++));
  }
  return absl::StrCat("UPDATE ", Table(relation), " SET ", absl::StrJoin(sets, ", "), " ",
                      match.where);
}

std::string DeleteSql(const v1::Relation& relation, const RowMatch& match) {
  return absl::StrCat("DELETE FROM ", Table(relation), " ", match.where);
}

std::string SelectJsonSql(const v1::Relation& relation, const RowMatch& match) {
  return absl::StrCat("SELECT to_jsonb(t)::text FROM ", Table(relation), " AS t ", match.where);
}

namespace {

// unnest($1::T1[], $2::T2[], ...) AS v("p1", "p2", ...) over the given columns.
std::string UnnestOf(const std::vector<std::string>& types, const std::vector<int>& columns) {
  std::vector<std::string> args;
  std::vector<std::string> names;
  int p = 1;
  for (int c : columns) {
    args.push_back(absl::StrCat("$", p, "::", types[c], "[]"));
    names.push_back(absl::StrCat("\"p", p, "\""));
    ++p;
  }
  return absl::StrCat("unnest(", absl::StrJoin(args, ", "), ") AS v(", absl::StrJoin(names, ", "),
                      ")");
}

// t."key" = v."p1" AND ... for the first key_columns.size() parameters.
std::string KeyJoin(const v1::Relation& relation, const std::vector<int>& key_columns) {
  std::vector<std::string> conds;
  int p = 1;
  for (int c : key_columns) {
    conds.push_back(
        absl::StrCat("t.", pg::QuoteIdentifier(relation.columns(c).name()), " = v.\"p", p++, "\""));
  }
  return absl::StrJoin(conds, " AND ");
}

}  // namespace

std::string CopySql(const v1::Relation& relation) {
  std::vector<std::string> cols;
  for (const auto& c : relation.columns()) cols.push_back(pg::QuoteIdentifier(c.name()));
  return absl::StrCat("COPY ", Table(relation), " (", absl::StrJoin(cols, ", "), ") FROM STDIN");
}

std::string BatchInsertSql(const v1::Relation& relation, const std::vector<std::string>& types) {
  std::vector<std::string> cols;
  std::vector<int> all;
  for (int i = 0; i < relation.columns_size(); ++i) {
    cols.push_back(pg::QuoteIdentifier(relation.columns(i).name()));
    all.push_back(i);
  }
  return absl::StrCat("INSERT INTO ", Table(relation), " (", absl::StrJoin(cols, ", "),
                      ") OVERRIDING SYSTEM VALUE SELECT * FROM ", UnnestOf(types, all),
                      " ON CONFLICT DO NOTHING");
}

std::string BatchUpdateSql(const v1::Relation& relation, const std::vector<std::string>& types,
                           const std::vector<int>& key_columns,
                           const std::vector<int>& set_columns) {
  std::vector<int> params = key_columns;
  params.insert(params.end(), set_columns.begin(), set_columns.end());
  std::vector<std::string> sets;
  int p = static_cast<int>(key_columns.size()) + 1;
  for (int c : set_columns) {
    sets.push_back(
        absl::StrCat(pg::QuoteIdentifier(relation.columns(c).name()), " = v.\"p", p++, "\""));
  }
  return absl::StrCat("UPDATE ", Table(relation), " AS t SET ", absl::StrJoin(sets, ", "), " FROM ",
                      UnnestOf(types, params), " WHERE ", KeyJoin(relation, key_columns));
}

std::string BatchDeleteSql(const v1::Relation& relation, const std::vector<std::string>& types,
                           const std::vector<int>& key_columns) {
  return absl::StrCat("DELETE FROM ", Table(relation), " AS t USING ", UnnestOf(types, key_columns),
                      " WHERE ", KeyJoin(relation, key_columns));
}

namespace {
constexpr absl::string_view kRowCountMarker = "ferry row count ";
}  // namespace

std::string RowCountCheckedSql(std::string_view statement, int params) {
  // The ELSE branch depends on the aggregate, so the planner cannot fold it: the cast of the
  // marker text to integer runs, and fails, only when the count is not the expected one.
  return absl::StrCat("WITH ferry_rows AS (", absl::string_view(statement.data(), statement.size()),
                      " RETURNING 1) SELECT CASE WHEN count(*) = $", params + 1,
                      "::bigint THEN 0 ELSE ('", kRowCountMarker,
                      "' || count(*))::integer END FROM ferry_rows");
}

std::optional<int64_t> CheckedRowCount(std::string_view text) {
  const absl::string_view message(text.data(), text.size());
  const size_t at = message.find(kRowCountMarker);
  if (at == absl::string_view::npos) return std::nullopt;
  absl::string_view rest = message.substr(at + kRowCountMarker.size());
  size_t digits = 0;
  while (digits < rest.size() && absl::ascii_isdigit(rest[digits])) ++digits;
  int64_t n = 0;
  if (digits == 0 || !absl::SimpleAtoi(rest.substr(0, digits), &n)) return std::nullopt;
  return n;
}

void AppendArrayElement(std::string* out, const std::string* text) {
  if (text == nullptr) {
    out->append("NULL");
    return;
  }
  out->push_back('"');
  size_t start = 0;
  for (size_t i = 0; i < text->size(); ++i) {
    const char ch = (*text)[i];
    if (ch == '"' || ch == '\\') {
      out->append(*text, start, i - start);
      out->push_back('\\');
      out->push_back(ch);
      start = i + 1;
    }
  }
  out->append(*text, start, text->size() - start);
  out->push_back('"');
}

void AppendCopyField(std::string* out, const std::string* text) {
  if (text == nullptr) {
    out->append("\\N");
    return;
  }
  size_t start = 0;
  for (size_t i = 0; i < text->size(); ++i) {
    const char ch = (*text)[i];
    const char* escaped = ch == '\\'   ? "\\\\"
                          : ch == '\t' ? "\\t"
                          : ch == '\n' ? "\\n"
                          : ch == '\r' ? "\\r"
                                       : nullptr;
    if (escaped == nullptr) continue;
    out->append(*text, start, i - start);
    out->append(escaped);
    start = i + 1;
  }
  out->append(*text, start, text->size() - start);
}

namespace {
void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (unsigned char ch : s) {
    switch (ch) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (ch < 0x20) {
          absl::StrAppend(out, "\\u00", absl::Hex(ch, absl::kZeroPad2));
        } else {
          out->push_back(static_cast<char>(ch));
        }
    }
  }
  out->push_back('"');
}
}  // namespace

std::optional<std::string> TupleProblem(const v1::Relation& relation, const v1::Tuple& tuple,
                                        bool allow_toast, const char* what,
                                        size_t max_value_bytes) {
  if (tuple.values_size() != relation.columns_size()) {
    return absl::StrCat("malformed change: the ", what, " has ", tuple.values_size(),
                        " values but the relation has ", relation.columns_size(), " columns");
  }
  for (int i = 0; i < tuple.values_size(); ++i) {
    const v1::Value& v = tuple.values(i);
    const std::string& col = relation.columns(i).name();
    switch (v.kind_case()) {
      case v1::Value::kNull:
        break;
      case v1::Value::kText:
        if (v.text().size() > max_value_bytes) {
          return absl::StrCat("value of column \"", col, "\" is ", v.text().size(),
                              " bytes, over apply.max_value_bytes (", max_value_bytes, ")");
        }
        if (v.text().find('\0') != std::string::npos) {
          return absl::StrCat("value of column \"", col, "\" contains a NUL byte");
        }
        break;
      case v1::Value::kUnchangedToast:
        if (!allow_toast) {
          return absl::StrCat("malformed change: column \"", col, "\" of the ", what,
                              " is marked unchanged-TOAST");
        }
        break;
      case v1::Value::kBinary:
        return absl::StrCat("column \"", col, "\": binary values are not supported by the sink");
      default:
        return absl::StrCat("malformed change: value of column \"", col, "\" has no kind");
    }
  }
  return std::nullopt;
}

std::string RowJson(const v1::Relation& relation, const v1::Tuple& tuple) {
  std::string out = "{";
  bool first = true;
  for (int i = 0; i < relation.columns_size() && i < tuple.values_size(); ++i) {
    const v1::Value& v = tuple.values(i);
    if (v.kind_case() == v1::Value::kUnchangedToast) continue;
    if (!first) out.push_back(',');
    first = false;
    AppendJsonString(&out, relation.columns(i).name());
    out.push_back(':');
    switch (v.kind_case()) {
      case v1::Value::kText:
        // Postgres text cannot hold NUL; jsonb refuses \u0000, so show it escaped.
        AppendJsonString(&out, v.text().find('\0') == std::string::npos ? v.text() : "<NUL>");
        break;
      case v1::Value::kBinary: {
        std::string hex = "\\x";
        for (unsigned char b : v.binary()) absl::StrAppend(&hex, absl::Hex(b, absl::kZeroPad2));
        AppendJsonString(&out, hex);
        break;
      }
      default:
        out.append("null");
    }
  }
  out.push_back('}');
  return out;
}

}  // namespace ferry::pg_sink
