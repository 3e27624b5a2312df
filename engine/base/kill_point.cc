#include "engine/base/kill_point.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace ferry {
namespace {

struct KillPointConfig {
  bool armed = false;
  std::string name;
  uint64_t hit = 1;  // die on this pass (1-based)
};

KillPointConfig ReadKillPointConfig() {
  KillPointConfig config;
  const char* spec = std::getenv("FERRY_KILL_POINT");
  if (spec == nullptr || *spec == '\0') return config;
  const std::string s(spec);
  const size_t at = s.rfind('@');
  config.name = s.substr(0, at);
  if (at != std::string::npos &&
      (!absl::SimpleAtoi(s.substr(at + 1), &config.hit) || config.hit == 0)) {
    const std::string msg =
        absl::StrCat("ferry: FERRY_KILL_POINT=", s, " is not NAME or NAME@N (N >= 1); ignored\n");
    (void)!write(STDERR_FILENO, msg.data(), msg.size());
    return config;
  }
  config.armed = !config.name.empty();
  return config;
}

// Both switches are read once, at the first pass of any point of their kind (function-local
// statics: their initialization is thread-safe and cheap to check afterwards).
const KillPointConfig& KillConfig() {
  static const KillPointConfig config = ReadKillPointConfig();
  return config;
}

std::atomic<uint64_t> passes{0};

// FERRY_PAUSE_POINT; empty: no pause point.
const std::string& PauseName() {
  static const std::string name = [] {
    const char* spec = std::getenv("FERRY_PAUSE_POINT");
    return std::string(spec != nullptr ? spec : "");
  }();
  return name;
}

std::atomic<uint64_t> pauses{0};

}  // namespace

void KillPoint(std::string_view name) {
  const KillPointConfig& config = KillConfig();
  if (!config.armed || name != config.name) return;
  if (passes.fetch_add(1) + 1 != config.hit) return;
  const std::string msg =
      absl::StrCat("ferry: kill point ", config.name, "@", config.hit, " reached\n");
  (void)!write(STDERR_FILENO, msg.data(), msg.size());
  kill(getpid(), SIGKILL);
  pause();  // SIGKILL cannot be caught; never returns
}

void PausePoint(std::string_view name) {
  const std::string& armed = PauseName();
  if (armed.empty() || name != armed) return;
  const std::string msg =
      absl::StrCat("ferry: pause point ", armed, "@", pauses.fetch_add(1) + 1, " reached\n");
  (void)!write(STDERR_FILENO, msg.data(), msg.size());
  // Directed at this thread, so that it stops before it runs on (a signal to the process may be
  // taken by another thread, and this one stops only at its next system call); every thread
  // stops with it. Returns once a SIGCONT resumed the process.
  raise(SIGSTOP);
}

}  // namespace ferry
