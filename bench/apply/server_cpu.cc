#include "bench/apply/server_cpu.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace ferry::bench {
namespace {

struct ProcStat {
  long ppid = 0;
  unsigned long long ticks = 0;  // utime + stime
};

// Parses /proc/<pid>/stat; false when the process vanished.
bool ReadStat(const std::string& pid, ProcStat* out) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  // The command name (field 2) is in parentheses and may hold spaces: parse after the last ')'.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  // Fields from 3 on: state(3) ppid(4) ... utime(14) stime(15).
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && (fields >> field); ++i) {
    if (i == 4) out->ppid = std::strtol(field.c_str(), nullptr, 10);
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  out->ticks = utime + stime;
  return true;
}

}  // namespace

double ServerCpu::Seconds() const {
  std::ifstream pid_file(data_dir_ + "/postmaster.pid");
  long postmaster = 0;
  if (!(pid_file >> postmaster) || postmaster <= 0) return 0;
  unsigned long long ticks = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    ProcStat stat;
    if (!ReadStat(name, &stat)) continue;
    if (std::strtol(name.c_str(), nullptr, 10) == postmaster || stat.ppid == postmaster) {
      ticks += stat.ticks;
    }
  }
  return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace ferry::bench
