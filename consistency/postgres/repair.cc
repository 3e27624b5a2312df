#include "consistency/postgres/repair.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "connectors/postgres/common/identifiers.h"
#include "engine/base/status_macros.h"

namespace ferry::consistency {
namespace {

constexpr char kRepairOrigin[] = "ferry_verify_repair";

std::string Literal(const std::optional<std::string>& v) {
  return v.has_value() ? pg::QuoteLiteral(*v) : "NULL";
}

absl::Status CheckValues(const Values& values, size_t width, const char* what) {
  if (values.size() != width) {
    return absl::InvalidArgumentError(
        absl::StrCat("repair: ", what, " of ", values.size(), " values, ", width, " expected"));
  }
  for (const auto& v : values) {
    if (v.has_value() && v->find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("repair: a NUL byte in a ", what));
    }
  }
  return absl::OkStatus();
}

// "ROW("k1", "k2") = ROW('a', 'b')"
std::string KeyCondition(const TableSpec& spec, const Values& key) {
  std::vector<std::string> cols, lits;
  for (size_t i = 0; i < spec.key_columns.size(); ++i) {
    cols.push_back(pg::QuoteIdentifier(spec.key_columns[i]));
    lits.push_back(Literal(key[i]));
  }
  return absl::StrCat("ROW(", absl::StrJoin(cols, ", "), ") = ROW(", absl::StrJoin(lits, ", "),
                      ")");
}

std::string SelectColumns(const TableSpec& spec) {
  std::vector<std::string> cols;
  for (const auto& c : spec.columns) cols.push_back(pg::QuoteIdentifier(c));
  return cols.empty() ? "1" : absl::StrJoin(cols, ", ");
}

// Keys are read and written this many at a time: one statement (or one batch of statements)
// per chunk, not per row (a rejoin repairs thousands).
constexpr size_t kChunk = 500;

// The key's values of a row read with SelectColumns, encoded as the map key below.
std::string KeyOfRow(const TableSpec& spec, const pg::PgResult& r, int row) {
  std::string out;
  for (const std::string& k : spec.key_columns) {
    const int c = static_cast<int>(std::find(spec.columns.begin(), spec.columns.end(), k) -
                                   spec.columns.begin());
    AppendValue(&out,
                r.IsNull(row, c) ? std::nullopt : std::optional<absl::string_view>(r.Get(row, c)));
  }
  return out;
}

std::string KeyOf(const Values& key) { return EncodeValues(key); }

// "(cond) OR (cond) ..." over the keys of `targets[from, to)` that `wanted` selects.
template <typename T, typename F>
std::string AnyKey(const TableSpec& spec, const std::vector<T>& items, size_t from, size_t to,
                   const F& key_of) {
  std::vector<std::string> conds;
  for (size_t i = from; i < to; ++i) conds.push_back(KeyCondition(spec, key_of(items[i])));
  return absl::StrCat("(", absl::StrJoin(conds, ") OR ("), ")");
}

}  // namespace

absl::StatusOr<std::vector<RepairRow>> ReadRepairRows(VerifySession& primary, const TableSpec& spec,
                                                      const std::vector<RepairTarget>& targets) {
  std::vector<RepairRow> out;
  out.reserve(targets.size());
  std::vector<const RepairTarget*> wanted;  // the rows to read: not the removals
  for (const RepairTarget& t : targets) {
    out.push_back(RepairRow{.target = t});
    if (!t.remove) wanted.push_back(&t);
  }
  const std::string table = pg::QualifiedName(spec.schema, spec.name);
  absl::flat_hash_map<std::string, Values> read;
  for (size_t from = 0; from < wanted.size(); from += kChunk) {
    const size_t to = std::min(wanted.size(), from + kChunk);
    FERRY_ASSIGN_OR_RETURN(
        pg::PgResult r,
        primary.connection().Exec(absl::StrCat(
            "SELECT ", SelectColumns(spec), " FROM ", table, " WHERE ",
            AnyKey(spec, wanted, from, to, [](const RepairTarget* t) { return t->key; }))));
    for (int row = 0; row < r.rows(); ++row) {
      Values values;
      for (int c = 0; c < static_cast<int>(spec.columns.size()); ++c) {
        values.push_back(r.GetOptional(row, c));
      }
      read[KeyOfRow(spec, r, row)] = std::move(values);
    }
  }
  for (RepairRow& row : out) {
    if (row.target.remove) continue;
    auto it = read.find(KeyOf(row.target.key));
    if (it == read.end()) {
      return absl::InternalError(absl::StrCat("repair: the primary's row for a key of ",
                                              spec.qualified(), " vanished from the cut"));
    }
    row.values = it->second;
  }
  return out;
}

