#include "cmd/postgres_options.h"

#include <filesystem>

namespace ferry {

pg::PostgresSourceOptions CaptureOptions(const pg::PostgresConfig& pg, const config::Config& c) {
  pg::PostgresSourceOptions o;
  // Named, so that a switchover's fence does not end the capture's own sessions.
  o.dsn = pg.ConnectionString() + " application_name=ferry_capture";
  o.publication = pg.publication;
  o.slot = pg.slot;
  o.tables = pg.tables;
  o.origin_region = c.region;
  o.snapshot = pg.snapshot;
  o.keyless_tables = pg.keyless_tables;
  o.resnapshot_dir = (std::filesystem::path(c.data_dir) / "resnapshot").string();
  o.sequence_interval = absl::Seconds(5);  // sequence values, when any changed
  o.commit_delay = absl::Microseconds(pg.commit_delay_us);
  o.commit_siblings = pg.commit_siblings;
  return o;
}

PostgresSinkOptions ApplyOptions(const pg::PostgresConfig& pg, const config::Config& c,
                                 const PipelineContext& context) {
  PostgresSinkOptions o;
  o.dsn = pg.ConnectionString();
  o.source_region = c.peer.region.empty() ? "peer" : c.peer.region;
  o.epoch = context.epoch;  // names the replication origins: the fence against old appliers
  // A rejoin applies the new primary's stream over the former primary's own changes (kept in
  // the quarantine) until its repair: conflicts take the new primary's version then.
  o.conflict_policy = context.rejoining ? ConflictPolicy::kApplyRemote : c.apply.conflict_policy;
  o.synchronous_commit = c.apply.synchronous_commit;
  o.max_value_bytes = static_cast<size_t>(c.apply.max_value_bytes);
  return o;
}

}  // namespace ferry
