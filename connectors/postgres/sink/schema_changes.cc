// Ferry's own messages from a Postgres source (connectors/postgres/common/ferry_messages.h):
// a replayed DDL command ("ferry.ddl", ddl_replay.h), a partition's TRUNCATE
// ("ferry.truncate") and a table's re-snapshot ("ferry.resnapshot": the TRUNCATE and rows that
// follow apply even to a stopped table, whose stop the commit clears). Only messages the capture
// authenticated are acted on; see docs/schema-changes.md for what is replayed and what stops a
// table.
#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "connectors/postgres/common/ferry_messages.h"
#include "connectors/postgres/common/sqlstate.h"
#include "connectors/postgres/sink/ddl_replay.h"
#include "connectors/postgres/sink/postgres_session.h"
#include "engine/base/status_macros.h"
#include "spdlog/spdlog.h"

namespace ferry::pg_sink {
namespace {

std::string Shorten(std::string_view sql) {
  constexpr size_t kMax = 200;
  if (sql.size() <= kMax) return std::string(sql);
  return absl::StrCat(absl::string_view(sql.data(), kMax), "...");
}

// "WITH NO DATA" for a CREATE TABLE ... AS statement: its rows arrive as inserts.
std::string WithoutData(const std::string& sql) {
  std::string upper = absl::AsciiStrToUpper(sql);
  while (!upper.empty() && absl::ascii_isspace(static_cast<unsigned char>(upper.back()))) {
    upper.pop_back();
  }
  if (absl::EndsWith(upper, " NO DATA")) return sql;
  if (absl::EndsWith(upper, " WITH DATA")) {
    return absl::StrCat(sql.substr(0, upper.size() - 4), "NO DATA");
  }
  return absl::StrCat(sql, " WITH NO DATA");
}

// An error that says the change is already there (the object exists, or is already gone).
bool AlreadyDone(const absl::Status& s) {
  for (const char* state : {"[42701]", "[42P07]", "[42710]", "[42P06]", "[42723]", "[42P01]",
                            "[42703]", "[42704]", "[42883]"}) {
    if (absl::StrContains(s.message(), state)) return true;
  }
  return false;
}

}  // namespace

absl::Status PostgresSession::ApplyFerryMessage(uint64_t seq, const v1::Change& change) {
  if (!change.message_authenticated()) return absl::OkStatus();  // carried, never replayed
  const std::string& prefix = change.message_prefix();
  if (prefix == pg::kDdlMessagePrefix) {
    absl::StatusOr<v1::PgDdlMessage> m = ParseDdlMessage(change.message_content());
    if (!m.ok()) {
      return absl::DataLossError(absl::StrCat("inbound record ", seq, ": ", m.status().message()));
    }
    return ApplyDdl(*m);
  }
  if (prefix == pg::kTruncateMessagePrefix) {
    absl::StatusOr<v1::PgTruncateMessage> m = ParseTruncateMessage(change.message_content());
    if (!m.ok()) {
      return absl::DataLossError(absl::StrCat("inbound record ", seq, ": ", m.status().message()));
    }
    return ApplyPartitionTruncate(*m);
  }
  if (prefix == pg::kResnapshotMessagePrefix) {
    absl::StatusOr<v1::PgResnapshotMessage> m = ParseResnapshotMessage(change.message_content());
    if (!m.ok()) {
      return absl::DataLossError(absl::StrCat("inbound record ", seq, ": ", m.status().message()));
    }
    return ApplyResnapshot(*m);
  }
  if (prefix == pg::kSequencesMessagePrefix) {
    absl::StatusOr<v1::PgSequencesMessage> m = ParseSequencesMessage(change.message_content());
    if (!m.ok()) {
      return absl::DataLossError(absl::StrCat("inbound record ", seq, ": ", m.status().message()));
    }
    return ApplySequences(change.message_content());
  }
  return absl::DataLossError(absl::StrCat("inbound record ", seq,
                                          ": a Ferry message with the unknown prefix \"", prefix,
                                          "\" (written by a newer source?)"));
}

absl::Status PostgresSession::ApplyDdl(const v1::PgDdlMessage& m) {
  std::vector<TableName> tables;
  for (const auto& t : m.tables()) tables.push_back({t.schema(), t.name()});
  if (ctx_.only_table) {
    // Replaying one stopped table: only its own schema changes.
    if (std::find(tables.begin(), tables.end(), *ctx_.only_table) == tables.end()) {
      return absl::OkStatus();
    }
  } else {
    std::optional<TableName> stopped;
    std::optional<TableName> live;
    for (const TableName& t : tables) {
      if (Skipped(t)) {
        stopped = t;
      } else if (!live) {
        live = t;
      }
    }
    if (stopped) {
      // The stopped table gets it when resumed (its replay runs its own schema changes).
      if (!live) return absl::OkStatus();
      return Fault(*live, absl::StrCat("the schema change \"", Shorten(m.query()),
                                       "\" also touches the stopped table ", stopped->ToString(),
                                       " and was not applied"));
    }
  }
  FERRY_RETURN_IF_ERROR(EnsureBegun());
  FERRY_RETURN_IF_ERROR(FlushInserts());
  FERRY_RETURN_IF_ERROR(FlushBatch());
  FERRY_RETURN_IF_ERROR(SyncAndCheck());

  absl::StatusOr<std::string> sql = StatementToReplay(m);
  if (!sql.ok() && ctx_.only_table) {
    // Resuming the table this stopped: the operator made its schema match by hand (a shape that
    // still differs stops it again when its next change arrives).
    spdlog::warn(
        "apply: resuming {}: not replaying \"{}\" ({}); the table's schema is taken as "
        "fixed by hand",
        ctx_.only_table->ToString(), Shorten(m.query()), std::string(sql.status().message()));
    return absl::OkStatus();
  }
  if (!sql.ok()) {
    const std::string reason =
        absl::StrCat("schema change not applied: ", sql.status().message(), " (query \"",
                     Shorten(m.query()), "\"); make the standby's schema match and resume");
    if (!tables.empty()) return Fault(tables.front(), reason);
    spdlog::error("apply: {}", reason);
    return absl::OkStatus();
  }
  if (CreatesFilledTable(m.tag())) {
    // Its rows came before this message, as inserts into a table created from its columns.
    for (const TableName& t : tables) {
      FERRY_ASSIGN_OR_RETURN(StatementResult r,
                             pipe_->Run("SELECT to_regclass($1) IS NOT NULL", {Qualified(t)}));
      if (r.result.rows() == 1 && r.result.Get(0, 0) == "t") return absl::OkStatus();
    }
    if (m.tag() != "CREATE TABLE AS") {
      if (!tables.empty()) {
        return Fault(tables.front(),
                     absl::StrCat("\"", Shorten(*sql),
                                  "\" created an empty table that Ferry cannot create on the "
                                  "standby; create it there and resume the table"));
      }
      return absl::OkStatus();
    }
    *sql = WithoutData(*sql);
  }

  FERRY_RETURN_IF_ERROR(pipe_->Run("SAVEPOINT ferry_ddl").status());
  std::string setup = "SELECT set_config('search_path', $1, true)";
  std::vector<std::optional<std::string>> params = {m.search_path()};
  if (!m.role().empty()) {
    setup += ", set_config('role', $2, true)";
    params.push_back(m.role());
  }
  absl::Status s = pipe_->Run(setup, params).status();
  if (s.ok()) s = pipe_->Run(*sql).status();
  if (s.ok()) {
    FERRY_RETURN_IF_ERROR(pipe_->Run("RELEASE SAVEPOINT ferry_ddl").status());
    FERRY_RETURN_IF_ERROR(pipe_->Run("RESET role").status());
    FERRY_RETURN_IF_ERROR(pipe_->Run("RESET search_path").status());
    if (m.tag() == "CREATE TABLE" || CreatesFilledTable(m.tag())) {
      // A table created while this region is fenced gets the fence's trigger (on the primary
      // the capture's event trigger adds it; apply runs where event triggers do not fire).
      FERRY_RETURN_IF_ERROR(pipe_->Run(pg::kAddFenceTriggers).status());
    }
    // Every session re-reads the tables it knows; statements prepared for old shapes go.
    tables_.Clear();
    pipe_->ForgetPrepared();
    schema_generation_->fetch_add(1, std::memory_order_acq_rel);
    seen_schema_generation_ = schema_generation_->load(std::memory_order_acquire);
    return absl::OkStatus();
  }
  if (s.code() == absl::StatusCode::kUnavailable || pg::IsTransient(s.code())) return s;
  FERRY_RETURN_IF_ERROR(pipe_->Run("ROLLBACK TO SAVEPOINT ferry_ddl").status());
  if (ctx_.only_table && AlreadyDone(s)) {
    // Resuming: the operator made this change on the standby by hand.
    spdlog::warn("apply: resuming {}: \"{}\" is already done on the target ({})",
                 ctx_.only_table->ToString(), Shorten(*sql), std::string(s.message()));
    return absl::OkStatus();
  }
  const std::string reason =
      absl::StrCat("the schema change \"", Shorten(*sql), "\" failed on the target: ", s.message());
  if (ChangesNoData(m.tag())) {
    spdlog::warn("apply: {}; it changes no data and was skipped", reason);
    return absl::OkStatus();
  }
  if (!tables.empty()) {
    return Fault(tables.front(),
                 absl::StrCat(reason, "; make the standby's schema match and resume the table"));
  }
  spdlog::error("apply: {}; it touches no table and was skipped", reason);
  return absl::OkStatus();
}

absl::Status PostgresSession::ApplyPartitionTruncate(const v1::PgTruncateMessage& m) {
  const TableName table{m.schema(), m.name()};
  // The partition's rows are published as its root's: the root's stop holds this back too,
  // the root's replay applies it, and a failure stops the root.
  const TableName root = m.root_name().empty() ? table : TableName{m.root_schema(), m.root_name()};
  const bool skipped = ctx_.only_table ? *ctx_.only_table != table && *ctx_.only_table != root
                                       : Skipped(table) || Skipped(root);
  if (skipped) return absl::OkStatus();
  FERRY_RETURN_IF_ERROR(FlushInserts());
  FERRY_RETURN_IF_ERROR(FlushBatch());
  return Statement(root, "TRUNCATE ONLY " + Qualified(table), {}, -1, "TRUNCATE", nullptr);
}

// Sets each sequence that exists here forward (in its direction) to the source's value, never
// back (setval is not
// transactional: a group that rolls back leaves it forward, which is harmless). `json` is the
// checked PgSequencesMessage.
absl::Status PostgresSession::ApplySequences(const std::string& json) {
  if (ctx_.only_table) return absl::OkStatus();
  FERRY_RETURN_IF_ERROR(EnsureBegun());
  FERRY_RETURN_IF_ERROR(FlushInserts());
  FERRY_RETURN_IF_ERROR(FlushBatch());
  return pipe_
      ->Run(
          "SELECT count(setval(c.oid, x.value::bigint)) "
          "FROM jsonb_to_recordset($1::jsonb -> 'sequences') AS x(schema text, name text, value "
          "text) "
          "JOIN pg_namespace n ON n.nspname = x.schema "
          "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = x.name AND c.relkind = 'S' "
          "JOIN pg_sequence q ON q.seqrelid = c.oid "
          "WHERE coalesce(CASE WHEN q.seqincrement > 0 THEN pg_sequence_last_value(c.oid) < "
          "x.value::bigint ELSE pg_sequence_last_value(c.oid) > x.value::bigint END, true)",
          {json})
      .status();
}

absl::Status PostgresSession::ApplyResnapshot(const v1::PgResnapshotMessage& m) {
  const TableName table{m.schema(), m.name()};
  if (ctx_.only_table && table != *ctx_.only_table) return absl::OkStatus();
  if (m.copy_missing()) {
    const std::string reason =
        absl::StrCat("the re-snapshot (copy ", m.id(), ") reached the standby without its rows (",
                     m.missing_reason(), "); run `ferryctl resnapshot ", table.ToString(),
                     "` on the primary again");
    if (Skipped(table)) {
      spdlog::error("apply: table {} stays stopped: {}", table.ToString(), reason);
      return absl::OkStatus();
    }
    return Fault(table, reason);
  }
  FERRY_RETURN_IF_ERROR(EnsureBegun());
  FERRY_RETURN_IF_ERROR(FlushInserts());
  FERRY_RETURN_IF_ERROR(FlushBatch());
  // From here on (this transaction's TRUNCATE and rows, and every later change of the group)
  // the table applies even if it was stopped; Commit clears the stop.
  resnapshots_in_group_.push_back({table, txn_seq_});
  return absl::OkStatus();
}

}  // namespace ferry::pg_sink
