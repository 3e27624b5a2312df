#include "tests/support/pg_cluster.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "engine/base/status_macros.h"
#include "gtest/gtest.h"
#include "tests/support/child_process.h"
#include "tests/support/free_port.h"
#include "tests/support/read_file.h"

namespace ferry::testing {
namespace {

constexpr char kOsUser[] = "postgres";
constexpr char kDbUser[] = "postgres";

std::string RunuserPath() {
  for (const char* p : {"/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return "runuser";
}

// Quotes a libpq connection-string value.
std::string QuoteConnValue(const std::string& v) {
  return absl::StrCat("'", absl::StrReplaceAll(v, {{"\\", "\\\\"}, {"'", "\\'"}}), "'");
}

absl::StatusCode CodeForSqlState(const std::string& state) {
  if (state == "42P07" || state == "42710" || state == "23505" || state == "42P04") {
    return absl::StatusCode::kAlreadyExists;
  }
  if (state == "42P01" || state == "42704" || state == "3D000" || state == "42883") {
    return absl::StatusCode::kNotFound;
  }
  if (absl::StartsWith(state, "08") || absl::StartsWith(state, "57P")) {
    return absl::StatusCode::kUnavailable;
  }
  if (absl::StartsWith(state, "42") || absl::StartsWith(state, "22")) {
    return absl::StatusCode::kInvalidArgument;
  }
  if (absl::StartsWith(state, "23") || absl::StartsWith(state, "55")) {
    return absl::StatusCode::kFailedPrecondition;
  }
  return absl::StatusCode::kInternal;
}

// True while `pid` is a process named "postgres" that has not exited (zombies count as gone:
// the postmaster's parent may be a container init that never reaps).
bool IsLivePostgres(pid_t pid) {
  const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  // Format: "PID (COMM) STATE ...".
  const size_t open = stat.find('(');
  const size_t close_paren = stat.rfind(')');
  if (open == std::string::npos || close_paren == std::string::npos || close_paren < open ||
      close_paren + 2 >= stat.size()) {
    return false;
  }
  const std::string comm = stat.substr(open + 1, close_paren - open - 1);
  const char state = stat[close_paren + 2];
  return comm == "postgres" && state != 'Z' && state != 'X';
}

struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultCloser {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnCloser>;
using ResultPtr = std::unique_ptr<PGresult, ResultCloser>;

// Runs `sql` (possibly several statements) in a fresh connection; returns the last result.
absl::StatusOr<ResultPtr> RunSql(const std::string& dsn, const std::string& sql) {
  ConnPtr conn(PQconnectdb(absl::StrCat(dsn, " connect_timeout=10").c_str()));
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    return absl::UnavailableError(
        absl::StrCat("connect (", dsn, "): ", conn ? PQerrorMessage(conn.get()) : "out of memory"));
  }
  ResultPtr result(PQexec(conn.get(), sql.c_str()));
  if (result == nullptr) {
    return absl::UnavailableError(absl::StrCat("exec: ", PQerrorMessage(conn.get())));
  }
  switch (PQresultStatus(result.get())) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
      return result;
    default: {
      const char* state = PQresultErrorField(result.get(), PG_DIAG_SQLSTATE);
      std::string sqlstate = state != nullptr ? state : "";
      std::string message = PQresultErrorMessage(result.get());
      while (!message.empty() && message.back() == '\n') message.pop_back();
      return absl::Status(CodeForSqlState(sqlstate),
                          absl::StrCat("SQLSTATE ", sqlstate, ": ", message));
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgCluster>> PgCluster::Start(const PgClusterOptions& options) {
  auto cluster = std::unique_ptr<PgCluster>(new PgCluster());
  cluster->options_ = options;
  const bool copy = !options.template_data_dir.empty();
  if (copy && std::filesystem::exists(options.template_data_dir + "/postmaster.pid")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "template ", options.template_data_dir, " is in use (postmaster.pid): stop it first"));
  }
  std::string pattern = options.parent_dir + "/ferry-pg-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", pattern, ": ", std::strerror(errno)));
  }
  cluster->dir_ = pattern;
  // From here on, a failure keeps the directory so that its logs can be read.
  cluster->keep_dir_ = true;
  if (geteuid() == 0) {
    const passwd* pw = getpwnam(kOsUser);
    if (pw == nullptr) {
      return absl::FailedPreconditionError("running as root, but there is no user `postgres`");
    }
    if (chown(cluster->dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return absl::InternalError(absl::StrCat("chown ", cluster->dir_, ": ", std::strerror(errno)));
    }
  }
  std::vector<std::string> conf;
  if (copy) {
    FERRY_RETURN_IF_ERROR(
        cluster->RunAsPostgres({"cp", "-a", options.template_data_dir, cluster->data_dir()}));
    // The template's own lines come first; these override them (the last setting wins).
    conf = {
        "",
        absl::StrCat("# Copied from ", options.template_data_dir, " by ferry::testing::PgCluster"),
        absl::StrCat("unix_socket_directories = '", cluster->dir_, "'"),
        absl::StrCat("fsync = ", options.fsync ? "on" : "off"),
        "include 'ferry_port.conf'",
    };
  } else {
    FERRY_RETURN_IF_ERROR(cluster->RunAsPostgres(
        {options.bin_dir + "/initdb", "-D", cluster->data_dir(), "--auth=trust", "--no-sync", "-U",
         kDbUser, "-E", "UTF8", "--locale=C.UTF-8"}));
    conf = {
        "",
        "# Added by ferry::testing::PgCluster",
        "listen_addresses = '127.0.0.1'",
        absl::StrCat("unix_socket_directories = '", cluster->dir_, "'"),
        "wal_level = logical",
        "max_replication_slots = 32",
        "max_wal_senders = 32",
        "max_worker_processes = 32",
        absl::StrCat("fsync = ", options.fsync ? "on" : "off"),
        // The port lives in its own file, rewritten when a start attempt moves to a new port.
        "include 'ferry_port.conf'",
    };
  }
  conf.insert(conf.end(), options.extra_config.begin(), options.extra_config.end());
  {
    std::ofstream out(cluster->data_dir() + "/postgresql.conf", std::ios::app);
    out << absl::StrJoin(conf, "\n") << "\n";
    if (!out.good()) return absl::InternalError("cannot append to postgresql.conf");
  }
  FERRY_RETURN_IF_ERROR(cluster->StartServer(/*may_change_port=*/true));
  if (!copy && !options.database.empty() && options.database != "postgres") {
    FERRY_RETURN_IF_ERROR(Annotate(
        cluster->Exec(absl::StrCat("CREATE DATABASE \"", options.database, "\""), "postgres"),
        "create database"));
  }
  cluster->keep_dir_ = false;
  return cluster;
}

PgCluster::~PgCluster() {
  if (running_) {
    absl::Status s = Stop(StopMode::kImmediate);
    if (!s.ok()) std::fprintf(stderr, "PgCluster: stop: %s\n", s.ToString().c_str());
  }
  if (dir_.empty()) return;
  if (keep_dir_ || ::testing::Test::HasFailure()) {
    std::fprintf(stderr, "PgCluster: keeping %s (server log: %s)\n", dir_.c_str(),
                 log_path().c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  if (ec) std::fprintf(stderr, "PgCluster: removing %s: %s\n", dir_.c_str(), ec.message().c_str());
}

std::string PgCluster::log_path() const { return dir_ + "/server.log"; }
std::string PgCluster::data_dir() const { return dir_ + "/data"; }

std::string PgCluster::dsn(const std::string& database) const {
  return absl::StrCat("host=127.0.0.1 port=", port_, " user=", kDbUser,
                      " dbname=", QuoteConnValue(database.empty() ? options_.database : database));
}

absl::Status PgCluster::Exec(const std::string& sql, const std::string& database) const {
  return RunSql(dsn(database), sql).status();
}

absl::StatusOr<std::vector<Row>> PgCluster::Query(const std::string& sql,
                                                  const std::string& database) const {
  FERRY_ASSIGN_OR_RETURN(ResultPtr result, RunSql(dsn(database), sql));
  std::vector<Row> rows;
  const int n_rows = PQntuples(result.get());
  const int n_cols = PQnfields(result.get());
  rows.reserve(n_rows);
  for (int r = 0; r < n_rows; ++r) {
    Row row;
    row.reserve(n_cols);
    for (int c = 0; c < n_cols; ++c) {
      if (PQgetisnull(result.get(), r, c)) {
        row.push_back(std::nullopt);
      } else {
        row.emplace_back(std::string(PQgetvalue(result.get(), r, c),
                                     static_cast<size_t>(PQgetlength(result.get(), r, c))));
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

absl::StatusOr<std::optional<std::string>> PgCluster::QueryValue(
    const std::string& sql, const std::string& database) const {
  FERRY_ASSIGN_OR_RETURN(std::vector<Row> rows, Query(sql, database));
  if (rows.size() != 1 || rows[0].size() != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("QueryValue wants one row and one column, got ", rows.size(), " rows: ", sql));
  }
  return rows[0][0];
}

absl::Status PgCluster::Stop(StopMode mode) {
  if (!running_) return absl::OkStatus();
  absl::Status s = RunAsPostgres({options_.bin_dir + "/pg_ctl", "-D", data_dir(), "-w", "-t", "60",
                                  "-m", mode == StopMode::kFast ? "fast" : "immediate", "stop"});
  if (!s.ok()) KillPostmaster();
  running_ = false;
  return s;
}

absl::Status PgCluster::StartAgain() {
  if (running_) return absl::OkStatus();
  return StartServer(/*may_change_port=*/false);
}

absl::Status PgCluster::Restart(StopMode mode) {
  FERRY_RETURN_IF_ERROR(Stop(mode));
  return StartAgain();
}

absl::Status PgCluster::WritePortConfig() const {
  const std::string path = data_dir() + "/ferry_port.conf";
  {
    std::ofstream out(path, std::ios::trunc);
    out << "port = " << port_ << "\n";
    if (!out.good()) return absl::InternalError("cannot write " + path);
  }
  if (geteuid() == 0) {
    if (const passwd* pw = getpwnam(kOsUser); pw != nullptr) {
      if (chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        return absl::InternalError(absl::StrCat("chown ", path, ": ", std::strerror(errno)));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status PgCluster::StartServer(bool may_change_port) {
  const int attempts = may_change_port ? std::max(1, options_.start_attempts) : 1;
  absl::Status last;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    if (may_change_port) {
      // FreePort never repeats a port in this process (another fixture's listener may not
      // have bound the one it was given yet).
      port_ = FreePort();
      if (port_ == 0) return absl::UnavailableError("no free loopback port for Postgres");
      FERRY_RETURN_IF_ERROR(WritePortConfig());
    }
    const size_t log_offset = ReadFile(log_path()).size();
    last = RunAsPostgres({options_.bin_dir + "/pg_ctl", "-D", data_dir(), "-w", "-t", "60", "-l",
                          log_path(), "start"});
    if (last.ok()) {
      running_ = true;
      return absl::OkStatus();
    }
    const std::string new_log = ReadFileFrom(log_path(), log_offset);
    last = absl::InternalError(
        absl::StrCat(last.message(), "\n--- server log (", log_path(), ") ---\n", Tail(new_log)));
    const bool port_conflict = absl::StrContains(new_log, "could not bind") ||
                               absl::StrContains(new_log, "Address already in use") ||
                               absl::StrContains(new_log, "could not create any TCP/IP sockets");
    // pg_ctl may give up while a slow postmaster is still starting; never leave one behind.
    KillPostmaster();
    if (!port_conflict) break;
  }
  keep_dir_ = true;
  return last;
}

absl::Status PgCluster::RunAsPostgres(const std::vector<std::string>& argv) const {
  SpawnOptions spawn;
  if (geteuid() == 0) spawn.argv = {RunuserPath(), "-u", kOsUser, "--"};
  spawn.argv.insert(spawn.argv.end(), argv.begin(), argv.end());
  spawn.output_path = dir_ + "/setup.log";
  spawn.working_dir = dir_;  // a directory the postgres user may enter
  FERRY_ASSIGN_OR_RETURN(RunResult run, RunToEnd(spawn));
  if (run.exit_code == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("`", absl::StrJoin(argv, " "), "` failed (exit code ",
                                          run.exit_code, "); ", spawn.output_path, ":\n",
                                          Tail(run.output)));
}

void PgCluster::KillPostmaster() const {
  // The first line of postmaster.pid is the postmaster's pid. The file may be stale, so the
  // pid is only signalled while it names a live process called "postgres".
  const std::string pid_file = data_dir() + "/postmaster.pid";
  long pid = 0;
  {
    std::ifstream in(pid_file);
    if (!(in >> pid) || pid <= 1) return;
  }
  if (!IsLivePostgres(static_cast<pid_t>(pid))) return;
  if (kill(static_cast<pid_t>(pid), SIGKILL) != 0) return;
  // The postmaster is not our child (pg_ctl daemonized it), so poll until it is gone.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (IsLivePostgres(static_cast<pid_t>(pid)) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  std::error_code ec;
  std::filesystem::remove(pid_file, ec);
}

}  // namespace ferry::testing
