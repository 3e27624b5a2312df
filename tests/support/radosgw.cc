#include "tests/support/radosgw.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/base/status_macros.h"
#include "tests/support/free_port.h"
#include "tests/support/http_get.h"
#include "tests/support/read_file.h"

namespace ferry::testing {
namespace {

// The cluster's settings (DESIGN.md, "What this machine kind offers"): authentication between
// Ceph daemons off, memstore, pools of size 1, a fast Paxos (12 s start without it), crc mode
// for the gateway's monitor client (it loops on "get_initial_auth_request returned -13"
// otherwise).
std::string CephConf(const std::string& dir, const std::string& fsid, int mon_port, int rgw_port,
                     uint64_t memstore_bytes) {
  return absl::StrCat(R"([global]
fsid = )",
                      fsid, R"(
mon host = v1:127.0.0.1:)",
                      mon_port, R"(
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms bind ipv4 = true
ms bind ipv6 = false
public addr = 127.0.0.1
run dir = )",
                      dir, R"(/run
admin socket = )",
                      dir, R"(/run/$name.$pid.asok
log file = )",
                      dir, R"(/log/$name.log
log to stderr = false
err to stderr = false
mon data = )",
                      dir, R"(/mon-$id
osd data = )",
                      dir, R"(/osd$id
osd objectstore = memstore
memstore device bytes = )",
                      memstore_bytes, R"(
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
osd crush update on start = false
osd class update on start = false
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
paxos propose interval = 0.01
paxos min wait = 0.001
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:)",
                      rgw_port, R"(
rgw thread pool size = 32
rgw data = )",
                      dir, R"(/rgw
)");
}

// A random UUID (RFC 4122 version 4) from the kernel.
std::string NewUuid() {
  std::string uuid = ReadFile("/proc/sys/kernel/random/uuid");
  while (!uuid.empty() && (uuid.back() == '\n' || uuid.back() == ' ')) uuid.pop_back();
  return uuid;
}

}  // namespace

RadosGateway::RadosGateway(const RadosGatewayOptions& options)
    : options_(options), dir_(std::make_unique<TempDir>("ferry-rgw")) {}

RadosGateway::~RadosGateway() { StopDaemons(); }

std::string RadosGateway::endpoint() const { return absl::StrCat("http://127.0.0.1:", rgw_port_); }

absl::StatusOr<std::unique_ptr<RadosGateway>> RadosGateway::Start(
    const RadosGatewayOptions& options) {
  for (const char* program : {"/usr/bin/ceph-mon", "/usr/bin/ceph-osd", "/usr/bin/radosgw",
                              "/usr/bin/radosgw-admin", "/usr/bin/monmaptool"}) {
    struct stat st;
    if (::stat(program, &st) != 0) {
      return absl::NotFoundError(
          absl::StrCat(program, " is not installed (scripts/install-deps.sh installs it)"));
    }
  }
  std::unique_ptr<RadosGateway> gw(new RadosGateway(options));
  absl::Status last;
  for (int attempt = 1; attempt <= options.start_attempts; ++attempt) {
    gw->attempts_ = attempt;
    last = gw->StartOnce();
    if (last.ok()) return gw;
    std::string tail = gw->LogTail();
    gw->StopDaemons();
    std::cerr << "radosgw fixture: attempt " << attempt << " failed: " << last << "\n" << tail;
    last = absl::Status(last.code(), absl::StrCat(last.message(), "\n", tail));
  }
  return absl::UnavailableError(absl::StrCat("radosgw did not come up in ", options.start_attempts,
                                             " attempts; last: ", last.ToString()));
}

std::string RadosGateway::LogTail() const {
  std::string out;
  for (const char* name : {"mon.a.log", "osd.0.log", "client.rgw.log", "setup.log"}) {
    std::string text = ReadFile(absl::StrCat(dir_->path(), "/log/", name));
    if (!text.empty()) absl::StrAppend(&out, "--- ", name, ":\n", Tail(text, 1500), "\n");
  }
  return out;
}

absl::StatusOr<std::string> RadosGateway::Run(const std::vector<std::string>& argv,
                                              absl::Duration timeout) const {
  absl::StatusOr<RunResult> run = RunToEnd(
      {.argv = argv, .output_path = dir_->File("command.out"), .kill_with_parent = true}, timeout);
  {
    std::ofstream setup_log(dir_->File("log/setup.log"), std::ios::app);
    setup_log << "$ " << absl::StrJoin(argv, " ") << "\n"
              << (run.ok() ? run->output : run.status().ToString() + "\n");
  }
  if (run.status().code() == absl::StatusCode::kDeadlineExceeded) {
    return absl::UnavailableError(run.status().message());  // the caller may start again
  }
  if (!run.ok()) return run.status();
  if (run->exit_code != 0) {
    return absl::InternalError(absl::StrCat(absl::StrJoin(argv, " "), " failed (exit code ",
                                            run->exit_code, "): ", Tail(run->output, 2000)));
  }
  return std::move(run->output);
}

absl::StatusOr<std::string> RadosGateway::Admin(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"/usr/bin/radosgw-admin", "-c", dir_->File("ceph.conf")};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv, absl::Seconds(60));
}