absl::StatusOr<RepairCounts> RepairOnStandby(const std::string& dsn, const TableSpec& spec,
                                             const std::vector<RepairRow>& rows) {
  if (spec.keyless()) return absl::InvalidArgumentError("repair: a keyless table");
  FERRY_ASSIGN_OR_RETURN(auto session, VerifySession::Open(dsn, std::nullopt));
  // The spec against this catalog (the read-only session is used for nothing else).
  FERRY_ASSIGN_OR_RETURN(TableSchema schema, session->ReadSchema({spec.schema, spec.name}));
  auto has = [&](const std::string& name) {
    return std::any_of(schema.columns.begin(), schema.columns.end(),
                       [&](const ColumnSchema& c) { return c.name == name; });
  };
  for (const auto& c : spec.columns) {
    if (!has(c)) return absl::InvalidArgumentError(absl::StrCat("repair: no column ", c));
  }
  for (const auto& k : spec.key_columns) {
    if (std::find(spec.columns.begin(), spec.columns.end(), k) == spec.columns.end()) {
      return absl::InvalidArgumentError(absl::StrCat("repair: key column ", k, " not compared"));
    }
  }
  for (const RepairRow& r : rows) {
    FERRY_RETURN_IF_ERROR(CheckValues(r.target.key, spec.key_columns.size(), "key"));
    if (r.values.has_value()) {
      FERRY_RETURN_IF_ERROR(CheckValues(*r.values, spec.columns.size(), "row"));
    } else if (!r.target.remove) {
      return absl::InvalidArgumentError("repair: a row to write without values");
    }
  }

  FERRY_ASSIGN_OR_RETURN(auto conn, pg::PgConnection::Connect(dsn));
  FERRY_RETURN_IF_ERROR(conn->Exec(VerifySessionSettings()).status());
  FERRY_RETURN_IF_ERROR(conn->Exec("SET session_replication_role = replica").status());
  FERRY_RETURN_IF_ERROR(
      conn->Exec(absl::StrCat("SELECT pg_catalog.pg_replication_origin_create('", kRepairOrigin,
                              "') WHERE NOT EXISTS (SELECT 1 FROM "
                              "pg_catalog.pg_replication_origin WHERE roname = '",
                              kRepairOrigin, "')"))
          .status());
  FERRY_RETURN_IF_ERROR(
      conn->Exec(absl::StrCat("SELECT pg_catalog.pg_replication_origin_session_setup('",
                              kRepairOrigin, "')"))
          .status());
  FERRY_RETURN_IF_ERROR(conn->Exec("BEGIN").status());
  const std::string table = pg::QualifiedName(spec.schema, spec.name);
  RepairCounts counts;
  for (size_t from = 0; from < rows.size(); from += kChunk) {
    const size_t to = std::min(rows.size(), from + kChunk);
    // Each key's row now, locked, hashed as the verify hashed it.
    FERRY_ASSIGN_OR_RETURN(
        pg::PgResult now,
        conn->Exec(absl::StrCat(
            "SELECT ", SelectColumns(spec), " FROM ", table, " WHERE ",
            AnyKey(spec, rows, from, to, [](const RepairRow& r) { return r.target.key; }),
            " FOR UPDATE")));
    absl::flat_hash_map<std::string, Hash128> current_rows;
    for (int row = 0; row < now.rows(); ++row) {
      std::string encoded;
      for (int c = 0; c < static_cast<int>(spec.columns.size()); ++c) {
        AppendValue(&encoded, now.IsNull(row, c)
                                  ? std::nullopt
                                  : std::optional<absl::string_view>(now.Get(row, c)));
      }
      current_rows[KeyOfRow(spec, now, row)] = HashBytes(encoded);
    }
    std::vector<std::string> statements;
    for (size_t i = from; i < to; ++i) {
      const RepairRow& r = rows[i];
      auto found = current_rows.find(KeyOf(r.target.key));
      const std::optional<Hash128> current =
          found == current_rows.end() ? std::nullopt : std::optional<Hash128>(found->second);
      if (current != r.target.standby_row_hash) {
        ++counts.skipped;  // apply changed it since the cut
        continue;
      }
      const std::string where = KeyCondition(spec, r.target.key);
      if (r.target.remove) {
        statements.push_back(absl::StrCat("DELETE FROM ", table, " WHERE ", where));
      } else if (current.has_value()) {
        std::vector<std::string> sets;
        for (size_t c = 0; c < spec.columns.size(); ++c) {
          sets.push_back(
              absl::StrCat(pg::QuoteIdentifier(spec.columns[c]), " = ", Literal((*r.values)[c])));
        }
        statements.push_back(
            absl::StrCat("UPDATE ", table, " SET ", absl::StrJoin(sets, ", "), " WHERE ", where));
      } else {
        std::vector<std::string> lits;
        for (const auto& v : *r.values) lits.push_back(Literal(v));
        statements.push_back(absl::StrCat("INSERT INTO ", table, " (", SelectColumns(spec),
                                          ") VALUES (", absl::StrJoin(lits, ", "), ")"));
      }
      ++counts.applied;
    }
    if (!statements.empty()) {
      FERRY_RETURN_IF_ERROR(conn->Exec(absl::StrJoin(statements, "; ")).status());
    }
  }
  FERRY_RETURN_IF_ERROR(conn->Exec("COMMIT").status());
  return counts;
}

}  // namespace ferry::consistency
