#include "connectors/postgres/source/catalog.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "engine/base/status_macros.h"

namespace ferry::pg {

absl::StatusOr<PgConnection*> PgRelationCatalog::Connection() {
  if (borrowed_ != nullptr) {
    if (borrowed_->broken()) return absl::UnavailableError("the catalog's connection broke");
    return borrowed_;
  }
  if (conn_ == nullptr || conn_->broken()) {
    conn_.reset();
    FERRY_ASSIGN_OR_RETURN(conn_, PgConnection::Connect(dsn_));
  }
  return conn_.get();
}

absl::StatusOr<std::vector<std::string>> PgRelationCatalog::TypeNames(
    const std::vector<TypeRef>& types) {
  FERRY_ASSIGN_OR_RETURN(PgConnection * conn, Connection());
  return types_.Resolve(*conn, types);
}

absl::StatusOr<TableDetails> PgRelationCatalog::Table(uint32_t relation_id) {
  FERRY_ASSIGN_OR_RETURN(PgConnection * conn, Connection());
  std::string oid = absl::StrCat(relation_id);
  FERRY_ASSIGN_OR_RETURN(
      PgResult pk,
      conn->ExecParams(
          "SELECT a.attname FROM pg_index i "
          "CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) "
          "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
          "WHERE i.indrelid = $1::oid AND i.indisprimary ORDER BY k.ord",
          {oid}));
  FERRY_ASSIGN_OR_RETURN(
      PgResult nn, conn->ExecParams("SELECT attname FROM pg_attribute WHERE attrelid = $1::oid "
                                    "AND attnum > 0 AND NOT attisdropped AND attnotnull",
                                    {oid}));
  TableDetails details;
  for (int i = 0; i < pk.rows(); ++i) details.primary_key.emplace_back(pk.Get(i, 0));
  for (int i = 0; i < nn.rows(); ++i) details.not_null_columns.emplace_back(nn.Get(i, 0));
  return details;
}

absl::StatusOr<bool> VisibleInSnapshot(uint32_t xid, absl::string_view text) {
  const absl::Status unreadable =
      absl::InternalError(absl::StrCat("unreadable snapshot \"", text, "\""));
  std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  uint64_t xmin = 0, xmax = 0;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &xmin) ||
      !absl::SimpleAtoi(parts[1], &xmax) || xmin > xmax) {
    return unreadable;
  }
  std::vector<uint64_t> in_progress;
  if (!parts[2].empty()) {
    for (absl::string_view x : absl::StrSplit(parts[2], ',')) {
      if (!absl::SimpleAtoi(x, &in_progress.emplace_back())) return unreadable;
    }
  }
  constexpr uint64_t kEpoch = uint64_t{1} << 32;
  uint64_t full = (xmax & ~(kEpoch - 1)) | xid;
  if (full > xmax + kEpoch / 2) {
    if (full < kEpoch) return true;  // older than anything this cluster runs: long visible
    full -= kEpoch;
  } else if (full + kEpoch / 2 < xmax) {
    full += kEpoch;
  }
  if (full < xmin) return true;
  if (full >= xmax) return false;
  return std::find(in_progress.begin(), in_progress.end(), full) == in_progress.end();
}

absl::Status PgRelationCatalog::AwaitVisible(uint32_t xid) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  absl::Duration pause = absl::Milliseconds(1);
  while (true) {
    FERRY_ASSIGN_OR_RETURN(PgConnection * conn, Connection());
    FERRY_ASSIGN_OR_RETURN(PgResult r, conn->Exec("SELECT pg_current_snapshot()::text"));
    if (r.rows() != 1) return absl::InternalError("pg_current_snapshot() returned no row");
    FERRY_ASSIGN_OR_RETURN(bool visible, VisibleInSnapshot(xid, r.Get(0, 0)));
    if (visible) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::UnavailableError(absl::StrCat("transaction ", xid,
                                                 " sent by the walsender is still not visible "
                                                 "to other sessions after 30 s"));
    }
    // Polls the server's state: the commit becomes visible within microseconds normally.
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Milliseconds(20));
  }
}

absl::StatusOr<std::vector<PublishedTable>> ListPublishedTables(PgConnection& conn,
                                                                const std::string& publication) {
  FERRY_ASSIGN_OR_RETURN(
      PgResult r,
      conn.ExecParams("SELECT c.oid, n.nspname, c.relname, c.relkind = 'p', c.reltuples::bigint "
                      "FROM pg_publication_tables pt "
                      "JOIN pg_namespace n ON n.nspname = pt.schemaname "
                      "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename "
                      "WHERE pt.pubname = $1 AND pt.schemaname <> 'ferry' "
                      "ORDER BY pg_total_relation_size(c.oid) DESC, c.oid",
                      {publication}));
  std::vector<PublishedTable> tables;
  for (int i = 0; i < r.rows(); ++i) {
    PublishedTable t;
    if (!absl::SimpleAtoi(r.Get(i, 0), &t.relation_id)) {
      return absl::InternalError("pg_class returned a bad oid");
    }
    t.schema = std::string(r.Get(i, 1));
    t.name = std::string(r.Get(i, 2));
    t.partitioned = r.Get(i, 3) == "t";
    if (!absl::SimpleAtoi(r.Get(i, 4), &t.estimated_rows) || t.estimated_rows < 0) {
      t.estimated_rows = -1;
    }
    tables.push_back(std::move(t));
  }
  return tables;
}

absl::StatusOr<RelationMessage> DescribeTable(PgConnection& conn, uint32_t relation_id) {
  std::string oid = absl::StrCat(relation_id);
  FERRY_ASSIGN_OR_RETURN(
      PgResult rel, conn.ExecParams("SELECT n.nspname, c.relname, c.relreplident FROM pg_class c "
                                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                    "WHERE c.oid = $1::oid",
                                    {oid}));
  if (rel.rows() != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("table with oid ", relation_id, " no longer exists"));
  }
  RelationMessage m;
  m.relation_id = relation_id;
  m.schema = std::string(rel.Get(0, 0));
  m.name = std::string(rel.Get(0, 1));
  m.replica_identity = rel.Get(0, 2).empty() ? 'd' : rel.Get(0, 2)[0];
  // Key flags as pgoutput sets them: every column for FULL, the replica identity index's
  // columns (the primary key for DEFAULT) otherwise, none for NOTHING.
  FERRY_ASSIGN_OR_RETURN(
      PgResult cols,
      conn.ExecParams(
          "SELECT a.attname, a.atttypid, a.atttypmod, "
          "  CASE c.relreplident WHEN 'f' THEN true WHEN 'n' THEN false ELSE EXISTS ("
          "    SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid "
          "      AND a.attnum = ANY (i.indkey::int2[]) "
          "      AND CASE c.relreplident WHEN 'd' THEN i.indisprimary ELSE i.indisreplident END) "
          "  END "
          "FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
          "WHERE c.oid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' "
          "ORDER BY a.attnum",
          {oid}));
  for (int i = 0; i < cols.rows(); ++i) {
    RelationColumn c;
    c.name = std::string(cols.Get(i, 0));
    int64_t typmod = -1;
    if (!absl::SimpleAtoi(cols.Get(i, 1), &c.type_oid) ||
        !absl::SimpleAtoi(cols.Get(i, 2), &typmod)) {
      return absl::InternalError("pg_attribute returned a bad type");
    }
    c.type_modifier = static_cast<int32_t>(typmod);
    c.part_of_key = cols.Get(i, 3) == "t";
    m.columns.push_back(std::move(c));
  }
  return m;
}

}  // namespace ferry::pg
