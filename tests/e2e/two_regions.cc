#include "tests/e2e/two_regions.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/base/status_macros.h"

namespace ferry::testing {

std::vector<std::string> StoppedTables(const v1::StatusReply& status) {
  std::vector<std::string> stopped;
  for (const v1::TableState& t : status.tables()) {
    if (t.state() == "stopped" || t.state() == "needs_resnapshot") stopped.push_back(t.table());
  }
  return stopped;
}

namespace {
const char* Name(Region r) { return r == Region::kEast ? "east" : "west"; }
}  // namespace

absl::StatusOr<std::unique_ptr<TwoRegions>> TwoRegions::Start(const TwoRegionsOptions& options) {
  std::unique_ptr<TwoRegions> t(new TwoRegions());
  t->options_ = options;
  t->dir_ = std::make_unique<TempDir>("ferry-e2e");
  // A port FreePort() found free can be taken by another process before ferryd binds it (other
  // test programs run beside this one): then both daemons start again on new ports, with new
  // clusters and data dirs (a daemon may have created its slot or shipped before it listened).
  for (int attempt = 1;; ++attempt) {
    if (!options.without_postgres) {  // fresh clusters: a daemon may have begun its work
      t->east_pg_.reset();
      t->west_pg_.reset();
      FERRY_ASSIGN_OR_RETURN(t->east_pg_, PgCluster::Start());
      FERRY_ASSIGN_OR_RETURN(t->west_pg_, PgCluster::Start());
      if (!options.schema_sql.empty()) {
        FERRY_RETURN_IF_ERROR(t->east_pg_->Exec(options.schema_sql));
      }
      if (!options.standby_sql.empty()) {
        FERRY_RETURN_IF_ERROR(t->west_pg_->Exec(options.standby_sql));
      }
    }
    t->east_admin_ = FreePort();
    t->west_admin_ = FreePort();
    t->east_metrics_ = FreePort();
    t->west_metrics_ = FreePort();
    t->west_replication_ = FreePort();
    t->east_replication_ = FreePort();
    t->proxy_.reset();
    if (options.with_proxy) {
      FERRY_ASSIGN_OR_RETURN(t->proxy_, FaultProxy::Start("127.0.0.1", t->west_replication_));
    }
    FERRY_RETURN_IF_ERROR(t->WriteConfigs());
    absl::Status started = t->StartDaemon(Region::kWest);
    if (started.ok()) started = t->StartDaemon(Region::kEast);
    if (started.ok()) return t;
    const bool port_taken = absl::StrContains(started.message(), "cannot listen");
    // A standby data dir the test brought is not ours to wipe: no second try then.
    if (!port_taken || attempt == 3 || !options.standby_data_dir.empty()) return started;
    for (Region r : {Region::kEast, Region::kWest}) {
      if (t->running(r)) (void)t->StopDaemon(r, absl::Seconds(30));
      std::error_code ec;
      std::filesystem::remove_all(t->data_dir(r), ec);
    }
  }
}

TwoRegions::~TwoRegions() {
  // Daemons first (they hold connections to the clusters), then the proxy and the clusters.
  for (Region r : {Region::kEast, Region::kWest}) {
    if (running(r)) (void)StopDaemon(r, absl::Seconds(30));
  }
  east_.reset();
  west_.reset();
  proxy_.reset();
}

std::string TwoRegions::config_path(Region r) const {
  return dir_->File(absl::StrCat(Name(r), ".yaml"));
}
std::string TwoRegions::log_path(Region r) const {
  return dir_->File(absl::StrCat(Name(r), ".log"));
}
std::string TwoRegions::data_dir(Region r) const {
  if (r == Region::kWest && !options_.standby_data_dir.empty()) return options_.standby_data_dir;
  return dir_->File(absl::StrCat(Name(r), "-data"));
}
int TwoRegions::pid(Region r) const {
  const auto& child = r == Region::kEast ? east_ : west_;
  return child ? static_cast<int>(child->pid()) : 0;
}
std::string TwoRegions::admin_address(Region r) const {
  return absl::StrCat("127.0.0.1:", r == Region::kEast ? east_admin_ : west_admin_);
}
std::string TwoRegions::metrics_address(Region r) const {
  return absl::StrCat("127.0.0.1:", r == Region::kEast ? east_metrics_ : west_metrics_);
}

absl::Status TwoRegions::WriteConfigs() {
  if (!options_.admin_token.empty()) {
    std::ofstream(dir_->File("admin-token")) << options_.admin_token << "\n";
  }
  std::ofstream(dir_->File("replication-token")) << "e2e-replication-token\n";
  for (Region r : {Region::kEast, Region::kWest}) {
    const bool east = r == Region::kEast;
    const int peer_port = east ? (proxy_ ? proxy_->port() : west_replication_) : east_replication_;
    std::ofstream out(config_path(r));
    out << "region: " << Name(r) << "\n"
        << "data_dir: " << data_dir(r) << "\n"
        << "role: " << (east ? "primary" : "standby") << "\n"
        << "log_level: info\n";
    if (!options_.without_postgres) {
      out << "postgres:\n"
          << "  dsn: \"" << pg(r).dsn() << "\"\n"
          << "  publication: ferry\n"
          << "  slot: ferry_" << Name(r) << "\n";
    }
    out << "listen:\n"
        << "  replication: 127.0.0.1:" << (east ? east_replication_ : west_replication_) << "\n"
        << "  admin: " << admin_address(r) << "\n"
        << "  metrics: " << metrics_address(r) << "\n"
        << "peer:\n"
        << "  replication: 127.0.0.1:" << peer_port << "\n"
        << "  region: " << (east ? "west" : "east") << "\n"
        << "security:\n"
        << "  token_file: " << dir_->File("replication-token") << "\n";
    if (!options_.admin_token.empty()) {
      out << "  admin_token_file: " << dir_->File("admin-token") << "\n";
    }
    out << "stream:\n  reconnect_min_ms: 50\n  reconnect_max_ms: 1000\n"
        << "apply:\n  workers: " << options_.apply_workers << "\n";
    if (options_.apply_group_max_transactions > 0) {
      out << "  group_max_transactions: " << options_.apply_group_max_transactions << "\n";
    }
    out << options_.apply_yaml << options_.extra_yaml
        << (east ? options_.east_yaml : options_.west_yaml);
    if (!out) return absl::InternalError("cannot write " + config_path(r));
  }
  return absl::OkStatus();
}

absl::Status TwoRegions::StartDaemon(Region r, const std::vector<std::string>& extra_env) {
  auto& child = r == Region::kEast ? east_ : west_;
  if (child && child->running()) return absl::FailedPreconditionError("already running");
  SpawnOptions so;
  so.argv = {BuiltBinary("ferryd"), "--config", config_path(r)};
  so.argv.insert(so.argv.end(), options_.ferryd_args.begin(), options_.ferryd_args.end());
  so.output_path = log_path(r);
  so.kill_with_parent = true;
  so.extra_env = extra_env;
  FERRY_ASSIGN_OR_RETURN(child, ChildProcess::Spawn(so));
  // Ready when the admin service answers.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  absl::Status last;
  while (absl::Now() < deadline) {
    if (!child->running()) {
      std::ifstream in(log_path(r));
      std::string line, tail;
      while (std::getline(in, line)) tail = line;  // its last line says why
      return absl::InternalError(
          absl::StrCat("ferryd ", Name(r), " exited at start (", tail, "); see ", log_path(r)));
    }
    auto s = Status(r);
    if (s.ok()) return absl::OkStatus();
    last = s.status();
    absl::SleepFor(absl::Milliseconds(50));  // polling for readiness, not synchronisation
  }
  return absl::DeadlineExceededError(
      absl::StrCat("ferryd ", Name(r), " admin did not answer: ", last.ToString()));
}

absl::Status TwoRegions::StopDaemon(Region r, absl::Duration timeout) {
  auto& child = r == Region::kEast ? east_ : west_;
  if (!child) return absl::OkStatus();
  child->Kill(SIGTERM);
  child->Kill(SIGCONT);  // a daemon a test left stopped (a pause point) takes the SIGTERM too
  std::optional<int> status = child->WaitFor(timeout);
  if (!status.has_value()) {
    child->Kill(SIGKILL);
    child->Wait();
    return absl::DeadlineExceededError(
        absl::StrCat("ferryd ", Name(r), " did not exit within ", absl::FormatDuration(timeout)));
  }
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::InternalError(
        absl::StrCat("ferryd ", Name(r), " exited with status ", *status, "; see ", log_path(r)));
  }
  return absl::OkStatus();
}

