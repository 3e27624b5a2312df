#include "connectors/postgres/sink/bookkeeping.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/base/status_macros.h"

namespace ferry::pg_sink {
namespace {

constexpr const char* kBookkeeping[] = {
    "CREATE SCHEMA IF NOT EXISTS ferry",
    "CREATE TABLE IF NOT EXISTS ferry.conflicts ("
    " id bigserial PRIMARY KEY,"
    " detected_at timestamptz NOT NULL DEFAULT now(),"
    " source_region text NOT NULL,"
    " seq bigint NOT NULL,"
    " source_commit_time timestamptz,"
    " table_schema text NOT NULL,"
    " table_name text NOT NULL,"
    " kind text NOT NULL,"
    " remote_row jsonb,"
    " local_row jsonb,"
    " resolution text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ferry.table_state ("
    " source_region text NOT NULL,"
    " table_schema text NOT NULL,"
    " table_name text NOT NULL,"
    " stopped_at_seq bigint NOT NULL,"
    " reason text NOT NULL,"
    " stopped_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (source_region, table_schema, table_name))",
    // UNLOGGED: crash recovery empties it, a clean shutdown keeps it (target_incarnation.h).
    "CREATE UNLOGGED TABLE IF NOT EXISTS ferry.target_run ("
    " source_region text PRIMARY KEY,"
    " token text NOT NULL)",
};

constexpr char kInsertConflict[] =
    "INSERT INTO ferry.conflicts (source_region, seq, source_commit_time, table_schema, "
    "table_name, kind, remote_row, local_row, resolution) VALUES ($1, $2, "
    "TIMESTAMPTZ 'epoch' + $3::bigint * INTERVAL '1 microsecond', $4, $5, $6, $7::jsonb, "
    "$8::jsonb, $9)";
constexpr char kUpsertStop[] =
    "INSERT INTO ferry.table_state (source_region, table_schema, table_name, stopped_at_seq, "
    "reason) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source_region, table_schema, table_name) "
    "DO UPDATE SET stopped_at_seq = EXCLUDED.stopped_at_seq, reason = EXCLUDED.reason, "
    "stopped_at = now()";
constexpr char kDeleteStop[] =
    "DELETE FROM ferry.table_state WHERE source_region = $1 AND table_schema = $2 AND "
    "table_name = $3";
constexpr char kSelectStops[] =
    "SELECT table_schema, table_name, stopped_at_seq, reason FROM ferry.table_state "
    "WHERE source_region = $1";
constexpr char kCountConflicts[] = "SELECT count(*) FROM ferry.conflicts WHERE source_region = $1";

}  // namespace

absl::Status CreateBookkeeping(Pipeline& pipe) {
  for (const char* sql : kBookkeeping) {
    auto r = pipe.Run(sql);
    if (!r.ok()) return Annotate(r.status(), "creating Ferry's bookkeeping tables");
  }
  return absl::OkStatus();
}

absl::Status RecordConflict(Pipeline& pipe, const std::string& source_region,
                            const TableName& table, uint64_t seq, int64_t source_commit_time_us,
                            const ConflictInfo& conflict) {
  const std::string seq_text = absl::StrCat(seq);
  const std::string time_text = absl::StrCat(source_commit_time_us);
  std::vector<std::optional<std::string>> params = {
      source_region,       seq_text,     time_text,
      table.schema,        table.name,   conflict.kind,
      conflict.remote_row, std::nullopt, conflict.resolution};
  if (!conflict.local_row.empty()) params[7] = conflict.local_row;
  auto r = pipe.Run(kInsertConflict, params);
  if (!r.ok()) return Annotate(r.status(), "recording a conflict");
  return absl::OkStatus();
}

absl::Status RecordStop(Pipeline& pipe, const std::string& source_region, const TableStop& stop) {
  auto r = pipe.Run(kUpsertStop, {source_region, stop.table.schema, stop.table.name,
                                  absl::StrCat(stop.seq), stop.reason});
  if (!r.ok()) return Annotate(r.status(), "recording a stopped table");
  return absl::OkStatus();
}

absl::Status ClearStop(Pipeline& pipe, const std::string& source_region, const TableName& table) {
  auto r = pipe.Run(kDeleteStop, {source_region, table.schema, table.name});
  if (!r.ok()) return Annotate(r.status(), "clearing a stopped table");
  return absl::OkStatus();
}

absl::Status ClearAllStops(Pipeline& pipe, const std::string& source_region) {
  auto r = pipe.Run("DELETE FROM ferry.table_state WHERE source_region = $1", {source_region});
  if (!r.ok()) return Annotate(r.status(), "clearing the stopped tables");
  return absl::OkStatus();
}

absl::StatusOr<StoppedTables> ReadStops(Pipeline& pipe, const std::string& source_region) {
  FERRY_ASSIGN_OR_RETURN(StatementResult stops, pipe.Run(kSelectStops, {source_region}));
  StoppedTables stopped;
  for (int i = 0; i < stops.result.rows(); ++i) {
    TableStop stop;
    stop.table = {std::string(stops.result.Get(i, 0)), std::string(stops.result.Get(i, 1))};
    if (!absl::SimpleAtoi(std::string(stops.result.Get(i, 2)), &stop.seq)) continue;
    stop.reason = std::string(stops.result.Get(i, 3));
    stopped[stop.table] = std::move(stop);
  }
  return stopped;
}

absl::StatusOr<uint64_t> CountConflicts(Pipeline& pipe, const std::string& source_region) {
  FERRY_ASSIGN_OR_RETURN(StatementResult count, pipe.Run(kCountConflicts, {source_region}));
  uint64_t conflicts = 0;
  if (count.result.rows() == 1) {
    if (!absl::SimpleAtoi(std::string(count.result.Get(0, 0)), &conflicts)) conflicts = 0;
  }
  return conflicts;
}

}  // namespace ferry::pg_sink
