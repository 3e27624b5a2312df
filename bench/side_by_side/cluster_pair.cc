#include "bench/side_by_side/cluster_pair.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/base/status_macros.h"

namespace ferry::bench::sbs {
namespace {

// Both sides, both systems, every row: the settings the comparison is fair under.
std::vector<std::string> BenchPostgresSettings(const Settings& settings) {
  std::vector<std::string> out = {
      "listen_addresses = '127.0.0.1'",
      "wal_level = logical",
      "max_replication_slots = 16",
      "max_wal_senders = 16",
      "max_worker_processes = 16",
      "max_logical_replication_workers = 8",
      "max_sync_workers_per_subscription = 2",
      "track_commit_timestamp = on",
      "fsync = on",
      "synchronous_commit = on",
      "shared_buffers = 512MB",
      "max_wal_size = 8GB",
      "checkpoint_timeout = 30min",
      "logical_decoding_work_mem = 64MB",
  };
  if (!settings.pg_huge_pages.empty()) out.push_back("huge_pages = " + settings.pg_huge_pages);
  return out;
}

ferry::testing::PgClusterOptions ClusterOptions(const Settings& settings,
                                                const std::string& parent_dir) {
  ferry::testing::PgClusterOptions options;
  options.fsync = true;
  options.extra_config = BenchPostgresSettings(settings);
  options.database = "app";
  options.parent_dir = parent_dir;
  return options;
}

// The target's visibility probe. Row triggers fire for both systems' streamed rows; native
// fires statement triggers only in its initial copy, Ferry for each statement: each is used only
// where it fires for both.
constexpr char kTargetTriggers[] = R"sql(
CREATE FUNCTION bench_notify_row() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_notify('bench_' || TG_TABLE_NAME, NEW.id::text); RETURN NULL; END $$;
CREATE FUNCTION bench_notify_statement() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_notify('bench_' || TG_TABLE_NAME, ''); RETURN NULL; END $$;
CREATE TRIGGER bench_seen AFTER INSERT ON probe FOR EACH ROW EXECUTE FUNCTION bench_notify_row();
ALTER TABLE probe ENABLE ALWAYS TRIGGER bench_seen;
CREATE TRIGGER bench_seen AFTER INSERT ON pgbench_accounts FOR EACH STATEMENT EXECUTE FUNCTION bench_notify_statement();
ALTER TABLE pgbench_accounts ENABLE ALWAYS TRIGGER bench_seen;
CREATE TRIGGER bench_seen AFTER INSERT ON pgbench_tellers FOR EACH STATEMENT EXECUTE FUNCTION bench_notify_statement();
ALTER TABLE pgbench_tellers ENABLE ALWAYS TRIGGER bench_seen;
CREATE TRIGGER bench_seen AFTER INSERT ON pgbench_branches FOR EACH STATEMENT EXECUTE FUNCTION bench_notify_statement();
ALTER TABLE pgbench_branches ENABLE ALWAYS TRIGGER bench_seen;
)sql";

}  // namespace

