#include "connectors/postgres/source/pg_quarantine.h"

#include <cstdlib>
#include <map>
#include <set>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "connectors/postgres/common/identifiers.h"
#include "connectors/postgres/common/lsn.h"
#include "connectors/postgres/common/pg_connection.h"
#include "connectors/postgres/source/ddl_capture.h"
#include "engine/base/status_macros.h"

namespace ferry::pg {
namespace {

constexpr char kColumns[] =
    "id, source_region, epoch, xact, commit_position, committed_at::text, table_schema, "
    "table_name, op, key, after, old_primary_row, current_row, status, decided_at::text, note";

bool IsOp(const std::string& op) {
  return op == "insert" || op == "update" || op == "delete" || op == "truncate" ||
         op == "anomaly" || IsObjectOp(op);
}

// A row as JSON text, every value as text, in column order, written as the engine writes the
// stream's rows ({"id": "2", "v": "two"}); `alias` names the table's row.
std::string RowJsonExpr(const std::string& alias) {
  return absl::StrCat(
      "(SELECT '{' || string_agg(to_json(e.key)::text || ': ' || coalesce(to_json(e.value)::text, "
      "'null'), ', ' ORDER BY e.n) || '}' FROM json_each_text(row_to_json(",
      alias, ")) WITH ORDINALITY e(key, value, n))");
}

// An error of one change's SQL: the database's own message, as kInvalidArgument (the change
// names something this database does not have), or kUnavailable when the connection broke.
absl::Status ChangeError(const PgConnection& conn, const absl::Status& s, const std::string& what) {
  if (conn.broken()) return absl::UnavailableError(absl::StrCat(what, ": ", s.message()));
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", s.message()));
}

// A text[] literal of `items`: {"a","b\"c"}.
std::string ArrayLiteral(const std::vector<std::string>& items) {
  std::vector<std::string> quoted;
  quoted.reserve(items.size());
  for (const std::string& item : items) {
    std::string q = "\"";
    for (char c : item) {
      if (c == '"' || c == '\\') q += '\\';
      q += c;
    }
    quoted.push_back(q + "\"");
  }
  return absl::StrCat("{", absl::StrJoin(quoted, ","), "}");
}

uint64_t Affected(const PgResult& r) {
  uint64_t n = 0;
  return absl::SimpleAtoi(PQcmdTuples(r.get()), &n) ? n : 0;
}

// One table a change names, checked to exist here, and the key's columns.
struct Target {
  std::string table;  // quoted, qualified
  std::vector<std::string> key_columns;
};

// The tables a call found to exist ("schema\0name"): looked up once per call, not per change.
using KnownTables = absl::flat_hash_set<std::string>;

absl::StatusOr<Target> TargetOf(PgConnection& conn, const std::string& schema,
                                const std::string& name, const std::string& key,
                                KnownTables* known = nullptr) {
  const std::string where = absl::StrCat(schema, ".", name);
  if (schema.empty() || name.empty() || schema.size() > 63 || name.size() > 63) {
    return absl::InvalidArgumentError(absl::StrCat("not a table name: ", where.substr(0, 200)));
  }
  Target t{.table = QualifiedName(schema, name), .key_columns = {}};
  const std::string id = absl::StrCat(schema, std::string(1, '\0'), name);
  if (known == nullptr || !known->contains(id)) {
    absl::StatusOr<PgResult> found = conn.ExecParams(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
        {schema, name});
    if (!found.ok()) return ChangeError(conn, found.status(), absl::StrCat("looking up ", where));
    if (found->rows() == 0) return absl::InvalidArgumentError(absl::StrCat("no table ", where));
    if (known != nullptr) known->insert(id);
  }
  if (key.empty()) return t;
  absl::StatusOr<PgResult> keys = conn.ExecParams(
      "SELECT k FROM json_object_keys(CASE WHEN json_typeof($1::json) = 'object' THEN $1::json "
      "END) k",
      {key});
  if (!keys.ok()) return ChangeError(conn, keys.status(), absl::StrCat("the key of ", where));
  for (int i = 0; i < keys->rows(); ++i) t.key_columns.emplace_back(keys->Get(i, 0));
  if (t.key_columns.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the key of ", where, " is not a JSON object with columns: ", key.substr(0, 200)));
  }
  return t;
}

// "t.a = k.a AND t.b = k.b": the row of `t` whose key is the record `k`.
std::string KeyMatch(const Target& t) {
  std::vector<std::string> parts;
  for (const std::string& c : t.key_columns) {
    // NULL matches NULL (a key of REPLICA IDENTITY FULL may hold one); either branch can use
    // an index on the column.
    const std::string tc = absl::StrCat("t.", QuoteIdentifier(c));
    const std::string kc = absl::StrCat("k.", QuoteIdentifier(c));
    parts.push_back(
        absl::StrCat("(", tc, " = ", kc, " OR (", tc, " IS NULL AND ", kc, " IS NULL))"));
  }
  return absl::StrJoin(parts, " AND ");
}

// A query of the row's JSON for the key in parameter `param` (text); `lock`: the row is locked
// until the transaction ends.
std::string RowQuery(const Target& t, int param, bool lock = false) {
  return absl::StrCat("SELECT ", RowJsonExpr("t"), " FROM ONLY ", t.table,
                      " t, json_populate_record(NULL::", t.table, ", $", param,
                      "::text::json) k WHERE ", KeyMatch(t), " LIMIT 1",
                      lock ? " FOR UPDATE OF t" : "");
}

// The row's JSON now, or nullopt when there is none.
absl::StatusOr<std::optional<std::string>> RowFor(PgConnection& conn, const Target& t,
                                                  const std::string& key, bool lock = false) {
  absl::StatusOr<PgResult> r = conn.ExecParams(RowQuery(t, 1, lock), {key});
  if (!r.ok()) return ChangeError(conn, r.status(), absl::StrCat("reading ", t.table));
  if (r->rows() == 0) return std::optional<std::string>();
  return r->GetOptional(0, 0);
}

v1::QuarantineEntry EntryOf(const PgResult& r, int row) {
  v1::QuarantineEntry e;
  int64_t id = 0;
  uint64_t epoch = 0;
  (void)absl::SimpleAtoi(r.Get(row, 0), &id);
  (void)absl::SimpleAtoi(r.Get(row, 2), &epoch);
  e.set_id(id);
  e.set_source_region(std::string(r.Get(row, 1)));
  e.set_epoch(epoch);
  e.set_xact(std::string(r.Get(row, 3)));
  e.set_commit_position(std::string(r.Get(row, 4)));
  e.set_committed_at(std::string(r.Get(row, 5)));
  e.set_table_schema(std::string(r.Get(row, 6)));
  e.set_table_name(std::string(r.Get(row, 7)));
  e.set_op(std::string(r.Get(row, 8)));
  e.set_key(std::string(r.Get(row, 9)));
  e.set_after(std::string(r.Get(row, 10)));
  e.set_old_primary_row(std::string(r.Get(row, 11)));
  e.set_current_row(std::string(r.Get(row, 12)));
  e.set_status(std::string(r.Get(row, 13)));
  e.set_decided_at(std::string(r.Get(row, 14)));
  e.set_note(std::string(r.Get(row, 15)));
  return e;
}

// Runs `sql` and rolls back on failure (the connection is closed right after either way).
absl::Status RollBackOn(PgConnection& conn, absl::Status s) {
  if (!s.ok() && !conn.broken()) (void)conn.Exec("ROLLBACK");
  return s;
}

// One change of a reapply; kFailedPrecondition names the conflict.
absl::Status ReapplyChange(PgConnection& conn, const v1::QuarantineEntry& e,
                           std::set<std::pair<std::string, std::string>>& seen) {
  const std::string where = absl::StrCat("entry ", e.id(), " (", e.op(), " on ", e.table_schema(),
                                         ".", e.table_name(), " key ", e.key(), ")");
  auto conflict = [&](const std::string& why) {
    return absl::FailedPreconditionError(absl::StrCat(where, " conflicts: ", why));
  };
  if (IsObjectOp(e.op())) {
    return absl::FailedPreconditionError(absl::StrCat(
        where,
        ": an object version is not reapplied by Ferry: it stays in the old primary's bucket "
        "(the entry names its version); copy it to the primary's bucket if wanted, then "
        "discard the entry"));
  }
  absl::StatusOr<Target> t = TargetOf(conn, e.table_schema(), e.table_name(), e.key());
  if (!t.ok())
    return absl::FailedPreconditionError(absl::StrCat(where, ": ", t.status().message()));
  if (e.op() == "anomaly") {
    return conflict(
        "an anomaly is the old primary's row, not a change it shipped: write it by "
        "hand if wanted, then discard it");
  }
  if (e.op() == "truncate") {
    // It would erase whatever the primary holds now, rows acknowledged since the failover
    // included: an operator truncates by hand, having looked, and discards the entry.
    return conflict(
        "a truncate is never reapplied (it would erase the primary's rows written "
        "since); truncate by hand if wanted, then discard it");
  }
  if (t->key_columns.empty()) {
    if (e.op() != "insert") return conflict("the kept change has no key to find its row by");
  } else if (seen.insert({t->table, e.key()}).second) {
    // The first change of each key: the primary's row must still be the one the rejoin saw
    // (locked, so that nothing changes it between this check and the write).
    absl::StatusOr<std::optional<std::string>> now = RowFor(conn, *t, e.key(), /*lock=*/true);
    if (!now.ok()) return conflict(std::string(now.status().message()));
    absl::StatusOr<PgResult> same = conn.ExecParams(
        "SELECT $1::jsonb IS NOT DISTINCT FROM $2::jsonb",
        {*now, e.current_row().empty() ? std::nullopt : std::optional(e.current_row())});
    if (!same.ok()) return conflict(std::string(same.status().message()));
    if (same->Get(0, 0) != "t") {
      return conflict(absl::StrCat("the primary's row changed since the rejoin kept it (then ",
                                   e.current_row().empty() ? "none" : e.current_row(), ", now ",
                                   now->value_or("none"), ")"));
    }
  }
  std::vector<std::string> columns;
  if (!e.after().empty()) {
    absl::StatusOr<PgResult> keys =
        conn.ExecParams("SELECT json_object_keys($1::json)", {e.after()});
    if (!keys.ok()) return conflict(std::string(keys.status().message()));
    for (int i = 0; i < keys->rows(); ++i) columns.push_back(QuoteIdentifier(keys->Get(i, 0)));
  }
  absl::StatusOr<PgResult> r = absl::InternalError("no statement");
  if (e.op() == "insert") {
    if (columns.empty()) return conflict("the kept insert has no row");
    const std::string list = absl::StrJoin(columns, ", ");
    r = conn.ExecParams(absl::StrCat("INSERT INTO ", t->table, " (", list, ") SELECT ", list,
                                     " FROM json_populate_record(NULL::", t->table,
                                     ", $1::json) ON CONFLICT DO NOTHING"),
                        {e.after()});
    if (r.ok() && Affected(*r) != 1) return conflict("a row with this key exists");
  } else if (e.op() == "update") {
    if (columns.empty()) return conflict("the kept update has no row");
    std::vector<std::string> sets;
    for (const std::string& c : columns) sets.push_back(absl::StrCat(c, " = n.", c));
    r = conn.ExecParams(absl::StrCat("UPDATE ONLY ", t->table, " t SET ", absl::StrJoin(sets, ", "),
                                     " FROM json_populate_record(NULL::", t->table,
                                     ", $1::json) n, json_populate_record(NULL::", t->table,
                                     ", $2::json) k WHERE ", KeyMatch(*t)),
                        {e.after(), e.key()});
    if (r.ok() && Affected(*r) != 1) return conflict("the primary has no row with this key");
  } else {
    r = conn.ExecParams(absl::StrCat("DELETE FROM ONLY ", t->table,
                                     " t USING json_populate_record(NULL::", t->table,
                                     ", $1::json) k WHERE ", KeyMatch(*t)),
                        {e.key()});
    if (r.ok() && Affected(*r) != 1) return conflict("the primary has no row with this key");
  }
  return r.ok() ? absl::OkStatus() : conflict(std::string(r.status().message()));
}

// What every quarantined change must be, whoever sent it: a known op and a table name.
absl::Status CheckChanges(const std::vector<v1::QuarantinedChange>& changes) {
  for (const v1::QuarantinedChange& c : changes) {
    if (!IsOp(c.op())) {
      return absl::InvalidArgumentError(
          absl::StrCat("a quarantined change has the unknown op \"", c.op().substr(0, 64), "\""));
    }
    if (c.table_schema().empty() || c.table_name().empty() || c.table_schema().size() > 63 ||
        c.table_name().size() > 63) {
      return absl::InvalidArgumentError(
          absl::StrCat("a quarantined change names no table: ",
                       absl::StrCat(c.table_schema(), ".", c.table_name()).substr(0, 200)));
    }
  }
  return absl::OkStatus();
}

// Every key, new row and old row given is a JSON object (one query for the batch): kept as
// text, they are later read as JSON by a reapply and printed by ferryctl.
absl::Status CheckJson(PgConnection& conn, const std::vector<v1::QuarantinedChange>& changes) {
  std::vector<std::string> texts;
  for (const v1::QuarantinedChange& c : changes) {
    for (const std::string* t : {&c.key(), &c.after(), &c.old_primary_row()}) {
      if (!t->empty()) texts.push_back(*t);
    }
  }
  if (texts.empty()) return absl::OkStatus();
  absl::StatusOr<PgResult> r = conn.ExecParams(
      "SELECT count(*) FROM unnest($1::text[]) j WHERE json_typeof(j::json) <> 'object'",
      {ArrayLiteral(texts)});
  if (!r.ok()) {
    if (conn.broken()) return r.status();
    return absl::InvalidArgumentError(
        absl::StrCat("a quarantined change holds malformed JSON: ", r.status().message()));
  }
  if (r->Get(0, 0) != "0") {
    return absl::InvalidArgumentError(
        "a quarantined change's key or row is JSON but not an object of columns");
  }
  return absl::OkStatus();
}

// A session named ferry_quarantine, with a connect timeout unless the DSN sets its own.
absl::StatusOr<std::unique_ptr<PgConnection>> OpenSession(const std::string& dsn) {
  FERRY_ASSIGN_OR_RETURN(std::string conninfo, SessionDsn(dsn, "connect_timeout=10",
                                                          "application_name=ferry_quarantine"));
  return PgConnection::Connect(conninfo);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgConnection>> PostgresQuarantine::Connect() const {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn, OpenSession(dsn_));
  FERRY_RETURN_IF_ERROR(
      conn->Exec("SET statement_timeout = '120s'; SET lock_timeout = '10s'").status());
  FERRY_RETURN_IF_ERROR(EnsureDdlCapture(*conn));  // the table ferry.quarantine
  return conn;
}

absl::StatusOr<std::vector<std::optional<std::string>>> PostgresQuarantine::CurrentRows(
    const std::vector<v1::QuarantinedChange>& changes) {
  FERRY_RETURN_IF_ERROR(CheckChanges(changes));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn, Connect());
  FERRY_RETURN_IF_ERROR(CheckJson(*conn, changes));
  std::vector<std::optional<std::string>> rows;
  rows.reserve(changes.size());
  KnownTables known;
  for (const v1::QuarantinedChange& c : changes) {
    std::optional<std::string> row;
    if (c.op() != "truncate" && !IsObjectOp(c.op()) && !c.key().empty()) {
      // A table or column this database no longer has (a schema change since): no row.
      absl::StatusOr<Target> t = TargetOf(*conn, c.table_schema(), c.table_name(), c.key(), &known);
      absl::StatusOr<std::optional<std::string>> now =
          t.ok() ? RowFor(*conn, *t, c.key()) : t.status();
      if (!now.ok() && conn->broken()) return now.status();
      if (now.ok()) row = *now;
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

absl::StatusOr<QuarantineStore::Kept> PostgresQuarantine::Keep(
    const std::string& source_region, const std::vector<v1::QuarantinedChange>& changes) {
  if (source_region.empty() || source_region.size() > 256) {
    return absl::InvalidArgumentError("a quarantined change needs its source region");
  }
  FERRY_RETURN_IF_ERROR(CheckChanges(changes));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn, Connect());
  FERRY_RETURN_IF_ERROR(CheckJson(*conn, changes));
  FERRY_RETURN_IF_ERROR(conn->Exec("BEGIN").status());
  auto run = [&]() -> absl::StatusOr<Kept> {
    FERRY_RETURN_IF_ERROR(
        conn->Exec("LOCK TABLE ferry.quarantine IN SHARE ROW EXCLUSIVE MODE").status());
    FERRY_ASSIGN_OR_RETURN(PgResult max, conn->Exec("SELECT coalesce(max(id), 0) FROM "
                                                    "ferry.quarantine"));
    int64_t next_id = 0;
    (void)absl::SimpleAtoi(max.Get(0, 0), &next_id);
    Kept kept;
    KnownTables known;
    auto opt = [](const std::string& text) {
      return text.empty() ? std::nullopt : std::optional<std::string>(text);
    };
    // `current`: the SQL of the new primary's row for the key ("NULL" when unknown), read in the
    // statement; a change kept before (same source region, epoch, log sequence and index) is
    // left as it is.
    auto insert = [&](const v1::QuarantinedChange& c, const std::string& current,
                      const std::optional<std::string>& note) {
      return conn->ExecParams(
          absl::StrCat(
              "INSERT INTO ferry.quarantine (id, source_region, epoch, xact, commit_position, "
              "committed_at, table_schema, table_name, op, key, after, old_primary_row, "
              "current_row, log_seq, change_index, note) VALUES ($1::bigint, $2, $3::bigint, $4, "
              "$5, to_timestamp($6::double precision / 1e6), $7, $8, $9, $10, $11, $12, ",
              current,
              ", $13::bigint, $14::int, $15) ON CONFLICT (source_region, epoch, log_seq, "
              "change_index) DO NOTHING"),
          {std::to_string(next_id + 1), source_region, std::to_string(c.epoch()),
           // An object entry is its own "transaction" (engine/api/quarantine.h).
           IsObjectOp(c.op()) ? std::string("object") : std::to_string(c.source_xid()),
           IsObjectOp(c.op()) ? absl::StrCat("seq ", c.log_seq()) : FormatLsn(c.commit_position()),
           std::to_string(c.commit_time_us()), c.table_schema(), c.table_name(), c.op(),
           opt(c.key()), opt(c.after()), opt(c.old_primary_row()), std::to_string(c.log_seq()),
           std::to_string(c.index()), note});
    };
    for (const v1::QuarantinedChange& c : changes) {
      const bool keyed = c.op() != "truncate" && !c.key().empty();
      absl::StatusOr<PgResult> inserted;
      if (IsObjectOp(c.op())) {
        // Not a row: nothing of this database to read for it (its version is in `after`).
        inserted = insert(c, "NULL", std::nullopt);
        if (!inserted.ok()) {
          return ChangeError(*conn, inserted.status(),
                             absl::StrCat("keeping an object of bucket ", c.table_name()));
        }
        if (Affected(*inserted) == 1) {
          ++next_id;
          ++kept.kept;
        } else {
          ++kept.present;
        }
        continue;
      }
      // A change to a table or column this region does not have (a schema change on either
      // side) is kept all the same, its row here unknown and the reason noted: never dropped.
      FERRY_RETURN_IF_ERROR(conn->Exec("SAVEPOINT keep").status());
      absl::StatusOr<Target> t =
          TargetOf(*conn, c.table_schema(), c.table_name(), keyed ? c.key() : "", &known);
      if (t.ok())
        inserted =
            insert(c, keyed ? absl::StrCat("(", RowQuery(*t, 10), ")") : "NULL", std::nullopt);
      const absl::Status failed = t.ok() ? inserted.status() : t.status();
      if (!failed.ok()) {
        if (conn->broken()) return absl::UnavailableError(failed.message());
        FERRY_RETURN_IF_ERROR(conn->Exec("ROLLBACK TO SAVEPOINT keep").status());
        inserted = insert(c, "NULL",
                          absl::StrCat("this region's row could not be read when kept: ",
                                       failed.message().substr(0, 500)));
        if (!inserted.ok()) {
          return ChangeError(*conn, inserted.status(),
                             absl::StrCat("keeping ", c.table_schema(), ".", c.table_name()));
        }
      }
      if (Affected(*inserted) == 1) {
        ++next_id;
        ++kept.kept;
      } else {
        ++kept.present;
      }
    }
    FERRY_RETURN_IF_ERROR(conn->Exec("COMMIT").status());
    return kept;
  };
  absl::StatusOr<Kept> kept = run();
  if (!kept.ok()) return RollBackOn(*conn, kept.status());
  return kept;
}

absl::StatusOr<std::vector<bool>> PostgresQuarantine::Explains(
    const std::string& source_region, const std::vector<v1::QuarantinedChange>& keys) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn, Connect());
  std::vector<std::string> schemas, names, key_texts;
  for (const v1::QuarantinedChange& k : keys) {
    schemas.push_back(k.table_schema());
    names.push_back(k.table_name());
    key_texts.push_back(k.key());
  }
  // One query for every key, matched as jsonb (the key's columns in any order): a kept change
  // of the key, or a kept truncate of its table, explains it.
  absl::StatusOr<PgResult> r = conn->ExecParams(
      "WITH k AS (SELECT * FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY "
      "AS k(s, n, key, i)) "
      "SELECT k.i FROM k WHERE EXISTS (SELECT 1 FROM ferry.quarantine q WHERE q.source_region = "
      "$1 AND q.status = 'pending' AND q.table_schema = k.s AND q.table_name = k.n AND q.op = "
      "'truncate') "
      "UNION SELECT k.i FROM k JOIN (SELECT DISTINCT table_schema, table_name, key::jsonb AS kj "
      "FROM ferry.quarantine WHERE source_region = $1 AND status = 'pending' AND key IS NOT "
      "NULL AND op NOT IN ('object_put', 'object_delete')) q ON q.table_schema = k.s AND "
      "q.table_name = k.n AND q.kj = k.key::jsonb "
      // An update that moved its row to a new key explains the new key too (few of them: a
      // nested loop over those is cheap).
      "UNION SELECT k.i FROM k JOIN (SELECT table_schema, table_name, after::jsonb AS aj FROM "
      "ferry.quarantine WHERE source_region = $1 AND status = 'pending' AND op = 'update' AND "
      "after IS NOT NULL AND key IS NOT NULL AND NOT after::jsonb @> key::jsonb) q ON "
      "q.table_schema = k.s AND q.table_name = k.n AND q.aj @> k.key::jsonb",
      {source_region, ArrayLiteral(schemas), ArrayLiteral(names), ArrayLiteral(key_texts)});
  if (!r.ok()) return ChangeError(*conn, r.status(), "matching keys with the quarantine");
  std::vector<bool> out(keys.size(), false);
  for (int row = 0; row < r->rows(); ++row) {
    size_t i = 0;
    if (absl::SimpleAtoi(r->Get(row, 0), &i) && i >= 1 && i <= out.size()) out[i - 1] = true;
  }
  return out;
}

absl::StatusOr<uint64_t> PostgresQuarantine::Pending() {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn, OpenSession(dsn_));
  FERRY_ASSIGN_OR_RETURN(
      PgResult r, conn->Exec("SELECT CASE WHEN to_regclass('ferry.quarantine') IS NULL THEN 0 "
                             "ELSE (SELECT count(*) FROM ferry.quarantine WHERE status = "
                             "'pending') END"));
  uint64_t n = 0;
  (void)absl::SimpleAtoi(r.Get(0, 0), &n);
  return n;
}

