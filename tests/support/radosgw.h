// RadosGateway: a throwaway S3 server for tests, Ceph's radosgw over a one-monitor, one-OSD
// cluster whose object store is in memory (memstore). It checks SigV4 signatures (a wrong
// secret is 403), keeps versions and delete markers, does multipart uploads and pushes bucket
// notifications over HTTP: enough to claim that Ferry's object path works against a real S3
// implementation, which s3rver is not.
//
// Start() writes ceph.conf into a fresh /tmp/ferry-rgw-XXXXXX, makes the monitor, the OSD and
// the gateway (each a child process in the foreground, killed with the test), waits until the
// gateway answers an HTTP request and creates one S3 user whose keys access_key()/secret_key()
// give. Ports are free loopback ports; when a daemon loses the race for its port (or anything
// else fails to come up) Start() tears everything down and tries again with new ports, up to
// `start_attempts` times. Readiness is polled with real requests, never a sleep.
// The destructor kills the daemons and removes the directory, unless the test failed: then the
// directory (with the daemons' logs in DIR/log) is kept and its path printed.
//
// Example:
//   auto rgw = RadosGateway::Start();
//   ASSERT_TRUE(rgw.ok()) << rgw.status();
//   S3ClientOptions o{.endpoint = (*rgw)->endpoint(), .access_key = (*rgw)->access_key(), ...};
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/support/child_process.h"
#include "tests/support/temp_dir.h"

namespace ferry::testing {

struct RadosGatewayOptions {
  // How many sets of ports Start() tries before it gives up.
  int start_attempts = 3;
  // How long one attempt may take to bring the gateway up (measured: 1.5-4 s when quiet).
  absl::Duration start_timeout = absl::Seconds(60);
  // The S3 user's keys.
  std::string access_key = "FERRYTESTACCESSKEY01";
  std::string secret_key = "ferry-test-secret-key-0123456789abcdef0000";
  // The in-memory object store's capacity (it is RAM): every bucket's objects, all versions.
  uint64_t memstore_bytes = uint64_t{2} << 30;
};

// Thread safety: the accessors may be called from any thread; nothing else is shared.
class RadosGateway {
 public:
  // Errors: kNotFound when ceph-mon, ceph-osd or radosgw are not installed
  // (scripts/install-deps.sh installs them), kUnavailable when no attempt came up (the message
  // holds the tail of the logs of the last attempt).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<RadosGateway>> Start(
      const RadosGatewayOptions& options = {});
  ~RadosGateway();

  RadosGateway(const RadosGateway&) = delete;
  RadosGateway& operator=(const RadosGateway&) = delete;

  // "http://127.0.0.1:PORT".
  std::string endpoint() const;
  int port() const { return rgw_port_; }
  const std::string& access_key() const { return options_.access_key; }
  const std::string& secret_key() const { return options_.secret_key; }
  const std::string& dir() const { return dir_->path(); }
  // How many attempts Start() needed (1 when the first came up).
  int attempts() const { return attempts_; }

  // Runs radosgw-admin with `args` against this cluster; returns its stdout (kInternal with
  // its output when it fails, kUnavailable when it runs longer than 60 s).
  [[nodiscard]] absl::StatusOr<std::string> Admin(const std::vector<std::string>& args) const;

 private:
  explicit RadosGateway(const RadosGatewayOptions& options);
  // One attempt with fresh ports; on error the caller calls StopDaemons().
  absl::Status StartOnce();
  void StopDaemons();
  // Runs a setup command to completion (bounded by `timeout`); its output goes to DIR/log.
  absl::StatusOr<std::string> Run(const std::vector<std::string>& argv,
                                  absl::Duration timeout) const;
  std::string LogTail() const;

  const RadosGatewayOptions options_;
  std::unique_ptr<TempDir> dir_;
  int mon_port_ = 0;
  int rgw_port_ = 0;
  int attempts_ = 0;
  std::unique_ptr<ChildProcess> mon_;
  std::unique_ptr<ChildProcess> osd_;
  std::unique_ptr<ChildProcess> rgw_;
};

}  // namespace ferry::testing
