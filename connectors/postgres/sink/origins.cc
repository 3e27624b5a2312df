#include "connectors/postgres/sink/origins.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "connectors/postgres/common/lsn.h"
#include "connectors/postgres/sink/bookkeeping.h"
#include "engine/base/kill_point.h"
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
  // Prepared: it runs in every group.
  const std::string lsn = pg::FormatLsn(progress_seq);
  const std::string time = absl::StrCat(commit_time_us);
  return pipe.SendPrepared(
      "SELECT pg_replication_origin_xact_setup($1::pg_lsn, TIMESTAMPTZ 'epoch' + "
      "$2::bigint * INTERVAL '1 microsecond')",
      {&lsn, &time}, std::move(callback));
}

namespace {

// Every origin of a region, sorted out.
struct RegionOrigins {
  uint64_t progress = 0;             // the maximum over the worker origins
  std::vector<std::string> workers;  // every worker origin, any epoch
  std::vector<std::string> stale;    // worker origins of an epoch other than the one asked
  std::vector<std::string> markers;  // log ids of the markers
};

// `flush`: pg_replication_origin_progress(..., flush => true) (flushes the WAL up to each
// origin's last commit first, so the progress read is durable).
absl::StatusOr<RegionOrigins> ReadOrigins(Pipeline& pipe, const std::string& source_region,
                                          uint64_t epoch, bool flush) {
  const std::string prefix = absl::StrCat("ferry_", source_region, "_");
  FERRY_ASSIGN_OR_RETURN(
      StatementResult origins,
      pipe.Run(absl::StrCat("SELECT roname, pg_replication_origin_progress(roname, ",
                            flush ? "true" : "false",
                            ")::text FROM pg_replication_origin WHERE starts_with(roname, $1) "
                            "ORDER BY roname"),
               {prefix}));
  RegionOrigins o;
  for (int i = 0; i < origins.result.rows(); ++i) {
    const std::string name(origins.result.Get(i, 0));
    const std::string rest = name.substr(prefix.size());
    if (absl::StartsWith(rest, "log_") && IsValidLogId(rest.substr(4))) {
      o.markers.push_back(rest.substr(4));
      continue;
    }
    uint64_t origin_epoch = 0;
    int worker = 0;
    if (!ParseOriginName(name, prefix, &origin_epoch, &worker)) continue;
    o.workers.push_back(name);
    if (!origins.result.IsNull(i, 1)) {
      FERRY_ASSIGN_OR_RETURN(uint64_t lsn, pg::ParseLsn(std::string(origins.result.Get(i, 1))));
      o.progress = std::max(o.progress, lsn);
    }
    if (origin_epoch != epoch) o.stale.push_back(name);
  }
  return o;
}

absl::Status DropOrigin(Pipeline& pipe, const std::string& name) {
  auto r = pipe.Run(
      "SELECT pg_replication_origin_drop($1) WHERE EXISTS "
      "(SELECT 1 FROM pg_replication_origin WHERE roname = $1)",
      {name});
  if (!r.ok()) {
    return absl::UnavailableError(
        absl::StrCat("replication origin ", name, " is still in use: ", r.status().message()));
  }
  return absl::OkStatus();
}

bool Contains(const std::vector<std::string>& ids, const std::string& id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

std::string LogMarkerName(const std::string& source_region, const std::string& log_id) {
  return absl::StrCat("ferry_", source_region, "_log_", log_id);
}

absl::StatusOr<LoadedProgress> LoadProgress(Pipeline& pipe, const std::string& source_region,
                                            uint64_t epoch, const UpstreamLog& upstream) {
  const std::string& want = upstream.log_id;
  if (!want.empty() && !IsValidLogId(want)) {
    return absl::InvalidArgumentError(absl::StrCat("not a log id: \"", want, "\""));
  }
  FERRY_ASSIGN_OR_RETURN(RegionOrigins o, ReadOrigins(pipe, source_region, epoch, false));
  LoadedProgress loaded{.applied_seq = o.progress, .log_id = want};
  if (o.progress == 0) {
    // Nothing is counted: bind the progress to `want` before any group of it commits.
    for (const std::string& id : o.markers) {
      if (id != want) FERRY_RETURN_IF_ERROR(DropOrigin(pipe, LogMarkerName(source_region, id)));
    }
    if (!want.empty() && !Contains(o.markers, want)) {
      FERRY_RETURN_IF_ERROR(CreateOrigin(pipe, LogMarkerName(source_region, want)));
    }
  } else if (o.markers.empty()) {
    // Written before markers existed (or with an inbound log that recorded no id).
    const bool held = upstream.first_seq <= o.progress + 1 && o.progress + 1 <= upstream.next_seq;
    if (!want.empty() && held) {
      FERRY_RETURN_IF_ERROR(CreateOrigin(pipe, LogMarkerName(source_region, want)));
    } else if (!want.empty()) {
      loaded.log_id = "";  // not recorded, and not this log's as far as anyone can tell
    }
  } else if (o.markers.size() != 1 || o.markers[0] != want) {
    loaded.log_id = o.markers[0] != want ? o.markers[0] : o.markers[1];
  }
  if (loaded.log_id != want) return loaded;  // a mismatch: change nothing
  if (o.stale.empty()) return loaded;
  // Keep the progress in this epoch's w0, then drop the old epoch's origins. Dropping fails
  // while an applier of the old epoch still holds one: we refuse to run beside it.
  const std::string w0 = OriginName(source_region, epoch, 0);
  FERRY_RETURN_IF_ERROR(CreateOrigin(pipe, w0));
  if (o.progress > 0) {
    auto r = pipe.Run(
        "SELECT pg_replication_origin_advance($1, $2::pg_lsn) WHERE "
        "COALESCE(pg_replication_origin_progress($1, false), '0/0'::pg_lsn) < $2::pg_lsn",
        {w0, pg::FormatLsn(o.progress)});
    if (!r.ok()) return Annotate(r.status(), "carrying progress over to " + w0);
  }
  for (const auto& name : o.stale) {
    auto r = pipe.Run("SELECT pg_replication_origin_drop($1)", {name});
    if (!r.ok()) {
      return absl::UnavailableError(
          absl::StrCat("replication origin ", name,
                       " of another epoch is still in use: ", r.status().message()));
    }
  }
  return loaded;
}

absl::StatusOr<TargetProgress> ReadCommittedProgress(Pipeline& pipe,
                                                     const std::string& source_region) {
  FERRY_ASSIGN_OR_RETURN(RegionOrigins o, ReadOrigins(pipe, source_region, 0, true));
  TargetProgress p;
  p.applied_seq = o.progress;
  if (o.markers.size() == 1) p.log_id = o.markers[0];
  return p;
}

absl::StatusOr<uint64_t> DiscardProgress(Pipeline& pipe, const std::string& source_region,
                                         const std::string& discard_log_id,
                                         const std::string& keep_log_id) {
  FERRY_ASSIGN_OR_RETURN(RegionOrigins o, ReadOrigins(pipe, source_region, 0, false));
  if (o.progress > 0) {
    if (!keep_log_id.empty() && Contains(o.markers, keep_log_id)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the target's progress (seq ", o.progress, ") counts log ", keep_log_id,
          ", the log the inbound log copies: it is not discarded (nothing to re-seed)"));
    }
    std::string counts;
    for (const std::string& id : o.markers) {
      if (id != keep_log_id) counts = id;
    }
    if (counts != discard_log_id) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the target's progress (seq ", o.progress, ") counts log ",
          counts.empty() ? "unrecorded" : counts, ", not ",
          discard_log_id.empty() ? "unrecorded" : discard_log_id, ": nothing discarded"));
    }
  }
  // Stopped tables first: their stop seqs count the discarded log too, and a stop left behind
  // would make apply skip the new log's changes of that table. Then the worker origins, the
  // markers last (see the invariant in origins.h). A crash between steps leaves the mismatch
  // in place (or nothing counted at all): the operator runs it again.
  FERRY_RETURN_IF_ERROR(ClearAllStops(pipe, source_region));
  for (const std::string& name : o.workers) {
    FERRY_RETURN_IF_ERROR(DropOrigin(pipe, name));
    KillPoint("reseed.origin_dropped");
  }
  for (const std::string& id : o.markers) {
    if (id != keep_log_id)
      FERRY_RETURN_IF_ERROR(DropOrigin(pipe, LogMarkerName(source_region, id)));
  }
  return o.progress;
}

absl::StatusOr<DurableProgressAndToken> DurableProgress(Pipeline& pipe,
                                                        const std::string& source_region) {
  FERRY_ASSIGN_OR_RETURN(
      StatementResult r,
      pipe.Run("SELECT (SELECT COALESCE(max(pg_replication_origin_progress(roname, true)), "
               "'0/0')::text FROM pg_replication_origin WHERE roname ~ $1), "
               "(SELECT token FROM ferry.target_run WHERE source_region = $2)",
               {absl::StrCat("^ferry_", source_region, "_[0-9]+_w[0-9]+$"), source_region}));
  if (r.result.rows() != 1) return absl::InternalError("no durable progress row");
  DurableProgressAndToken progress;
  FERRY_ASSIGN_OR_RETURN(progress.seq, pg::ParseLsn(std::string(r.result.Get(0, 0))));
  if (!r.result.IsNull(0, 1)) progress.run_token = std::string(r.result.Get(0, 1));
  return progress;
}

}  // namespace ferry::pg_sink
