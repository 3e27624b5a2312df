#include "bench/side_by_side/side_by_side.h"

#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "tests/support/child_process.h"

namespace ferry::bench::sbs {
namespace {
volatile sig_atomic_t g_interrupted = 0;
void OnInterrupt(int) { g_interrupted = 1; }
}  // namespace

void Settings::SetSizes(bool quick_run) {
  quick = quick_run;
  if (quick) {
    load_scale = 5;
    base_scale = 5;
    catchup_tx = 20000;
    lag_seconds = 15;
    big_rows = 200000;
  } else {
    load_scale = 50;
    base_scale = 10;
    catchup_tx = 100000;
    lag_seconds = 30;
    big_rows = 1000000;
  }
}

std::optional<std::string> Figures::Get(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::optional<double> Figures::Number(const std::string& key) const {
  double v = 0;
  auto text = Get(key);
  if (!text || !absl::SimpleAtod(*text, &v)) return std::nullopt;
  return v;
}

void Log(const std::string& line) {
  const std::time_t now = std::time(nullptr);
  char clock[16];
  std::strftime(clock, sizeof(clock), "%H:%M:%S", std::localtime(&now));
  std::fprintf(stderr, "bench: %s %s\n", clock, line.c_str());
  std::fflush(stderr);
}

bool Interrupted() { return g_interrupted != 0; }

void InstallInterruptHandler() {
  struct sigaction sa = {};
  sa.sa_handler = OnInterrupt;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool WaitUntil(absl::Duration timeout, absl::Duration interval, const std::function<bool()>& done) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!Interrupted()) {
    if (done()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(interval);
  }
  return false;
}

absl::StatusOr<int> Run(const std::vector<std::string>& argv, const std::string& output_path) {
  auto run = ferry::testing::RunToEnd(
      {.argv = argv, .output_path = output_path, .kill_with_parent = true});
  if (!run.ok()) return run.status();
  return run->exit_code;
}

double NowSeconds() { return static_cast<double>(absl::ToUnixMicros(absl::Now())) / 1e6; }

}  // namespace ferry::bench::sbs
