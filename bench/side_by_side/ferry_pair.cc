#include "bench/side_by_side/ferry_pair.h"

#include <signal.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "engine/base/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "tests/support/free_port.h"

namespace ferry::bench::sbs {
namespace {
int Index(Side s) { return s == Side::kEast ? 0 : 1; }
}  // namespace

absl::StatusOr<std::unique_ptr<FerryPair>> FerryPair::Configure(const Settings& settings,
                                                                ClusterPair& pair,
                                                                const FerryPairOptions& options) {
  std::unique_ptr<FerryPair> f(new FerryPair());
  f->settings_ = &settings;
  f->pair_ = &pair;
  for (Side s : {Side::kEast, Side::kWest}) {
    f->admin_[Index(s)] = ferry::testing::FreePort();
    f->replication_[Index(s)] = ferry::testing::FreePort();
  }
  int east_ships_to = f->replication_[Index(Side::kWest)];
  if (options.stream_delay_ms > 0) {
    FERRY_ASSIGN_OR_RETURN(f->proxy_,
                           ferry::testing::FaultProxy::Start("127.0.0.1", east_ships_to));
    f->proxy_->SetLatency(absl::Milliseconds(options.stream_delay_ms));
    east_ships_to = f->proxy_->port();
  }
  for (Side s : {Side::kEast, Side::kWest}) {
    const bool east = s == Side::kEast;
    std::ofstream out(pair.File(absl::StrCat(Name(s), ".yaml")));
    if (settings.debug_log) out << "log_level: debug\n";
    out << "region: " << Name(s) << "\n"
        << "data_dir: " << pair.File(absl::StrCat("ferry-", Name(s))) << "\n"
        << "role: " << (east ? "primary" : "standby") << "\n"
        << "postgres:\n"
        << "  dsn: \"host=127.0.0.1 port=" << pair.cluster(s).port()
        << " dbname=app user=postgres\"\n"
        << "  slot: ferry_" << Name(s) << "\n"
        << "  snapshot: " << (options.snapshot ? "true" : "false") << "\n";
    if (!settings.commit_delay_us.empty()) {
      out << "  commit_delay_us: " << settings.commit_delay_us << "\n";
    }
    out << "listen:\n"
        << "  replication: 127.0.0.1:" << f->replication_[Index(s)] << "\n"
        << "  admin: " << f->admin_address(s) << "\n"
        << "  metrics: 127.0.0.1:" << ferry::testing::FreePort() << "\n"
        << "peer:\n"
        << "  replication: 127.0.0.1:"
        << (east ? east_ships_to : f->replication_[Index(Side::kEast)]) << "\n"
        << "  region: " << (east ? "west" : "east") << "\n";
    if (!settings.compression_level.empty()) {
      out << "stream:\n  compression_level: " << settings.compression_level << "\n";
    }
    if (!out.good()) return absl::InternalError("cannot write the ferryd configs");
  }
  return f;
}

FerryPair::~FerryPair() {
  Stop(Side::kEast);
  Stop(Side::kWest);
  if (proxy_ != nullptr) proxy_->Stop();
}

std::string FerryPair::admin_address(Side s) const {
  return absl::StrCat("127.0.0.1:", admin_[Index(s)]);
}

absl::Status FerryPair::Start(Side s, bool wait) {
  ferry::testing::SpawnOptions spawn;
  spawn.argv = {settings_->ferryd(), "--config", pair_->File(absl::StrCat(Name(s), ".yaml"))};
  if (!settings_->ferryd_cpus.empty()) {
    // taskset execs ferryd: the process (its pid, its CPU figures) is ferryd's.
    spawn.argv.insert(spawn.argv.begin(), {"taskset", "-c", settings_->ferryd_cpus});
  }
  spawn.output_path = pair_->File(absl::StrCat("ferryd-", Name(s), ".log"));
  spawn.kill_with_parent = true;
  FERRY_ASSIGN_OR_RETURN(daemon_[Index(s)], ferry::testing::ChildProcess::Spawn(spawn));
  if (!wait) return absl::OkStatus();
  const bool up = WaitUntil(absl::Seconds(60), absl::Milliseconds(100), [&] {
    auto r = Ctl(s, {"status"});
    return r.ok() && r->exit_code == 0;
  });
  if (!up) {
    return absl::UnavailableError(
        absl::StrCat("ferryd ", Name(s), " did not start; see ", spawn.output_path));
  }
  return absl::OkStatus();
}

void FerryPair::Stop(Side s) {
  auto& d = daemon_[Index(s)];
  if (d == nullptr || !d->running()) return;
  d->Kill(SIGTERM);
  if (!d->WaitFor(absl::Seconds(60)).has_value()) {
    d->Kill(SIGKILL);
    d->Wait();
  }
}

pid_t FerryPair::pid(Side s) {
  auto& d = daemon_[Index(s)];
  return d != nullptr && d->running() ? d->pid() : 0;
}

absl::StatusOr<FerryPair::CtlResult> FerryPair::Ctl(Side s, const std::vector<std::string>& args,
                                                    int timeout_s) {
  std::vector<std::string> argv = {settings_->ferryctl(), "--admin", admin_address(s), "--timeout",
                                   absl::StrCat(timeout_s)};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string out = pair_->File("ferryctl.out");  // the last call's output
  std::ofstream(out, std::ios::trunc).close();
  FERRY_ASSIGN_OR_RETURN(int rc, Run(argv, out));
  return CtlResult{rc, ReadFile(out)};
}

absl::StatusOr<ferry::v1::StatusReply> FerryPair::Status(Side s) {
  FERRY_ASSIGN_OR_RETURN(CtlResult r, Ctl(s, {"status", "--json"}));
  if (r.exit_code != 0) {
    return absl::UnavailableError(absl::StrCat("ferryctl status: ", r.output));
  }
  ferry::v1::StatusReply reply;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto parsed = google::protobuf::util::JsonStringToMessage(r.output, &reply, options);
  if (!parsed.ok()) {
    return absl::InternalError(absl::StrCat("ferryctl status --json: ", parsed.ToString()));
  }
  return reply;
}

bool FerryPair::Connected() {
  auto s = Status(Side::kEast);
  return s.ok() && s->peer().connected();
}

bool FerryPair::UpToDate() {
  auto s = Status(Side::kEast);
  return s.ok() && s->apply_lag().records() == 0;
}

}  // namespace ferry::bench::sbs