absl::Status RadosGateway::StartOnce() {
  const std::string& d = dir_->path();
  // A fresh cluster each attempt: nothing of a failed one may leak into the next.
  for (const char* sub : {"/run", "/mon-a", "/osd0", "/rgw"}) {
    std::error_code ignored;
    std::filesystem::remove_all(d + sub, ignored);
  }
  for (const char* sub : {"/run", "/log", "/mon-a", "/osd0", "/rgw"}) {
    ::mkdir((d + sub).c_str(), 0700);
  }
  // Fresh identities each attempt, so that no daemon of a failed attempt (or of another test's
  // cluster) can join this one; the OSD's uuid is given to both `osd create` and its mkfs.
  const std::string fsid = NewUuid();
  const std::string osd_uuid = NewUuid();
  if (fsid.size() != 36 || osd_uuid.size() != 36) return absl::InternalError("no uuid");
  mon_port_ = FreePort();
  rgw_port_ = FreePort();
  if (mon_port_ == 0 || rgw_port_ == 0 || mon_port_ == rgw_port_) {
    return absl::UnavailableError("no free loopback ports");
  }
  const std::string conf = dir_->Write(
      "ceph.conf", CephConf(d, fsid, mon_port_, rgw_port_, options_.memstore_bytes), 0644);
  const absl::Time deadline = absl::Now() + options_.start_timeout;
  auto left = [&] { return std::max(deadline - absl::Now(), absl::Seconds(1)); };

  FERRY_RETURN_IF_ERROR(
      Run({"/usr/bin/monmaptool", "--create", "--clobber", "--fsid", fsid, "--addv", "a",
           absl::StrCat("[v1:127.0.0.1:", mon_port_, "]"), d + "/run/monmap"},
          left())
          .status());
  FERRY_RETURN_IF_ERROR(
      Run({"/usr/bin/ceph-mon", "-c", conf, "--mkfs", "-i", "a", "--monmap", d + "/run/monmap"},
          left())
          .status());
  auto spawn = [&](std::vector<std::string> argv,
                   const char* log) -> absl::StatusOr<std::unique_ptr<ChildProcess>> {
    return ChildProcess::Spawn(SpawnOptions{.argv = std::move(argv),
                                            .output_path = absl::StrCat(d, "/log/", log),
                                            .kill_with_parent = true});
  };
  FERRY_ASSIGN_OR_RETURN(mon_,
                         spawn({"/usr/bin/ceph-mon", "-f", "-c", conf, "-i", "a"}, "mon.a.stdout"));
  // `ceph osd create` is the monitor's readiness check: a real request, answered once the
  // monitor has formed its quorum of one. A monitor that lost its port exits.
  FERRY_RETURN_IF_ERROR(
      Run({"/usr/bin/ceph", "-c", conf, "--connect-timeout",
           absl::StrCat(absl::ToInt64Seconds(left())), "osd", "create", osd_uuid, "0"},
          left())
          .status());
  if (!mon_->running()) return absl::UnavailableError("ceph-mon exited (port taken?)");
  // The OSD's own placement at boot ("osd crush set-device-class", then create-or-move) is
  // refused now and then with 'wrong fsid' and the OSD exits (seen in 8 of 37 starts): the
  // fixture places it itself and the OSD is told not to.
  FERRY_RETURN_IF_ERROR(Run({"/usr/bin/ceph", "-c", conf, "--connect-timeout",
                             absl::StrCat(absl::ToInt64Seconds(left())), "osd", "crush", "add",
                             "osd.0", "1", "root=default"},
                            left())
                            .status());
  FERRY_RETURN_IF_ERROR(
      Run({"/usr/bin/ceph-osd", "-c", conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid}, left())
          .status());
  FERRY_ASSIGN_OR_RETURN(osd_,
                         spawn({"/usr/bin/ceph-osd", "-f", "-c", conf, "-i", "0"}, "osd.0.stdout"));
  FERRY_ASSIGN_OR_RETURN(
      rgw_, spawn({"/usr/bin/radosgw", "-f", "-c", conf, "-n", "client.rgw"}, "rgw.stdout"));
  // The gateway answers HTTP only once it has its pools (which needs the OSD up): an anonymous
  // GET / (list buckets) returning 200 is the readiness check.
  while (true) {
    if (!mon_->running()) return absl::UnavailableError("ceph-mon exited");
    if (!osd_->running()) return absl::UnavailableError("ceph-osd exited");
    if (!rgw_->running()) return absl::UnavailableError("radosgw exited (port taken?)");
    absl::StatusOr<HttpResult> r = HttpGet(endpoint() + "/");
    if (r.ok() && r->status == 200) break;
    if (absl::Now() > deadline) {
      return absl::UnavailableError(absl::StrCat(
          "radosgw did not answer within ", absl::FormatDuration(options_.start_timeout), ": ",
          r.ok() ? absl::StrCat("HTTP ", r->status) : r.status().ToString()));
    }
    // Connection refused comes back at once; HttpGet's own 5 s bound covers a hung one. The
    // wait between polls is only to not spin: readiness is the 200 above.
    absl::SleepFor(absl::Milliseconds(50));
  }
  FERRY_RETURN_IF_ERROR(
      Admin({"user", "create", "--uid=ferry", "--display-name=ferry",
             "--access-key=" + options_.access_key, "--secret-key=" + options_.secret_key})
          .status());
  return absl::OkStatus();
}

void RadosGateway::StopDaemons() {
  rgw_.reset();
  osd_.reset();
  mon_.reset();
}

}  // namespace ferry::testing
