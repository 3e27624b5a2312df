#include "bench/side_by_side/process_cpu.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/side_by_side/side_by_side.h"

namespace ferry::bench::sbs {
namespace {

// The fields of /proc/PID/stat after "(comm)": [0] is field 3 (state), [1] field 4 (ppid),
// [11..14] fields 14..17 (utime, stime, cutime, cstime), [19] field 22 (starttime).
std::vector<std::string> StatFields(pid_t pid) {
  const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  const size_t close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return {};
  return absl::StrSplit(stat.substr(close_paren + 2), ' ', absl::SkipEmpty());
}

// Seconds of the fields [from, to] of StatFields (clock ticks); 0 when they are missing.
double TickSeconds(const std::vector<std::string>& f, size_t from, size_t to) {
  if (f.size() <= to) return 0;
  double ticks = 0;
  for (size_t i = from; i <= to; ++i) {
    double v = 0;
    if (absl::SimpleAtod(f[i], &v)) ticks += v;
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

uint64_t StartTime(const std::vector<std::string>& f) {
  uint64_t start = 0;
  return f.size() > 19 && absl::SimpleAtoi(f[19], &start) ? start : 0;
}

pid_t Postmaster(const ferry::testing::PgCluster& cluster) {
  std::ifstream in(cluster.data_dir() + "/postmaster.pid");
  long pid = 0;
  if (!(in >> pid)) return 0;
  return static_cast<pid_t>(pid);
}

}  // namespace

double ProcessCpuSeconds(pid_t pid) {
  if (pid <= 0) return 0;
  return TickSeconds(StatFields(pid), 11, 14);
}

double ClusterCpuSeconds(const ferry::testing::PgCluster& cluster) {
  double total = 0;
  for (const auto& [key, process] : ClusterProcesses(cluster)) total += process.seconds;
  return total;
}

ClusterReading ClusterProcesses(const ferry::testing::PgCluster& cluster) {
  const pid_t pm = Postmaster(cluster);
  if (pm <= 0) return {};
  const std::string parent = absl::StrCat(pm);
  // A child reaped while its siblings are read would be in neither the postmaster's figure
  // (read before) nor the children's: read again until the postmaster reaped nothing meanwhile.
  ClusterReading reading;
  for (int attempt = 0; attempt < 5; ++attempt) {
    reading.clear();
    const std::vector<std::string> before = StatFields(pm);
    DIR* proc = opendir("/proc");
    if (proc == nullptr) return {};
    while (dirent* e = readdir(proc)) {
      pid_t pid = 0;
      if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
      const std::vector<std::string> f = StatFields(pid);
      if (f.size() < 20 || f[1] != parent) continue;
      std::string title = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
      std::replace(title.begin(), title.end(), '\0', ' ');
      reading[{pid, StartTime(f)}] = {PgRoleOfTitle(title), !title.empty(), TickSeconds(f, 11, 14),
                                      false};
    }
    closedir(proc);
    const std::vector<std::string> after = StatFields(pm);
    if (after.size() < 20) return {};  // the postmaster is gone
    reading[{pm, StartTime(after)}] = {PgRole::kRest, true, TickSeconds(after, 11, 14), true};
    if (TickSeconds(before, 13, 14) == TickSeconds(after, 13, 14)) break;
  }
  return reading;
}

ClusterRoleSampler::ClusterRoleSampler(const ferry::testing::PgCluster& cluster,
                                       absl::Duration every)
    : cluster_(cluster) {
  {
    absl::MutexLock lock(&mu_);
    Read();
    first_ = now_;
  }
  thread_ = std::thread([this, every] {
    while (!stop_.WaitForNotificationWithTimeout(every)) {
      absl::MutexLock lock(&mu_);
      Read();
    }
  });
}

ClusterRoleSampler::~ClusterRoleSampler() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void ClusterRoleSampler::Read() {
  now_ = ClusterProcesses(cluster_);
  for (const auto& [key, process] : now_) {
    auto [seen, first_time] = last_seen_.try_emplace(key, process);
    if (first_time) continue;
    // A process read as it exits shows no title and, once gone, no CPU: keep what it showed.
    if (process.titled) seen->second.role = process.role;
    seen->second.titled |= process.titled;
    seen->second.seconds = std::max(seen->second.seconds, process.seconds);
  }
}

std::optional<std::array<double, kPgRoles>> ClusterRoleSampler::Stop() {
  stop_.Notify();
  thread_.join();
  absl::MutexLock lock(&mu_);
  Read();
  // Both readings must have found the same postmaster.
  auto postmaster = [](const ClusterReading& r) {
    return std::find_if(r.begin(), r.end(), [](const auto& p) { return p.second.postmaster; });
  };
  if (postmaster(first_) == first_.end() || postmaster(now_) == now_.end() ||
      postmaster(first_)->first != postmaster(now_)->first) {
    return std::nullopt;
  }
  std::array<double, kPgRoles> seconds{};
  for (const auto& [key, seen] : last_seen_) {
    auto then = first_.find(key);
    seconds[static_cast<size_t>(seen.role)] +=
        seen.seconds - (then == first_.end() ? 0 : then->second.seconds);
    // Ended since: all it used went into the postmaster's reaped children (kRest), up to what
    // it used after its last reading, which stays there.
    if (!now_.contains(key)) seconds[static_cast<size_t>(PgRole::kRest)] -= seen.seconds;
  }
  return seconds;
}

MachineTicks ReadMachineTicks() {
  std::ifstream in("/proc/stat");
  std::string line;
  std::getline(in, line);
  std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
  MachineTicks t;
  auto at = [&](size_t i) {
    double v = 0;
    return i < f.size() && absl::SimpleAtod(f[i], &v) ? v : 0.0;
  };
  // cpu user nice system idle iowait irq softirq steal ...
  t.busy = at(1) + at(2) + at(3) + at(5) + at(6) + at(7);
  t.idle = at(4);
  t.steal = at(8);
  return t;
}

std::string BusyPercent(const MachineTicks& before, const MachineTicks& after) {
  const double busy = after.busy - before.busy;
  const double idle = after.idle - before.idle;
  if (busy + idle <= 0) return "?";
  return absl::StrFormat("%.0f", 100 * busy / (busy + idle));
}

std::string StealPercent(const MachineTicks& before, const MachineTicks& after) {
  const double all =
      (after.busy + after.idle + after.steal) - (before.busy + before.idle + before.steal);
  if (all <= 0) return "?";
  return absl::StrFormat("%.1f", 100 * (after.steal - before.steal) / all);
}

StealSampler::StealSampler(absl::Duration every) {
  thread_ = std::thread([this, every] {
    do {
      const MachineTicks t = ReadMachineTicks();
      const double at = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
      absl::MutexLock lock(&mu_);
      samples_.push_back({at, t.steal});
    } while (!stop_.WaitForNotificationWithTimeout(every));
  });
}

StealSampler::~StealSampler() {
  stop_.Notify();
  thread_.join();
}

double StealSampler::StolenMs(double from, double to) const {
  absl::MutexLock lock(&mu_);
  // The last sample at or before `from` and the first at or after `to`.
  const Sample* first = nullptr;
  const Sample* last = nullptr;
  for (const Sample& s : samples_) {
    if (s.at <= from) first = &s;
    if (s.at >= to && last == nullptr) last = &s;
  }
  if (first == nullptr || last == nullptr) return 0;
  return (last->steal - first->steal) * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string VmHwmMb(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (pid > 0 && std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) != 0) continue;
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    double kb = 0;
    if (f.size() >= 2 && absl::SimpleAtod(f[1], &kb)) return absl::StrFormat("%.0f", kb / 1024);
  }
  return "?";
}

void ClearHwm(pid_t pid) {
  if (pid <= 0) return;
  std::ofstream(absl::StrCat("/proc/", pid, "/clear_refs")) << "5";
}

PerfRecording::PerfRecording(std::string mode, std::string dir, std::string profiles_dir,
                             std::string tag, std::vector<std::pair<std::string, pid_t>> processes)
    : mode_(std::move(mode)),
      dir_(std::move(dir)),
      profiles_dir_(std::move(profiles_dir)),
      tag_(std::move(tag)) {
  if (mode_.empty()) return;
  auto record = [&](const std::string& name, std::vector<std::string> argv) {
    ferry::testing::SpawnOptions spawn;
    spawn.argv = std::move(argv);
    spawn.output_path = absl::StrCat(dir_, "/perf-", name, ".log");
    spawn.kill_with_parent = true;
    auto child = ferry::testing::ChildProcess::Spawn(spawn);
    if (!child.ok()) {
      Log(absl::StrCat("perf record (", name, "): ", child.status().ToString()));
      return;
    }
    names_.push_back(name);
    recorders_.push_back(*std::move(child));
  };
  if (mode_ == "system") {  // every process on the machine, Postgres included
    record("system", {"perf", "record", "-e", "cpu-clock", "-F", "999", "-a", "-o",
                      dir_ + "/perf-system.data"});
  } else {
    for (const auto& [name, pid] : processes) {
      if (pid <= 0 || kill(pid, 0) != 0) continue;
      const std::string out = absl::StrCat(dir_, "/perf-", name, ".data");
      if (mode_ == "stat") {  // per-event costs: syscalls and switches per thread
        record(name, {"perf", "record", "-e",
                      "syscalls:sys_enter_fdatasync,syscalls:sys_enter_write,syscalls:sys_enter_"
                      "sendmsg,syscalls:sys_enter_futex,sched:sched_switch",
                      "-p", absl::StrCat(pid), "-o", out});
      } else if (mode_ == "dwarf") {  // stacks through code built without frame pointers
        record(name, {"perf", "record", "-e", "cpu-clock", "-F", "1999", "--call-graph",
                      "dwarf,16384", "-p", absl::StrCat(pid), "-o", out});
      } else {
        record(name, {"perf", "record", "-e", "cpu-clock", "-F", "499", "-g", "-p",
                      absl::StrCat(pid), "-o", out});
      }
    }
  }
  absl::SleepFor(absl::Milliseconds(300));
}

void PerfRecording::Stop() {
  for (auto& r : recorders_) {
    r->Kill(SIGINT);
    r->Wait();
  }
  recorders_.clear();
  for (const std::string& name : names_) {
    const std::string data = absl::StrCat(dir_, "/perf-", name, ".data");
    const std::string text = absl::StrCat(dir_, "/perf-", name, ".txt");
    if (!std::filesystem::exists(data)) continue;
    std::string command;
    if (mode_ == "stat") {  // events per thread name and kind (divide by the transactions)
      command =
          absl::StrCat("perf script -i '", data,
                       "' -F comm,event 2> /dev/null | sort | uniq -c | sort -rn > '", text, "'");
    } else {
      command = absl::StrCat("perf report -i '", data,
                             "' --stdio --no-children --percent-limit 1.5 -g none > '", text,
                             "' 2> /dev/null");
    }
    // What the summary commands print besides goes to perf-report.log.
    absl::StatusOr<int> rc =
        Run({"/bin/sh", "-c", command}, absl::StrCat(dir_, "/perf-report.log"));
    if (!rc.ok() || *rc != 0) {
      Log(absl::StrCat("perf summary (", name, ") failed: ",
                       rc.ok() ? absl::StrCat("exit ", *rc) : rc.status().ToString()));
      continue;
    }
    std::error_code ec;
    std::filesystem::create_directories(profiles_dir_, ec);
    const std::string kept = absl::StrCat(profiles_dir_, "/", tag_, "-", name, ".txt");
    std::filesystem::copy_file(text, kept, std::filesystem::copy_options::overwrite_existing, ec);
    Log(absl::StrCat(mode_ == "stat" ? "counts: " : "profile: ", kept));
  }
  names_.clear();
}

}  // namespace ferry::bench::sbs
