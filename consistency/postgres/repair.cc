#include "consistency/postgres/repair.h"

#include <algorithm>
#include <map>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
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

// A keyless table's order key: the row's text, as PgTableSide orders it.
std::string RowText(const TableSpec& spec) {
  return absl::StrCat("(ROW(", SelectColumns(spec), ")::text COLLATE \"C\")");
}

// "RowText(spec) IN ('..', '..')" over the row texts of items[from, to).
template <typename T, typename F>
std::string AnyRowText(const TableSpec& spec, const std::vector<T>& items, size_t from, size_t to,
                       const F& key_of) {
  std::vector<std::string> lits;
  for (size_t i = from; i < to; ++i) lits.push_back(Literal(key_of(items[i])[0]));
  return absl::StrCat(RowText(spec), " IN (", absl::StrJoin(lits, ", "), ")");
}

// Keyless: the primary's values of each target it holds copies of (one copy each).
absl::StatusOr<std::vector<RepairRow>> ReadKeylessRepairRows(
    VerifySession& primary, const TableSpec& spec, const std::vector<RepairTarget>& targets) {
  std::vector<const RepairTarget*> wanted;
  for (const RepairTarget& t : targets) {
    if (t.key.size() != 1 || !t.key[0].has_value()) {
      return absl::InvalidArgumentError("repair: a keyless target without its row's text");
    }
    if (t.primary_copies > 0) wanted.push_back(&t);
  }
  const std::string table = pg::QualifiedName(spec.schema, spec.name);
  absl::flat_hash_map<std::string, Values> read;
  for (size_t from = 0; from < wanted.size(); from += kChunk) {
    const size_t to = std::min(wanted.size(), from + kChunk);
    FERRY_ASSIGN_OR_RETURN(
        pg::PgResult r,
        primary.connection().Exec(absl::StrCat(
            "SELECT DISTINCT ON (1) ", RowText(spec), ", ", SelectColumns(spec), " FROM ", table,
            " WHERE ",
            AnyRowText(spec, wanted, from, to, [](const RepairTarget* t) { return t->key; }))));
    for (int row = 0; row < r.rows(); ++row) {
      Values values;
      for (int c = 0; c < static_cast<int>(spec.columns.size()); ++c) {
        values.push_back(r.GetOptional(row, c + 1));
      }
      read[std::string(r.Get(row, 0))] = std::move(values);
    }
  }
  std::vector<RepairRow> out;
  out.reserve(targets.size());
  for (const RepairTarget& t : targets) {
    RepairRow row{.target = t};
    if (t.primary_copies > 0) {
      auto it = read.find(*t.key[0]);
      if (it == read.end()) {
        return absl::InternalError(absl::StrCat("repair: the primary's row of keyless ",
                                                spec.qualified(), " vanished from the cut"));
      }
      row.values = it->second;
    }
    out.push_back(std::move(row));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<RepairRow>> ReadRepairRows(VerifySession& primary, const TableSpec& spec,
                                                      const std::vector<RepairTarget>& targets) {
  if (spec.keyless()) return ReadKeylessRepairRows(primary, spec, targets);
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

namespace {

// The spec against the standby's catalog (kInvalidArgument names what it lacks).
absl::Status CheckSpec(const std::string& dsn, const TableSpec& spec) {
  FERRY_ASSIGN_OR_RETURN(auto session, VerifySession::Open(dsn, std::nullopt));
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
  if (spec.keyless() && spec.columns.empty()) {
    return absl::InvalidArgumentError("repair: a keyless table without compared columns");
  }
  return absl::OkStatus();
}

absl::Status CheckKeyedRows(const TableSpec& spec, const std::vector<RepairRow>& rows) {
  for (const RepairRow& r : rows) {
    FERRY_RETURN_IF_ERROR(CheckValues(r.target.key, spec.key_columns.size(), "key"));
    if (r.values.has_value()) {
      FERRY_RETURN_IF_ERROR(CheckValues(*r.values, spec.columns.size(), "row"));
    } else if (!r.target.remove) {
      return absl::InvalidArgumentError("repair: a row to write without values");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckKeylessRows(const TableSpec& spec, const std::vector<RepairRow>& rows) {
  uint64_t copies = 0;
  absl::flat_hash_set<std::string> seen;
  for (const RepairRow& r : rows) {
    const RepairTarget& t = r.target;
    FERRY_RETURN_IF_ERROR(CheckValues(t.key, 1, "row text"));
    if (!t.key[0].has_value() || !t.standby_row_hash.has_value()) {
      return absl::InvalidArgumentError("repair: a keyless row without its text or hash");
    }
    if (!seen.insert(*t.key[0]).second) {
      return absl::InvalidArgumentError("repair: the same keyless row twice");
    }
    if (t.primary_copies == t.standby_copies) {
      return absl::InvalidArgumentError("repair: a keyless row whose copies agree");
    }
    const uint64_t delta = t.primary_copies > t.standby_copies
                               ? t.primary_copies - t.standby_copies
                               : t.standby_copies - t.primary_copies;
    if (delta > kMaxRepairCopies || (copies += delta) > kMaxRepairCopies) {
      return absl::ResourceExhaustedError(
          absl::StrCat("repair: more than ", kMaxRepairCopies, " keyless rows in one call"));
    }
    if (t.primary_copies > t.standby_copies) {
      if (!r.values.has_value()) {
        return absl::InvalidArgumentError("repair: a keyless row to insert without values");
      }
      FERRY_RETURN_IF_ERROR(CheckValues(*r.values, spec.columns.size(), "row"));
      // The values must be the row the comparison counted (its hash), whatever the peer says.
      if (!(HashValues(*r.values) == *t.standby_row_hash)) {
        return absl::InvalidArgumentError(
            "repair: a keyless row whose values do not match its hash");
      }
    }
  }
  return absl::OkStatus();
}

// Writes with apply's safeguards: the verify's settings, session_replication_role = replica,
// the repair's own replication origin; a transaction is open on return.
absl::StatusOr<std::unique_ptr<pg::PgConnection>> OpenRepairConnection(const std::string& dsn) {
  FERRY_ASSIGN_OR_RETURN(auto conn, pg::PgConnection::Connect(dsn));
  FERRY_RETURN_IF_ERROR(conn->Exec(VerifySessionSettings()).status());
  FERRY_RETURN_IF_ERROR(conn->Exec("SET session_replication_role = replica").status());
  FERRY_RETURN_IF_ERROR(
      conn->Exec(absl::StrCat("SELECT pg_catalog.pg_replication_origin_create('", kRepairOrigin,
                              "') WHERE NOT EXISTS (SELECT 1 FROM "
                              "pg_catalog.pg_replication_origin WHERE roname = '",
                              kRepairOrigin, "')"))
          .status());
  // One session at a time may hold an origin (Postgres 15). The previous repair released it
  // before it closed; one that failed half way holds it until its backend has exited, which
  // follows its disconnection by a few milliseconds: wait for that, within bounds.
  const std::string setup =
      absl::StrCat("SELECT pg_catalog.pg_replication_origin_session_setup('", kRepairOrigin, "')");
  for (const absl::Time deadline = absl::Now() + absl::Seconds(10);;) {
    absl::Status s = conn->Exec(setup).status();
    if (s.ok()) break;
    // Only "object in use" (SQLSTATE 55006) is waited for.
    if (!pg::HasSqlState(s, "55006") || absl::Now() > deadline) return s;
    absl::SleepFor(absl::Milliseconds(20));
  }
  FERRY_RETURN_IF_ERROR(conn->Exec("BEGIN").status());
  return conn;
}

absl::Status RepairKeyed(pg::PgConnection& conn, const TableSpec& spec,
                         const std::vector<RepairRow>& rows, RepairCounts* counts) {
  const std::string table = pg::QualifiedName(spec.schema, spec.name);
  for (size_t from = 0; from < rows.size(); from += kChunk) {
    const size_t to = std::min(rows.size(), from + kChunk);
    // Each key's row now, locked, hashed as the verify hashed it.
    FERRY_ASSIGN_OR_RETURN(
        pg::PgResult now,
        conn.Exec(absl::StrCat(
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
        ++counts->skipped;  // apply changed it since the cut
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
      ++counts->applied;
    }
    if (!statements.empty()) {
      FERRY_RETURN_IF_ERROR(conn.Exec(absl::StrJoin(statements, "; ")).status());
    }
  }
  return absl::OkStatus();
}

// A keyless table: each target's copies on the standby now are locked and counted; only a count
// still as at the cut is brought to the primary's, by deleting surplus copies (by their tuple
// ids, locked) or inserting missing ones.
absl::Status RepairKeyless(pg::PgConnection& conn, const TableSpec& spec,
                           const std::vector<RepairRow>& rows, RepairCounts* counts) {
  const std::string table = pg::QualifiedName(spec.schema, spec.name);
  // Postgres refuses a DELETE on a table a publication publishes deletes of unless it has a
  // replica identity (a keyless table: FULL). Said before anything is written, with the fix.
  if (std::any_of(rows.begin(), rows.end(), [](const RepairRow& r) {
        return r.target.standby_copies > r.target.primary_copies;
      })) {
    FERRY_ASSIGN_OR_RETURN(
        pg::PgResult identity,
        conn.Exec(absl::StrCat(
            "SELECT c.relreplident IN ('d', 'n') AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE "
            "i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident)) AND EXISTS (SELECT 1 "
            "FROM pg_publication p WHERE p.pubdelete AND (p.puballtables OR EXISTS (SELECT 1 "
            "FROM pg_publication_rel r WHERE r.prpubid = p.oid AND r.prrelid = c.oid))) FROM "
            "pg_class c WHERE c.oid = ",
            pg::QuoteLiteral(table), "::regclass")));
    if (identity.rows() == 1 && identity.Get(0, 0) == "t") {
      return absl::FailedPreconditionError(absl::StrCat(
          "the standby publishes deletes of ", spec.qualified(),
          ", which has no replica identity, so Postgres refuses the repair's deletes: run "
          "ALTER TABLE ",
          table,
          " REPLICA IDENTITY FULL on the standby (what postgres.keyless_tables does on a "
          "primary), then verify --repair again"));
    }
  }
  for (size_t from = 0; from < rows.size(); from += kChunk) {
    const size_t to = std::min(rows.size(), from + kChunk);
    FERRY_ASSIGN_OR_RETURN(
        pg::PgResult now,
        conn.Exec(absl::StrCat(
            "SELECT ", RowText(spec), ", tableoid::oid, ctid FROM ", table, " WHERE ",
            AnyRowText(spec, rows, from, to, [](const RepairRow& r) { return r.target.key; }),
            " FOR UPDATE")));
    // Row text -> (table oid, tuple id) of each copy.
    absl::flat_hash_map<std::string, std::vector<std::pair<std::string, std::string>>> copies;
    for (int row = 0; row < now.rows(); ++row) {
      copies[std::string(now.Get(row, 0))].emplace_back(std::string(now.Get(row, 1)),
                                                        std::string(now.Get(row, 2)));
    }
    std::map<std::string, std::vector<std::string>> deletes;  // table oid -> tuple ids
    std::vector<std::string> inserts;
    for (size_t i = from; i < to; ++i) {
      const RepairTarget& t = rows[i].target;
      const auto& current = copies[*t.key[0]];
      const bool more = t.primary_copies > t.standby_copies;
      const uint64_t delta =
          more ? t.primary_copies - t.standby_copies : t.standby_copies - t.primary_copies;
      if (current.size() != t.standby_copies) {
        counts->skipped += delta;  // apply changed its copies since the cut
        continue;
      }
      if (more) {
        std::vector<std::string> lits;
        for (const auto& v : *rows[i].values) lits.push_back(Literal(v));
        const std::string tuple = absl::StrCat("(", absl::StrJoin(lits, ", "), ")");
        for (uint64_t n = 0; n < delta; ++n) inserts.push_back(tuple);
      } else {
        for (uint64_t n = 0; n < delta; ++n) {
          deletes[current[n].first].push_back(pg::QuoteLiteral(current[n].second));
        }
      }
      counts->applied += delta;
    }
    std::vector<std::string> statements;
    for (const auto& [oid, tids] : deletes) {
      statements.push_back(
          absl::StrCat("DELETE FROM ", table, " WHERE tableoid = ", pg::QuoteLiteral(oid),
                       "::oid AND ctid = ANY(ARRAY[", absl::StrJoin(tids, ", "), "]::tid[])"));
    }
    if (!inserts.empty()) {
      statements.push_back(absl::StrCat("INSERT INTO ", table, " (", SelectColumns(spec),
                                        ") VALUES ", absl::StrJoin(inserts, ", ")));
    }
    if (!statements.empty()) {
      FERRY_RETURN_IF_ERROR(conn.Exec(absl::StrJoin(statements, "; ")).status());
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RepairCounts> RepairOnStandby(const std::string& dsn, const TableSpec& spec,
                                             const std::vector<RepairRow>& rows) {
  FERRY_RETURN_IF_ERROR(CheckSpec(dsn, spec));
  FERRY_RETURN_IF_ERROR(spec.keyless() ? CheckKeylessRows(spec, rows) : CheckKeyedRows(spec, rows));
  FERRY_ASSIGN_OR_RETURN(auto conn, OpenRepairConnection(dsn));
  RepairCounts counts;
  absl::Status done = spec.keyless() ? RepairKeyless(*conn, spec, rows, &counts)
                                     : RepairKeyed(*conn, spec, rows, &counts);
  if (done.ok()) done = conn->Exec("COMMIT").status();
  // The origin is released here, whatever happened, rather than by the backend's exit after the
  // disconnection, which the next repair (the next table, at once) would race. Best effort: a
  // connection that broke releases it as its backend exits.
  if (!done.ok()) conn->Exec("ROLLBACK").status().IgnoreError();
  conn->Exec("SELECT pg_catalog.pg_replication_origin_session_reset()").status().IgnoreError();
  FERRY_RETURN_IF_ERROR(done);
  return counts;
}

}  // namespace ferry::consistency