absl::StatusOr<std::unique_ptr<PgCluster>> MakeTemplate(const Settings& settings,
                                                        const std::string& work_dir, int scale) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<PgCluster> pg,
                         PgCluster::Start(ClusterOptions(settings, work_dir)));
  if (settings.keep) pg->Keep();
  std::vector<std::string> init = {settings.pgbench(),       "-h", "127.0.0.1", "-p",
                                   absl::StrCat(pg->port()), "-U", "postgres",  "-i"};
  if (scale == 0) {
    init.insert(init.end(), {"-I", "dtp", "-s", "1"});  // drop, tables, primary keys: no rows
  } else {
    init.insert(init.end(), {"-s", absl::StrCat(scale)});
  }
  init.insert(init.end(), {"-q", "app"});
  const std::string log = pg->dir() + "/pgbench-init.log";
  FERRY_ASSIGN_OR_RETURN(int rc, Run(init, log));
  if (rc != 0) return absl::InternalError(absl::StrCat("pgbench -i failed; see ", log));
  // pgbench_history has no key: replicate its inserts with the whole row as identity
  // (harmless for native: only UPDATE and DELETE need an identity).
  FERRY_RETURN_IF_ERROR(pg->Exec(R"sql(
ALTER TABLE pgbench_history REPLICA IDENTITY FULL;
CREATE TABLE probe (id bigserial PRIMARY KEY, committed_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE big (id bigint PRIMARY KEY, payload text NOT NULL);
)sql"));
  FERRY_RETURN_IF_ERROR(pg->Exec("VACUUM ANALYZE"));
  FERRY_RETURN_IF_ERROR(pg->Exec("CHECKPOINT"));
  FERRY_RETURN_IF_ERROR(pg->Stop(PgCluster::StopMode::kFast));
  return pg;
}

absl::StatusOr<std::unique_ptr<ClusterPair>> ClusterPair::Start(const Settings& settings,
                                                                const std::string& work_dir,
                                                                const std::string& name,
                                                                const PgCluster& east_template,
                                                                const PgCluster& west_template) {
  std::unique_ptr<ClusterPair> pair(new ClusterPair());
  pair->settings_ = &settings;
  pair->dir_ = work_dir + "/" + name;
  std::error_code ec;
  std::filesystem::create_directories(pair->dir_, ec);
  if (ec || ::chmod(pair->dir_.c_str(), 0755) != 0) {  // the postgres OS user enters it
    return absl::InternalError(absl::StrCat("cannot make ", pair->dir_));
  }
  for (Side s : {Side::kEast, Side::kWest}) {
    ferry::testing::PgClusterOptions options = ClusterOptions(settings, pair->dir_);
    options.template_data_dir = (s == Side::kEast ? east_template : west_template).data_dir();
    FERRY_ASSIGN_OR_RETURN(auto pg, PgCluster::Start(options));
    if (settings.keep) pg->Keep();
    (s == Side::kEast ? pair->east_ : pair->west_) = std::move(pg);
  }
  // The copies of the templates (up to a gigabyte at the full load's scale) are still dirty in
  // the page cache: written back now, not during whichever system is measured next. syncfs:
  // only the file system the pair is on.
  const int dir_fd = ::open(pair->dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0 || ::syncfs(dir_fd) != 0) {
    if (dir_fd >= 0) ::close(dir_fd);
    return absl::InternalError(absl::StrCat("cannot write back ", pair->dir_));
  }
  ::close(dir_fd);
  return pair;
}

ClusterPair::~ClusterPair() {
  if (listener_ != nullptr) {
    listener_->Kill(SIGTERM);
    listener_->Wait();
  }
  // A clean stop when the directories stay for a look; the destructor's immediate one otherwise.
  for (PgCluster* pg : {east_.get(), west_.get()}) {
    if (pg != nullptr && settings_->keep) (void)pg->Stop(PgCluster::StopMode::kFast);
  }
}

absl::Status ClusterPair::WatchTarget() {
  FERRY_RETURN_IF_ERROR(west_->Exec(kTargetTriggers));
  seen_ = std::make_unique<NotifyLog>(File("notify.log"));
  ferry::testing::SpawnOptions spawn;
  spawn.argv = {settings_->notify_listener(),
                west_->dsn(),
                "bench_probe",
                "bench_pgbench_accounts",
                "bench_pgbench_tellers",
                "bench_pgbench_branches"};
  spawn.output_path = File("notify.log");  // "ready" (stderr) among the notifications
  spawn.kill_with_parent = true;
  FERRY_ASSIGN_OR_RETURN(listener_, ferry::testing::ChildProcess::Spawn(spawn));
  if (!WaitUntil(absl::Seconds(10), absl::Milliseconds(50), [&] { return seen_->Ready(); })) {
    return absl::UnavailableError("notify_listener did not start; see " + File("notify.log"));
  }
  return absl::OkStatus();
}

absl::Status ClusterPair::Subscribe(bool copy_data, int source_port) {
  FERRY_RETURN_IF_ERROR(east_->Exec("CREATE PUBLICATION bench FOR ALL TABLES"));
  return west_->Exec(
      absl::StrCat("CREATE SUBSCRIPTION bench CONNECTION 'host=127.0.0.1 port=", source_port,
                   " dbname=app user=postgres' PUBLICATION bench WITH (copy_data = ",
                   copy_data ? "true" : "false", ")"));
}

bool ClusterPair::NativeStreaming() {
  auto active = east_->QueryValue(
      "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'bench' AND active");
  if (!active.ok() || active->value_or("") != "1") return false;
  auto copying = west_->QueryValue(
      "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate NOT IN ('r', 's')");
  return copying.ok() && copying->value_or("") == "0";
}

bool ClusterPair::NativeSlotIdle() {
  auto idle = east_->QueryValue(
      "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'bench' AND NOT active");
  return idle.ok() && idle->value_or("") == "1";
}

absl::StatusOr<std::string> ClusterPair::InsertMarker() {
  FERRY_ASSIGN_OR_RETURN(auto id,
                         east_->QueryValue("INSERT INTO probe DEFAULT VALUES RETURNING id"));
  if (!id) return absl::InternalError("the marker has no id");
  return *id;
}

int64_t ClusterPair::Count(Side s, const std::string& table) {
  auto n = cluster(s).QueryValue("SELECT count(*) FROM " + table);
  int64_t v = -1;
  if (!n.ok() || !n->has_value() || !absl::SimpleAtoi(**n, &v)) return -1;
  return v;
}

}  // namespace ferry::bench::sbs