absl::StatusOr<v1::QuarantineReply> PostgresQuarantine::Decide(
    const v1::QuarantineRequest& request) {
  const std::string& verb = request.verb();
  FERRY_ASSIGN_OR_RETURN(const uint32_t limit, CheckQuarantineRequest(request));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn, Connect());
  v1::QuarantineReply reply;
  FERRY_ASSIGN_OR_RETURN(
      PgResult counts,
      conn->Exec("SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FROM "
                 "ferry.quarantine"));
  uint64_t pending = 0;
  (void)absl::SimpleAtoi(counts.Get(0, 0), &pending);
  reply.set_pending(pending);

  if (verb == "list") {
    const std::string& status = request.status();
    const std::optional<std::string> filter = status.empty() ? std::nullopt : std::optional(status);
    FERRY_ASSIGN_OR_RETURN(PgResult total,
                           conn->ExecParams("SELECT count(*) FROM ferry.quarantine WHERE $1::text "
                                            "IS NULL OR status = $1",
                                            {filter}));
    uint64_t n = 0;
    (void)absl::SimpleAtoi(total.Get(0, 0), &n);
    reply.set_total(n);
    FERRY_ASSIGN_OR_RETURN(
        PgResult rows,
        conn->ExecParams(absl::StrCat("SELECT ", kColumns,
                                      " FROM ferry.quarantine WHERE $1::text IS NULL OR status = "
                                      "$1 ORDER BY id LIMIT $2::int"),
                         {filter, std::to_string(limit)}));
    for (int i = 0; i < rows.rows(); ++i) *reply.add_entries() = EntryOf(rows, i);
    return reply;
  }

  // show, reapply, discard: the entry's whole source transaction.
  FERRY_RETURN_IF_ERROR(conn->Exec("BEGIN").status());
  auto run = [&]() -> absl::Status {
    FERRY_ASSIGN_OR_RETURN(
        PgResult rows,
        conn->ExecParams(
            absl::StrCat("SELECT ", kColumns,
                         " FROM ferry.quarantine q WHERE (source_region, epoch, xact, "
                         "commit_position) = (SELECT source_region, epoch, xact, commit_position "
                         "FROM ferry.quarantine WHERE id = $1::bigint) ORDER BY log_seq, "
                         "change_index",
                         verb == "show" ? "" : " FOR UPDATE"),
            {std::to_string(request.id())}));
    if (rows.rows() == 0) {
      return absl::NotFoundError(absl::StrCat("quarantine: no entry ", request.id()));
    }
    for (int i = 0; i < rows.rows(); ++i) *reply.add_entries() = EntryOf(rows, i);
    if (verb == "show") return conn->Exec("COMMIT").status();
    for (const v1::QuarantineEntry& e : reply.entries()) {
      if (e.status() != "pending") {
        return absl::FailedPreconditionError(
            absl::StrCat("quarantine: entry ", e.id(), " of this transaction was ", e.status(),
                         " at ", e.decided_at(), ": its transaction is decided"));
      }
    }
    if (verb == "reapply") {
      std::set<std::pair<std::string, std::string>> seen;
      for (const v1::QuarantineEntry& e : reply.entries()) {
        FERRY_RETURN_IF_ERROR(ReapplyChange(*conn, e, seen));
      }
    }
    const std::string status = verb == "reapply" ? "reapplied" : "discarded";
    FERRY_ASSIGN_OR_RETURN(
        PgResult decided,
        conn->ExecParams(
            "UPDATE ferry.quarantine SET status = $1, decided_at = now(), note = CASE WHEN "
            "$2::text "
            "IS NULL THEN note WHEN note IS NULL THEN $2 ELSE note || ' | ' || $2 END "
            "WHERE (source_region, epoch, xact, commit_position) = (SELECT "
            "source_region, epoch, xact, commit_position FROM ferry.quarantine WHERE "
            "id = $3::bigint)",
            {status, request.note().empty() ? std::nullopt : std::optional(request.note()),
             std::to_string(request.id())}));
    reply.set_decided(Affected(decided));
    reply.set_outcome(absl::StrCat(status, " ", Affected(decided),
                                   " change(s) of source transaction ", reply.entries(0).xact(),
                                   " from ", reply.entries(0).source_region()));
    reply.set_pending(pending - std::min<uint64_t>(pending, Affected(decided)));
    return conn->Exec("COMMIT").status();
  };
  FERRY_RETURN_IF_ERROR(RollBackOn(*conn, run()));
  return reply;
}

}  // namespace ferry::pg
