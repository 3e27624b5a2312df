#include "consistency/postgres/repair.h"

#include <algorithm>

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

}  // namespace

absl::StatusOr<std::vector<RepairRow>> ReadRepairRows(VerifySession& primary, const TableSpec& spec,
                                                      const std::vector<RepairTarget>& targets) {
  std::vector<RepairRow> out;
  const std::string table = pg::QualifiedName(spec.schema, spec.name);
  for (const RepairTarget& t : targets) {
    RepairRow row{.target = t};
    if (!t.remove) {
      FERRY_ASSIGN_OR_RETURN(pg::PgResult r, primary.connection().Exec(absl::StrCat(
                                                 "SELECT ", SelectColumns(spec), " FROM ", table,
                                                 " WHERE ", KeyCondition(spec, t.key))));
      if (r.rows() != 1) {
        return absl::InternalError(absl::StrCat("repair: the primary's row for a key of ",
                                                spec.qualified(), " vanished from the cut"));
      }
      Values values;
      for (int c = 0; c < static_cast<int>(spec.columns.size()); ++c) {
        values.push_back(r.GetOptional(0, c));
      }
      row.values = std::move(values);
    }
    out.push_back(std::move(row));
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
  for (const RepairRow& r : rows) {
    const std::string where = KeyCondition(spec, r.target.key);
    FERRY_ASSIGN_OR_RETURN(pg::PgResult now,
                           conn->Exec(absl::StrCat("SELECT ", SelectColumns(spec), " FROM ", table,
                                                   " WHERE ", where, " FOR UPDATE")));
    std::optional<Hash128> current;
    if (now.rows() == 1) {
      std::string encoded;
      for (int c = 0; c < static_cast<int>(spec.columns.size()); ++c) {
        AppendValue(&encoded, now.IsNull(0, c) ? std::nullopt
                                               : std::optional<absl::string_view>(now.Get(0, c)));
      }
      current = HashBytes(encoded);
    }
    if (current != r.target.standby_row_hash) {
      ++counts.skipped;  // apply changed it since the cut
      continue;
    }
    std::string sql;
    if (r.target.remove) {
      sql = absl::StrCat("DELETE FROM ", table, " WHERE ", where);
    } else if (current.has_value()) {
      std::vector<std::string> sets;
      for (size_t c = 0; c < spec.columns.size(); ++c) {
        sets.push_back(
            absl::StrCat(pg::QuoteIdentifier(spec.columns[c]), " = ", Literal((*r.values)[c])));
      }
      sql = absl::StrCat("UPDATE ", table, " SET ", absl::StrJoin(sets, ", "), " WHERE ", where);
    } else {
      std::vector<std::string> lits;
      for (const auto& v : *r.values) lits.push_back(Literal(v));
      sql = absl::StrCat("INSERT INTO ", table, " (", SelectColumns(spec), ") VALUES (",
                         absl::StrJoin(lits, ", "), ")");
    }
    FERRY_RETURN_IF_ERROR(conn->Exec(sql).status());
    ++counts.applied;
  }
  FERRY_RETURN_IF_ERROR(conn->Exec("COMMIT").status());
  return counts;
}

}  // namespace ferry::consistency
