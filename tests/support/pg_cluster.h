// PgCluster: a throwaway Postgres 15 cluster for integration tests.
//
// Start() runs initdb in a fresh temporary directory (/tmp/ferry-pg-XXXXXX), configures
// wal_level=logical on a free loopback port and starts the server; or, given a template's data
// directory, copies it instead of running initdb (many cases that start from the same data). initdb
// refuses root, so a test running as root runs initdb, pg_ctl and the server as the OS user
// `postgres`; any other user runs them as itself. The destructor stops it and removes the
// directory, unless the test failed: then the directory and the server log are kept and their path
// is printed.
//
// Example:
//   auto pg = PgCluster::Start();
//   ASSERT_TRUE(pg.ok()) << pg.status();
//   ASSERT_TRUE((*pg)->Exec("CREATE TABLE t (id int primary key)").ok());
//   auto rows = (*pg)->Query("SELECT count(*) FROM t");
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ferry::testing {

struct PgClusterOptions {
  // Extra postgresql.conf lines, e.g. "max_wal_senders = 20".
  std::vector<std::string> extra_config;
  // fsync of the server. Tests that never crash the machine run with it off for speed;
  // benchmarks turn it on so that they compare fairly with native replication.
  bool fsync = false;
  // Database created after start (besides "postgres").
  std::string database = "app";
  // Where initdb, pg_ctl and postgres live.
  std::string bin_dir = "/usr/lib/postgresql/15/bin";
  // How many free ports Start() tries when the server fails to bind (another process may take
  // the port between choosing it and the server binding it).
  int start_attempts = 5;
  // Where Start() makes the cluster's directory (PARENT/ferry-pg-XXXXXX). When running as root,
  // the OS user postgres must be able to enter it.
  std::string parent_dir = "/tmp";
  // When set, Start() copies this data directory (`cp -a`) instead of running initdb: the data
  // directory of a cluster stopped cleanly, e.g. a template made once and copied for every case.
  // The copy keeps the template's data and configuration and gets its own directory, port and
  // socket directory; fsync and extra_config are appended to its configuration, and `database`
  // must exist in it already (it is not created).
  std::string template_data_dir;
};

using Row = std::vector<std::optional<std::string>>;  // text values; nullopt is NULL

// Thread safety: Exec/Query/QueryValue and the accessors may be called from several threads
// at once (each call opens its own connection); Stop/StartAgain/Restart need exclusive use.
// No exception escapes: libpq errors become absl::Status (kUnavailable: cannot connect;
// kNotFound / kAlreadyExists / kInvalidArgument / kFailedPrecondition / kInternal: mapped
// from the SQLSTATE, which the message names).
class PgCluster {
 public:
  // Errors: kInternal when initdb/pg_ctl fail (the message holds the tail of their log, and
  // the directory is kept), kUnavailable when the server does not accept connections.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PgCluster>> Start(
      const PgClusterOptions& options = {});
  ~PgCluster();

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  // The server log (DIR/server.log); initdb's and pg_ctl's output is in DIR/setup.log.
  std::string log_path() const;
  std::string data_dir() const;
  // A libpq connection string for `database` (default: options.database) as user postgres.
  std::string dsn(const std::string& database = "") const;

  // Runs SQL (one or more statements) in its own connection. Errors carry the server message.
  [[nodiscard]] absl::Status Exec(const std::string& sql, const std::string& database = "") const;
  // Runs one query and returns every row as text.
  [[nodiscard]] absl::StatusOr<std::vector<Row>> Query(const std::string& sql,
                                                       const std::string& database = "") const;
  // The single value of a one-row, one-column query.
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> QueryValue(
      const std::string& sql, const std::string& database = "") const;

  enum class StopMode { kFast, kImmediate };
  // kFast: clean shutdown (clients disconnected, checkpoint). kImmediate: like a crash (no
  // checkpoint; the next start runs recovery). Stop on a stopped cluster is OK. If pg_ctl
  // fails, the postmaster is killed with SIGKILL and the pg_ctl error is returned.
  [[nodiscard]] absl::Status Stop(StopMode mode = StopMode::kFast);
  // After Stop, on the same port and directory (the port is not changed, so a port taken in
  // the meantime fails the call). StartAgain on a running cluster is OK.
  [[nodiscard]] absl::Status StartAgain();
  [[nodiscard]] absl::Status Restart(StopMode mode = StopMode::kFast);
  bool running() const { return running_; }
  // Keep the directory after the cluster is gone (the server is still stopped), for a look at
  // its data and log afterwards; the destructor prints its path.
  void Keep() { keep_dir_ = true; }

  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

 private:
  PgCluster() = default;
  // Runs pg_ctl start; with `may_change_port`, retries on a new free port when bind fails.
  [[nodiscard]] absl::Status StartServer(bool may_change_port);
  [[nodiscard]] absl::Status WritePortConfig() const;
  // Runs argv (as the postgres OS user when we are root), output appended to setup.log.
  [[nodiscard]] absl::Status RunAsPostgres(const std::vector<std::string>& argv) const;
  // Kills the postmaster named in postmaster.pid with SIGKILL and waits for it to vanish.
  void KillPostmaster() const;
  bool keep_dir_ = false;  // set when Start failed half-way
  PgClusterOptions options_;
  std::string dir_;  // holds data/ and the log
  int port_ = 0;
  bool running_ = false;
};

}  // namespace ferry::testing