void TwoRegions::KillDaemon(Region r) {
  auto& child = r == Region::kEast ? east_ : west_;
  if (!child) return;
  child->Kill(SIGKILL);
  child->Wait();
}

bool TwoRegions::running(Region r) {
  auto& child = r == Region::kEast ? east_ : west_;
  return child && child->running();
}

bool TwoRegions::WaitForExit(Region r, absl::Duration timeout) {
  auto& child = r == Region::kEast ? east_ : west_;
  return !child || child->WaitFor(timeout).has_value();
}

// Calls one admin method of region `r` with the configured token and a 5 s deadline.
template <typename Request, typename Reply>
absl::StatusOr<Reply> TwoRegions::Call(Region r,
                                       grpc::Status (v1::Admin::Stub::*method)(grpc::ClientContext*,
                                                                               const Request&,
                                                                               Reply*)) {
  auto stub =
      v1::Admin::NewStub(grpc::CreateChannel(admin_address(r), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!options_.admin_token.empty()) {
    ctx.AddMetadata("authorization", "Bearer " + options_.admin_token);
  }
  Reply reply;
  grpc::Status s = ((*stub).*method)(&ctx, Request(), &reply);
  if (!s.ok()) return absl::UnavailableError(s.error_message());
  return reply;
}

absl::StatusOr<v1::StatusReply> TwoRegions::Status(Region r) {
  return Call(r, &v1::Admin::Stub::Status);
}

absl::Status TwoRegions::Pause(Region r) { return Call(r, &v1::Admin::Stub::Pause).status(); }

absl::Status TwoRegions::Resume(Region r) { return Call(r, &v1::Admin::Stub::Resume).status(); }

absl::StatusOr<std::vector<std::string>> TwoRegions::TableRows(Region r, const std::string& table) {
  FERRY_ASSIGN_OR_RETURN(auto rows,
                         pg(r).Query(absl::StrCat("SELECT t::text FROM ", table, " t ORDER BY 1")));
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (const auto& row : rows) out.push_back(row.empty() ? "" : row[0].value_or("<null>"));
  return out;
}

absl::Status TwoRegions::WaitForTablesEqual(const std::vector<std::string>& tables,
                                            absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last;
  while (true) {
    bool all_equal = true;
    for (const auto& table : tables) {
      auto east = TableRows(Region::kEast, table);
      auto west = TableRows(Region::kWest, table);
      if (!east.ok()) return east.status();
      if (!west.ok() || *east != *west) {
        all_equal = false;
        last = absl::StrCat(
            table, ": east ", east->size(), " rows, west ",
            west.ok() ? absl::StrCat(west->size(), " rows") : std::string(west.status().message()));
        break;
      }
    }
    if (all_equal) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("tables differ: ", last));
    }
    absl::SleepFor(absl::Milliseconds(100));  // polling the databases, not synchronisation
  }
}

