#include "engine/base/kill_point.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace ferry {
namespace {

// Constant after the first KillPoint call (std::call_once publishes it).
struct KillPointConfig {
  bool armed = false;
  std::string name;
  uint64_t hit = 1;  // die on this pass (1-based)
};

const KillPointConfig& Config() {
  static KillPointConfig config;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* spec = std::getenv("FERRY_KILL_POINT");
    if (spec == nullptr || *spec == '\0') return;
    const std::string s(spec);
    const size_t at = s.rfind('@');
    config.name = s.substr(0, at);
    if (at != std::string::npos &&
        (!absl::SimpleAtoi(s.substr(at + 1), &config.hit) || config.hit == 0)) {
      const std::string msg =
          absl::StrCat("ferry: FERRY_KILL_POINT=", s, " is not NAME or NAME@N (N >= 1); ignored\n");
      (void)!write(STDERR_FILENO, msg.data(), msg.size());
      return;
    }
    config.armed = !config.name.empty();
  });
  return config;
}

std::atomic<int> state{0};  // 0 unknown, 1 disarmed, 2 armed
std::atomic<uint64_t> passes{0};

// FERRY_PAUSE_POINT, read once (function-local static); empty: no pause point.
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
  int s = state.load(std::memory_order_relaxed);
  if (s == 1) return;
  if (s == 0) {
    s = Config().armed ? 2 : 1;
    state.store(s, std::memory_order_relaxed);
    if (s == 1) return;
  }
  const KillPointConfig& config = Config();
  if (name != config.name) return;
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
