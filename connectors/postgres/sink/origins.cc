#include "connectors/postgres/sink/origins.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "connectors/postgres/common/lsn.h"
#include "engine/base/status_macros.h"

namespace ferry::pg_sink {
namespace {

bool ParseOriginName(const std::string& name, const std::string& prefix, uint64_t* epoch,
                     int* worker) {
  if (!absl::StartsWith(name, prefix)) return false;
  std::vector<std::string> parts = absl::StrSplit(name.substr(prefix.size()), '_');
  if (parts.size() != 2 || parts[1].size() < 2 || parts[1][0] != 'w') return false;
  return absl::SimpleAtoi(parts[0], epoch) && absl::SimpleAtoi(parts[1].substr(1), worker);
}

}  // namespace

std::string OriginName(const std::string& source_region, uint64_t epoch, int worker) {
  return absl::StrCat("ferry_", source_region, "_", epoch, "_w", worker);
}

absl::Status CreateOrigin(Pipeline& pipe, const std::string& name) {
  return pipe
      .Run(
          "SELECT pg_replication_origin_create($1) WHERE NOT EXISTS "
          "(SELECT 1 FROM pg_replication_origin WHERE roname = $1)",
          {name})
      .status();
}

absl::Status HoldOrigin(Pipeline& pipe, const std::string& name) {
  auto r = pipe.Run("SELECT pg_replication_origin_session_setup($1)", {name});
  if (!r.ok()) {
    return absl::UnavailableError(
        absl::StrCat("replication origin ", name, " is busy: ", r.status().message()));
  }
  return absl::OkStatus();
}

absl::Status QueueProgress(Pipeline& pipe, uint64_t progress_seq, int64_t commit_time_us,
                           ResultCallback callback) {
  return pipe.Send(
      "SELECT pg_replication_origin_xact_setup($1::pg_lsn, TIMESTAMPTZ 'epoch' + "
      "$2::bigint * INTERVAL '1 microsecond')",
      {pg::FormatLsn(progress_seq), absl::StrCat(commit_time_us)}, std::move(callback));
}

absl::StatusOr<uint64_t> LoadProgress(Pipeline& pipe, const std::string& source_region,
                                      uint64_t epoch) {
  const std::string prefix = absl::StrCat("ferry_", source_region, "_");
  FERRY_ASSIGN_OR_RETURN(
      StatementResult origins,
      pipe.Run("SELECT roname, pg_replication_origin_progress(roname, false)::text "
               "FROM pg_replication_origin WHERE starts_with(roname, $1)",
               {prefix}));
  uint64_t applied = 0;
  std::vector<std::string> stale;
  for (int i = 0; i < origins.result.rows(); ++i) {
    const std::string name(origins.result.Get(i, 0));
    uint64_t origin_epoch = 0;
    int worker = 0;
    if (!ParseOriginName(name, prefix, &origin_epoch, &worker)) continue;
    if (!origins.result.IsNull(i, 1)) {
      FERRY_ASSIGN_OR_RETURN(uint64_t lsn, pg::ParseLsn(std::string(origins.result.Get(i, 1))));
      applied = std::max(applied, lsn);
    }
    if (origin_epoch != epoch) stale.push_back(name);
  }
  if (stale.empty()) return applied;
  // Keep the progress in this epoch's w0, then drop the old epoch's origins. Dropping fails
  // while an applier of the old epoch still holds one: we refuse to run beside it.
  const std::string w0 = OriginName(source_region, epoch, 0);
  FERRY_RETURN_IF_ERROR(CreateOrigin(pipe, w0));
  if (applied > 0) {
    auto r = pipe.Run(
        "SELECT pg_replication_origin_advance($1, $2::pg_lsn) WHERE "
        "COALESCE(pg_replication_origin_progress($1, false), '0/0'::pg_lsn) < $2::pg_lsn",
        {w0, pg::FormatLsn(applied)});
    if (!r.ok()) return Annotate(r.status(), "carrying progress over to " + w0);
  }
  for (const auto& name : stale) {
    auto r = pipe.Run("SELECT pg_replication_origin_drop($1)", {name});
    if (!r.ok()) {
      return absl::UnavailableError(
          absl::StrCat("replication origin ", name,
                       " of another epoch is still in use: ", r.status().message()));
    }
  }
  return applied;
}

absl::StatusOr<uint64_t> DurableProgress(Pipeline& pipe, const std::string& source_region) {
  FERRY_ASSIGN_OR_RETURN(
      StatementResult r,
      pipe.Run("SELECT COALESCE(max(pg_replication_origin_progress(roname, true)), '0/0')::text "
               "FROM pg_replication_origin WHERE roname ~ $1",
               {absl::StrCat("^ferry_", source_region, "_[0-9]+_w[0-9]+$")}));
  if (r.result.rows() != 1) return absl::InternalError("no durable progress row");
  return pg::ParseLsn(std::string(r.result.Get(0, 0)));
}

}  // namespace ferry::pg_sink