absl::StatusOr<int64_t> TwoRegions::CrashStandbyDatabaseTakingBackCommits(
    const std::string& table, const std::string& insert_sql, int transactions) {
  // ALTER SYSTEM refuses to run in a transaction block, a multi-statement string's included.
  FERRY_RETURN_IF_ERROR(pg(Region::kWest).Exec("ALTER SYSTEM SET wal_writer_delay = '10s'"));
  FERRY_RETURN_IF_ERROR(pg(Region::kWest).Exec("SELECT pg_reload_conf()"));
  auto count = [&](Region r) -> absl::StatusOr<int64_t> {
    FERRY_ASSIGN_OR_RETURN(std::optional<std::string> n,
                           pg(r).QueryValue(absl::StrCat("SELECT count(*) FROM ", table)));
    int64_t value = 0;
    if (!n.has_value() || !absl::SimpleAtoi(*n, &value)) {
      return absl::InternalError(absl::StrCat("no count of ", table));
    }
    return value;
  };
  for (int crash = 1; crash <= 5; ++crash) {
    for (int i = 0; i < transactions; ++i)
      FERRY_RETURN_IF_ERROR(pg(Region::kEast).Exec(insert_sql));
    FERRY_RETURN_IF_ERROR(WaitForTablesEqual({table}, absl::Seconds(120)));
    FERRY_RETURN_IF_ERROR(pg(Region::kWest).Restart(PgCluster::StopMode::kImmediate));
    FERRY_ASSIGN_OR_RETURN(const int64_t east, count(Region::kEast));
    FERRY_ASSIGN_OR_RETURN(const int64_t west, count(Region::kWest));
    if (west < east) return east - west;
  }
  return absl::FailedPreconditionError(
      "5 crashes of west's database took back none of apply's commits");
}

absl::StatusOr<TwoRegions::CtlResult> TwoRegions::Ctl(Region r,
                                                      const std::vector<std::string>& args,
                                                      const std::string& token_file) {
  std::vector<std::string> argv = {BuiltBinary("ferryctl"), "--admin", admin_address(r)};
  if (!token_file.empty()) {
    argv.push_back("--token-file");
    argv.push_back(token_file);
  }
  argv.insert(argv.end(), args.begin(), args.end());
  FERRY_ASSIGN_OR_RETURN(RunResult run,
                         RunToEnd({.argv = argv, .output_path = dir_->File("ferryctl.out")}));
  return CtlResult{run.exit_code, std::move(run.output)};
}

absl::StatusOr<v1::StatusReply> TwoRegions::PollStatus(
    Region r, const std::function<bool(const v1::StatusReply&)>& ok, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<v1::StatusReply> s;
  while (absl::Now() < deadline) {
    s = Status(r);
    if (s.ok() && ok(*s)) return s;
    absl::SleepFor(absl::Milliseconds(100));  // polling a condition, not synchronisation
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "condition not met; last status: ", s.ok() ? s->DebugString() : s.status().ToString()));
}

std::string TwoRegions::LogTail(Region r, size_t bytes) const {
  std::ifstream in(log_path(r));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string log = ss.str();
  return log.substr(log.size() > bytes ? log.size() - bytes : 0);
}

std::string TwoRegions::BothLogTails(size_t bytes) const {
  std::string out;
  for (Region r : {Region::kEast, Region::kWest}) {
    absl::StrAppend(&out, "---- ferryd log ", r == Region::kEast ? "east" : "west", " (tail)\n",
                    LogTail(r, bytes));
  }
  return out;
}

}  // namespace ferry::testing
